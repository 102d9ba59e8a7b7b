"""Settings: one table, read from flags, then the environment, then a .env file, then defaults.

Every setting is validated at start-up; the bad ones raise one SettingsError with a line for each,
naming it (every mistake at once, not one a run). Secrets are never echoed back in those lines.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import pathway_settings
from . import setting_values as kinds
from .env_file import env_file_values, short_key
from .pathway_settings import FIRST, BucketSettings
from .setting_values import MAX_DESCRIPTION, MAX_TITLE, Address, SettingsError

__all__ = ["SETTINGS", "Address", "Setting", "Settings", "SettingsError", "load_settings", "lookalike_keys", "raw_setting"]

# The most MAX_CLIPS allows, and the most clips.json entries read (broadcaster/clips/book.py).
MOST_CLIPS = 10_000

# Past this a playlist reload without delta updates is over 1.9 MB (80 KB gzipped) with 1 s segments,
# and every segment rewrites that much state: docs/rewind-and-clips.md.
MAX_REWIND_SECONDS = 14_400
DEFAULT_REWIND_SECONDS = 300  # five minutes behind the live edge (docs/rewind-and-clips.md: the costs)


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    parse: Callable[[str], Any]
    default: str | None = None  # None: required
    secret: bool = False
    # What the documentation's settings reference says of it (Markdown, docs/reference/settings.md, which
    # is written from these when the site is built; empty: `help`, the one line `--help` prints).
    doc: str = ""

    @property
    def field(self) -> str:
        return self.name.lower()

    @property
    def flag(self) -> str:
        return "--" + self.name.lower().replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("HLS_DIR", "Owncast's HLS folder (data/hls)", kinds.existing_dir,
            doc="Owncast's HLS folder, e.g. `/opt/owncast/data/hls`"),
    Setting("HLS_WATCH", "how HLS_DIR is watched: 'auto' (inotify on Linux, which says when Owncast closes "
            "a file; watchfiles elsewhere) or 'watchfiles' (a segment then counts as finished once unchanged "
            "for 0.25 s, which every segment waits)", kinds.choice("auto", "watchfiles"), "auto",
            doc="`auto`: inotify on Linux (it says when Owncast closes each segment), watchfiles elsewhere; "
                "`watchfiles`: watchfiles on Linux too (each segment then waits until unchanged for 0.25 s, "
                "see [Whole segments](../how-it-works.md#whole-segments-only))"),
    Setting("S3_ENDPOINT_URL", "S3 API endpoint, e.g. https://<ACCOUNT_ID>.r2.cloudflarestorage.com", kinds.url,
            doc="`https://<ACCOUNT_ID>.r2.cloudflarestorage.com`"),
    Setting("S3_REGION", "S3 region; R2 takes 'auto'", kinds.nonempty, "auto",
            doc="R2 takes `auto`"),
    Setting("AWS_ACCESS_KEY_ID", "R2 API token's access key id", kinds.nonempty),
    Setting("AWS_SECRET_ACCESS_KEY", "R2 API token's secret (prefer the environment or .env to a flag)",
            kinds.nonempty, secret=True,
            doc="R2 API token's secret (keep it in the environment or `.env`, not on the command line)"),
    Setting("AWS_BUCKET_NAME", "bucket the segments go to", kinds.bucket_name,
            doc="the bucket"),
    Setting("R2_PUBLIC_URL", "public base URL viewers fetch segments from (custom domain or r2.dev); not used "
            "with SEGMENT_URLS=presigned", kinds.optional_url, "",
            doc="Required (unless `SEGMENT_URLS=presigned`): base URL viewers fetch segments from: your "
                "custom domain (production) or `https://pub-<id>.r2.dev` (testing only: rate limited)"),
    Setting("R2_KEY_PREFIX", "folder in the bucket; keys are PREFIX/<variant>/<file>", kinds.key_prefix, "live",
            doc="folder in the bucket"),
    Setting("HOST", "address to listen on; the tunnel connects locally", kinds.host, "127.0.0.1",
            doc="listen address; the tunnel connects locally"),
    Setting("PORT", "port to listen on (0 picks a free one)", kinds.whole(0, 65535), "3000",
            doc="listen port (`0` picks a free one and logs it)"),
    Setting("STATE_DIR", "folder for what the service remembers across restarts", kinds.state_dir, "state",
            doc="where the service keeps what it must remember across restarts: numbering, windows, pending "
                "deletes (`state.json`, written whole and atomically at compaction, and `state.journal`, a "
                "line appended per save), `served` (how far versions went while saves failed), and `lock`, "
                "held while it runs: one service per `STATE_DIR`"),
    Setting("WINDOW_SECONDS", "length of the live playlist window (at least 3 target durations)",
            kinds.positive, "30",
            doc="live window length; never less than 3 target durations"),
    Setting("REWIND_SECONDS", "how far behind the live edge viewers can seek: the live playlists list this "
            "much of the stream, players still start at the edge (0 = off; docs/rewind-and-clips.md says what it costs)",
            kinds.whole(0, MAX_REWIND_SECONDS), str(DEFAULT_REWIND_SECONDS),
            doc="how far behind the live edge viewers can seek: the live playlists list this much of the "
                "stream (players still start at the live edge), and clips can be made of it; `0` = off, at "
                "most `14400` (4 h); see [Rewind and clips](../rewind-and-clips.md#rewind-and-clips) for "
                "what it costs"),
    Setting("TARGET_DURATION", "playlist target duration in s; 0 takes Owncast's", kinds.whole(0, 60), "0",
            doc="playlist target duration; `0` takes Owncast's"),
    Setting("UPLOAD_CONCURRENCY", "uploads in flight at once", kinds.whole(1, 256), "8",
            doc="uploads in flight at once (also the connection pool size)"),
    # A hung PUT holds back its variant's listing: keep this near a couple of segment durations.
    Setting("UPLOAD_TIMEOUT", "seconds one upload attempt may take before it is retried", kinds.positive, "5"),
    Setting("BLOCKING_RELOAD", "advertise and honour LL-HLS blocking playlist reload (_HLS_msn): players get "
            "each new segment as soon as it is listed instead of polling", kinds.boolean, "true",
            doc="advertise and honour LL-HLS blocking playlist reload (`_HLS_msn`), so players get a new "
                "segment as soon as it is listed instead of polling"),
    Setting("PUBLISH_PLAYLISTS", "also upload every playlist version to the bucket (PREFIX/master.m3u8, "
            "PREFIX/<variant>/playlist.m3u8), so viewers can load playlists from the CDN and not from this VM",
            kinds.boolean, "false",
            doc="also write every playlist version to the bucket (`PREFIX/master.m3u8`, "
                "`PREFIX/<n>/playlist.m3u8`), so viewers load playlists from the CDN and the VM serves no "
                "viewer at all; see [Playlists at the edge](../low-latency.md#playlists-at-the-edge)"),
    Setting("SEGMENT_URLS", "'public' (R2_PUBLIC_URL/key) or 'presigned' (private bucket: each segment is "
            "listed with a GET URL signed once for PRESIGN_EXPIRY seconds)", kinds.choice("public", "presigned"),
            "public",
            doc="`public`: segments listed as `R2_PUBLIC_URL/key`; `presigned`: a private bucket, each "
                "segment listed with a GET URL signed once; see [Private "
                "bucket](../low-latency.md#private-bucket-presigned-segment-urls)"),
    Setting("PRESIGN_EXPIRY", "lifetime in seconds of presigned segment URLs; must outlast a segment's whole "
            "time in the playlists (at most 7 days)", kinds.whole(60, 604800), "3600",
            doc="lifetime of presigned URLs in seconds; must be at least 3 × the window listed (the larger "
                "of `WINDOW_SECONDS` and `REWIND_SECONDS`) + `CLEANUP_MARGIN` (checked at start-up), at most"
                " 7 days"),
    Setting("DELETE_OLD_SEGMENTS", "delete segments from the bucket once no playlist may list them", kinds.boolean, "true"),
    Setting("CLEANUP_MARGIN", "extra seconds a segment stays after the spec allows deleting it (CDN copies)",
            kinds.non_negative, "60",
            doc="seconds a segment stays beyond what the spec requires (copies a CDN still holds)"),
    Setting("KEEP_RECORDINGS", "keep every stream: nothing is deleted and a VOD playlist of it is written "
            "to the bucket when it ends", kinds.boolean, "false",
            doc="keep every stream: nothing is deleted, and a VOD playlist of the whole stream is written "
                "next to its segments when it ends"),
    Setting("MAX_CLIPS", "clips kept at most (hls-broadcaster clip); past it a new clip is refused until one is "
            "deleted", kinds.whole(1, MOST_CLIPS), "100",
            doc="clips kept at most (1 to 10,000); past it `hls-broadcaster clip` is refused with one line "
                "until a clip is deleted; see [Rewind and clips](../rewind-and-clips.md#rewind-and-clips)"),
    Setting("METRICS_LISTEN", "where /metrics is served: empty = with the playlists, 'off', or HOST:PORT of "
            "its own (keeps it off the public tunnel)", kinds.listen, "",
            doc="where `/metrics` is served: empty = on `PORT`, `off`, or `HOST:PORT` of its own (keeps it "
                "off the tunnel)"),
    Setting("HEADER_TIMEOUT", "seconds a new connection may take to send its first complete request head "
            "before it is closed (idle and half-sent connections must not hold file handles)", kinds.positive, "10",
            doc="seconds a new connection may take to send its first request head before it is closed; see "
                "[Limits](../limits.md#limits)"),
    Setting("WRITE_TIMEOUT", "seconds a client may take to accept what is being sent to it before its connection "
            "is closed (a client that never reads must not hold memory and handles)", kinds.positive, "30",
            doc="seconds a client may take to accept what is being sent to it (a playlist, a viewer file, an"
                " event) before its connection is closed; see [Limits](../limits.md#limits)"),
    Setting("TRUST_CF_CONNECTING_IP", "take each viewer's address from Cloudflare's CF-Connecting-IP header, to "
            "cap held blocking requests per viewer; only when every connection comes through the Cloudflare "
            "tunnel (HOST=127.0.0.1), since a client reaching the port directly could name any address",
            kinds.boolean, "false",
            doc="`true` when every connection comes through the Cloudflare tunnel (cloudflared on this "
                "machine, `HOST=127.0.0.1`: `deploy/env.example` sets both): each viewer's address is then "
                "read from Cloudflare's `CF-Connecting-IP` header, one address may hold at most 20 pages in "
                "the viewer count and an eighth of the held blocking requests. Off behind the tunnel, every "
                "viewer is one loopback client and one client can fill the count (`hls-broadcaster check` "
                "warns when `HOST` is loopback and this is off). Keep it off when `HOST` is public: a client"
                " reaching the port directly could name any address in that header; see "
                "[Limits](../limits.md#limits). The header is believed from a loopback peer (cloudflared on "
                "this machine) or a proxy named in `FORWARDED_ALLOW_IPS` (cloudflared elsewhere), from no "
                "one else"),
    Setting("FORWARDED_ALLOW_IPS", "reverse proxies (nginx, Caddy) trusted to name the viewer in "
            "X-Forwarded-For or Forwarded: comma-separated addresses or CIDRs; empty = none (each connection's "
            "own address counts)", kinds.networks, "",
            doc="the reverse proxies in front of the service (nginx, Caddy, a load balancer) trusted to name "
                "each viewer in `X-Forwarded-For` (or `Forwarded`): comma-separated addresses or CIDRs, e.g. "
                "`127.0.0.1` for a proxy on this machine. The viewer is the right-most address in that header "
                "that is not one of these proxies, as with uvicorn's `--forwarded-allow-ips`; a header from "
                "any other peer is ignored. Empty: none, and behind such a proxy every viewer counts as the "
                "proxy. The tunnel needs only `TRUST_CF_CONNECTING_IP`; see [Behind a reverse proxy]"
                "(../production.md#behind-a-reverse-proxy)"),
    Setting("P2P_TRACKERS", "viewers share segments peer to peer (WebRTC), the bucket stays the fallback: "
            "comma-separated ws:// or wss:// WebTorrent tracker URLs (your own: broadcaster/tracker/); empty = off",
            kinds.trackers, "",
            doc="viewers of the bundled page share segments peer to peer (WebRTC, P2P Media Loader) with the"
                " bucket as the fallback: comma-separated `ws://` or `wss://` WebTorrent tracker URLs, at "
                "most 8. Run your own (`broadcaster/tracker/`, `deploy/tracker/`); never a public tracker. "
                "Empty: `/config.json` says nothing about P2P and the page loads no P2P code"),
    Setting("P2P_STUN_SERVERS", "with P2P on: comma-separated stun:HOST[:PORT] URLs viewers' browsers ask for their "
            "public address (each sees every viewer's address), or 'none' (peers then meet only on one network); "
            "the default is Cloudflare's, which viewers already reach through the tunnel and the bucket",
            kinds.stun_servers, "stun:stun.cloudflare.com:3478",
            doc="with P2P on: the STUN servers viewers' browsers ask for their public address "
                "(comma-separated `stun:HOST[:PORT]`, at most 4), each of which sees every viewer's address;"
                " Cloudflare's is already in every viewer's path. `none`: peers meet only on one network"),
    Setting("P2P_START_ON", "with P2P on: whether each viewer's choice to share starts as yes (the page always "
            "shows the notice and the choice first; a viewer's own choice is kept in their browser)",
            kinds.boolean, "false",
            doc="with P2P on: whether a viewer's choice to share the video peer to peer starts as yes. The page "
                "shows its one-line notice (other viewers can see your address) and the choice before any "
                "peer connection either way; a viewer's own choice, once made, is kept in their browser. "
                "See [P2P and privacy](../p2p.md#what-viewers-see-and-choose)"),
    Setting("P2P_MIN_VIEWERS", "with P2P on: peers only once this many viewers who chose to share are watching "
            "(with N viewers at most (N-1)/N of the bytes can come from peers)",
            kinds.whole(1, 10000), "3",
            doc="with P2P on: a page connects to peers only once this many viewers who chose to share are "
                "watching (1 to 10000; the heartbeat's answer counts them). With N viewers at most (N-1)/N "
                "of the video can come from peers; the default is from the p2p bench's measured share, see "
                "[When P2P starts](../p2p.md#when-p2p-starts)"),
    Setting("P2P_UPLOAD_MB", "with P2P on: the most a viewer sends to other viewers per visit, in MB "
            "(0 = take from peers, send nothing)",
            kinds.whole(0, 1000000), "500",
            doc="with P2P on: the most a viewer's page sends to other viewers in one visit, in MB (0: it "
                "takes from peers and sends nothing). On a metered connection (cellular, or the browser's "
                "data saver) it sends nothing either way"),
    Setting("VIEWER_TIMEOUT", "seconds a viewer page stays counted after its last heartbeat (it beats every "
            "third of this while playing); also how fast a closed tab leaves the count when its goodbye is lost",
            kinds.bounded(3, 600), "30",
            doc="seconds a viewer page stays counted after its last heartbeat (3 to 600); the page beats "
                "every third of it while playing; see [Viewers watching](../viewers.md#viewers-watching)"),
    Setting("SHOW_VIEWER_COUNT", "show \"N watching\" on the viewer page (the count is in /metrics and /health "
            "either way)", kinds.boolean, "true",
            doc="show \"N watching\" on the viewer page; the count is in `/metrics` and `/health` either way"),
    Setting("OWNCAST_URL", "Owncast's public URL as viewers' browsers reach it (e.g. https://stream.example.com): "
            "the viewer page pings its /api/ping while playing, so Owncast's own viewer count includes this "
            "page's viewers; empty = off", kinds.optional_url, "",
            doc="Owncast's public URL as viewers' browsers reach it (`https://owncast.example.com`): the "
                "viewer page pings its `/api/ping` while playing, so Owncast's own count includes this "
                "page's viewers, and sends its `/api/metrics/playback` the playback report Owncast's own "
                "page sends, so its Stream Health includes them too"),
    Setting("STREAM_TITLE", "the viewer page's title and heading; empty = Owncast's server name (from its "
            "/api/config) when OWNCAST_URL is set, else 'Live stream'", kinds.page_text(MAX_TITLE), "",
            doc="the viewer page's title and heading (one line, at most 200 characters); empty: the name "
                "Owncast gives its server (its `/api/config`) when `OWNCAST_URL` is set, else \"Live stream\"; "
                "see [The page's words](../viewers.md#the-pages-words)"),
    Setting("STREAM_DESCRIPTION", "a line under the viewer page's heading; empty = Owncast's summary (from its "
            "/api/config) when OWNCAST_URL is set, else none", kinds.page_text(MAX_DESCRIPTION), "",
            doc="a line under the viewer page's heading (at most 1000 characters); empty: Owncast's server "
                "summary (its `/api/config`) when `OWNCAST_URL` is set, else none"),
    Setting("FRAME_ANCESTORS", "sites allowed to show the viewer page in a frame (embedding, /embed): 'self', "
            "space-separated origins like https://example.com or https://*.example.com, '*' for any, or 'none'",
            kinds.frame_ancestors, "'self'",
            doc="the sites allowed to show the viewer page in a frame: `'self'`, space-separated origins "
                "(`https://www.example.com https://*.example.org`), `*` for any, or `none`; see [Embedding "
                "the player](../viewers.md#embedding-the-player)"),
    Setting("VIEWER_SOURCES", "other sites whose playlists the viewer page (/ and /embed) may play with "
            "?src=: space-separated origins like https://other.example, or '*' for any; empty = this "
            "service's own playlists only (a link to this site cannot make it play someone else's stream)",
            kinds.viewer_sources, "",
            doc="other sites whose playlists the viewer page (`/` and `/embed`) may play with `?src=`: "
                "space-separated origins (`https://other.example`) or `*`; empty: only this service's "
                "playlists (its `/live/` and `/hls/` paths, and the bucket's copies it plays from), so a "
                "link to this site cannot make it play someone else's stream"),
    Setting("PATHWAYS", "delivery pathways players are offered, best first (HLS content steering): 'bucket' "
            "alone (the default), or 'bucket' then 'vm' (while the bucket fails, the VM serves segments itself: "
            "read docs/steering.md on Cloudflare's terms first) and/or a second bucket's ID ('backup', set "
            "with BACKUP_*)", kinds.pathways, "bucket",
            doc="the delivery pathways the multivariant playlist offers, in the order players should prefer "
                "them (HLS content steering): `bucket` alone (the default), or `bucket` then `vm` (while the "
                "service sees the bucket failing, it steers players to segments it serves itself, and back "
                "once the bucket serves again) and/or a second bucket's ID (`backup`, set with the `BACKUP_*` "
                "settings; another ID takes settings named after it, `B2_S3_ENDPOINT_URL`...). Cloudflare's "
                "terms do not cover the VM's segments through the tunnel: read [Steering](../steering.md) "
                "before you add `vm`"),
    Setting("VM_PATHWAY_URL", "with 'vm' in PATHWAYS: the base URL the VM's pathway is reached at, on a "
            "hostname Cloudflare does not proxy (e.g. https://vm.example.com); empty: the host each viewer "
            "asked for, through the tunnel", kinds.optional_url, "",
            doc="with `vm` in `PATHWAYS`: the base URL (scheme and host) at which viewers reach the VM's "
                "pathway, on a hostname Cloudflare does not proxy, so its segments do not go through "
                "Cloudflare's CDN ([Cloudflare's terms](../steering.md#cloudflares-terms)); empty: the host each "
                "viewer asked for (through the tunnel)"),
    Setting("BACKUP_S3_ENDPOINT_URL", "with 'backup' in PATHWAYS: the S3 API endpoint of a second bucket, at "
            "another provider (e.g. https://s3.eu-central-1.amazonaws.com)", kinds.optional(kinds.url), "",
            doc="with `backup` in `PATHWAYS`: the S3 API endpoint of a second bucket, best at another provider "
                "than Cloudflare (a Cloudflare-wide failure takes R2 down with it); see [A second "
                "bucket](../steering.md#a-second-bucket)"),
    Setting("BACKUP_S3_REGION", "the second bucket's S3 region", kinds.nonempty, "auto",
            doc="the second bucket's region (`auto` for R2; AWS wants the bucket's own, e.g. `eu-central-1`)"),
    Setting("BACKUP_ACCESS_KEY_ID", "the second bucket's access key id", kinds.optional(kinds.nonempty), ""),
    Setting("BACKUP_SECRET_ACCESS_KEY", "the second bucket's secret (prefer the environment or .env to a flag)",
            kinds.optional(kinds.nonempty), "", secret=True,
            doc="the second bucket's secret (keep it in the environment or `.env`, not on the command line)"),
    Setting("BACKUP_BUCKET_NAME", "the second bucket; segments get the same keys as in the first "
            "(R2_KEY_PREFIX/<variant>/<file>)", kinds.optional(kinds.bucket_name), "",
            doc="the second bucket; each segment gets the same key as in the first (`R2_KEY_PREFIX/<n>/<file>`)"),
    Setting("BACKUP_PUBLIC_URL", "public base URL viewers fetch the second bucket's segments from (its "
            "CDN or public bucket URL)", kinds.optional_url, "",
            doc="the public base URL viewers fetch the second bucket's segments from (its CDN, or the "
                "bucket's public URL); it must answer cross-origin GETs (CORS) like R2_PUBLIC_URL"),
    Setting("VM_SEGMENT_MBPS", "the most segment bytes the VM sends while players are steered to it, in "
            "megabits per second (behind a CDN that caches them it sends about one copy per data center)",
            kinds.megabits, "50",
            doc="the most segment bytes the VM's pathway sends, in megabits per second averaged over 10 s "
                "(past it: 503, and players retry); behind a Cloudflare cache rule the VM sends about one "
                "copy per data center, see [what it costs](../steering.md#what-it-costs)"),
    Setting("VM_COPIES_MB", "disk space for the copies of segments an upload failed for (STATE_DIR/segments), "
            "kept until every bucket has them, in MB: an outage's backlog at the stream's bitrate",
            kinds.whole(16, 10_000_000), "1024",
            doc="disk space for the copies of segments whose upload failed (an outage's backlog), kept under "
                "`STATE_DIR/segments` until every bucket has them, so Owncast's cleanup cannot lose them; "
                "oldest dropped first past it. Nothing is written while the buckets take each upload at once. "
                "1024 MB holds about 28 minutes of a 5 Mbit/s stream (all variants together)"),
    Setting("LOG_LEVEL", "debug, info, warning or error", kinds.choice("debug", "info", "warning", "error"), "info",
            doc="`debug`, `info`, `warning` or `error`"),
)


@dataclass(frozen=True)
class Settings:
    hls_dir: Path
    hls_watch: str
    s3_endpoint_url: str
    s3_region: str
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_bucket_name: str
    r2_public_url: str
    r2_key_prefix: str
    host: str
    port: int
    state_dir: Path
    window_seconds: float
    rewind_seconds: int
    target_duration: int
    upload_concurrency: int
    upload_timeout: float
    blocking_reload: bool
    publish_playlists: bool
    segment_urls: str
    presign_expiry: int
    delete_old_segments: bool
    cleanup_margin: float
    keep_recordings: bool
    max_clips: int
    metrics_listen: str | Address  # "" (with the playlists), "off", or a listener of its own
    header_timeout: float
    write_timeout: float
    trust_cf_connecting_ip: bool
    forwarded_allow_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]  # () = no proxy named
    p2p_trackers: tuple[str, ...]  # () = P2P off
    p2p_stun_servers: tuple[str, ...]  # () = none: host candidates only
    p2p_start_on: bool  # a viewer's choice to share starts as yes
    p2p_min_viewers: int  # peers only with this many willing viewers watching
    p2p_upload_mb: int  # the most a page sends to peers per visit
    viewer_timeout: float
    show_viewer_count: bool
    owncast_url: str  # "" = off
    stream_title: str  # "" = Owncast's name with OWNCAST_URL, else the page's own
    stream_description: str  # "" = Owncast's summary with OWNCAST_URL, else none
    frame_ancestors: str  # a CSP frame-ancestors value
    viewer_sources: tuple[str, ...]  # origins ?src= may name besides the service's own; ("*",) = any
    pathways: tuple[str, ...]  # ("bucket",) = no content steering
    vm_pathway_url: str  # "" = the host each viewer asked for
    backup_s3_endpoint_url: str  # the second bucket ("" unless PATHWAYS names backup)
    backup_s3_region: str
    backup_access_key_id: str
    backup_secret_access_key: str
    backup_bucket_name: str
    backup_public_url: str
    vm_segment_mbps: float
    vm_copies_mb: int
    log_level: str
    # Every bucket PATHWAYS names besides the first, from its <ID>_* settings (load_settings).
    extra_buckets: tuple[BucketSettings, ...] = ()

    def __repr__(self) -> str:  # never print the secret, even in a traceback
        shown = {s.field: ("***" if s.secret else getattr(self, s.field)) for s in SETTINGS}
        return f"Settings({shown})"

    @property
    def listed_seconds(self) -> float:
        """How much of the stream the live playlists list: the live window, or the rewind window."""
        return max(self.window_seconds, float(self.rewind_seconds))

    @property
    def segment_url_life(self) -> float:
        """The longest a listed segment's URL may still be fetched: about a window listed, then held by
        a player's copy of the playlist (6.2.2), plus CLEANUP_MARGIN. Presigned URLs must outlive it."""
        return 3 * self.listed_seconds + self.cleanup_margin

    @property
    def p2p_swarm(self) -> str:
        """The viewers' P2P swarm id: one per stream (endpoint, bucket and prefix), so another stream
        announced to the same tracker never shares segments with this one (their media sequence
        numbers, P2P Media Loader's segment ids, would collide)."""
        stream = "\n".join((self.s3_endpoint_url, self.aws_bucket_name, self.r2_key_prefix))
        return "hls-broadcaster-" + hashlib.sha256(stream.encode()).hexdigest()[:32]

    @property
    def steering(self) -> bool:
        """Content steering on: more than the bucket's pathway is offered."""
        return len(self.pathways) > 1

    @property
    def first_bucket(self) -> BucketSettings:
        return BucketSettings(FIRST, self.s3_endpoint_url, self.s3_region, self.aws_access_key_id,
                              self.aws_secret_access_key, self.aws_bucket_name, self.r2_public_url)

    @property
    def buckets(self) -> tuple[BucketSettings, ...]:
        """Every bucket pathway's settings, the first bucket's first, then in PATHWAYS' order."""
        return (self.first_bucket, *self.extra_buckets)

    def secrets(self) -> list[str]:
        return [str(getattr(self, s.field)) for s in SETTINGS if s.secret] + [
            b.secret_access_key for b in self.extra_buckets]


def _lookup(s: Setting, flags: Mapping[str, str | None], environ: Mapping[str, str],
            file_values: Mapping[str, str | None], env_file: Path | None) -> tuple[str | None, str]:
    """A setting's raw value and where it came from: flag, then environment, then .env, then its default
    (None: required and not set). Empty counts as not set."""
    for raw, source in ((flags.get(s.name), s.flag), (environ.get(s.name), s.name),
                        (file_values.get(s.name), f"{s.name} (from {env_file})")):
        if raw is not None:
            break
    if raw is None or raw == "":
        return s.default, f"{s.name} (default)"
    return raw, source


def raw_setting(name: str, environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> str | None:
    """One setting's raw value, found as load_settings finds it, for a command that needs it alone
    (`clip` looks for the service's STATE_DIR): not parsed, nothing created, the others not required."""
    setting = next(s for s in SETTINGS if s.name == name)
    environ = os.environ if environ is None else environ
    return _lookup(setting, {}, environ, env_file_values(env_file), env_file)[0]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    *,
    make_state_dir: bool = True,
) -> Settings:
    """Flags (keyed by setting name) win over the environment, which wins over the .env file. Every
    missing or bad setting is found before SettingsError is raised, with a line for each.
    make_state_dir=False (`check`): STATE_DIR is judged but not created."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    file_values = env_file_values(env_file)
    values: dict[str, Any] = {}
    problems: list[str] = []
    for s in SETTINGS:
        raw, source = _lookup(s, flags, environ, file_values, env_file)
        if raw is None:
            problems.append(f"{s.name} is not set: {s.help} (set it in the environment, a .env file or {s.flag})")
            continue
        parse = kinds.state_dir_as_is if s.name == "STATE_DIR" and not make_state_dir else s.parse
        try:
            if _CONTROL.search(raw):  # no setting takes one; a line break would split the messages too
                raise ValueError("contains a control character (a line break, a tab, NUL...)")
            values[s.field] = parse(raw)
        except ValueError as err:
            shown = "" if s.secret else f"={kinds.quoted(raw)}"
            problems.append(f"{source}{shown}: {err}")
    if problems:
        raise SettingsError(*problems)
    buckets = _extra_buckets(values["pathways"], flags, environ, file_values, env_file)
    settings = Settings(**values, extra_buckets=buckets)
    _check_together(settings)
    return settings


def _extra_buckets(pathways: tuple[str, ...], flags: Mapping[str, str | None], environ: Mapping[str, str],
                   file_values: Mapping[str, str | None], env_file: Path | None) -> tuple[BucketSettings, ...]:
    """Every bucket PATHWAYS names besides the first, each from its <ID>_* settings, all required; a line
    for each one missing or wrong."""
    problems: list[str] = []
    buckets = []
    for pathway in pathway_settings.extra_buckets(pathways):
        got: dict[str, str] = {}
        for field, name, parse, default, secret, what in pathway_settings.fields(pathway):
            setting = Setting(name, what, parse, default or None, secret)
            raw, source = _lookup(setting, flags, environ, file_values, env_file)
            if raw is None:
                problems.append(f"{name} is not set: PATHWAYS names {pathway}, a bucket, which needs {what}")
                continue
            try:
                if _CONTROL.search(raw):
                    raise ValueError("contains a control character (a line break, a tab, NUL...)")
                got[field] = parse(raw)
            except ValueError as err:
                problems.append(f"{source}{'' if secret else '=' + repr(kinds.shown(raw))}: {err}")
        if len(got) == len(pathway_settings.fields(pathway)):
            buckets.append(BucketSettings(pathway, **got))
    if problems:
        raise SettingsError(*problems)
    return tuple(buckets)


def lookalike_keys(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> list[str]:
    """A line for each key that looks like a setting's name but is not one (HLS_DIRR, hls_dir): it is
    ignored, so the setting it was meant to be keeps its default or is missing. Any unknown key in the
    env file is named; in the environment, only those close to a setting's name."""
    environ = os.environ if environ is None else environ
    file_values = env_file_values(env_file)
    names = [s.name for s in SETTINGS]
    raw_pathways = _lookup(next(s for s in SETTINGS if s.name == "PATHWAYS"), {}, environ, file_values, env_file)[0]
    try:
        names += [n for p in pathway_settings.extra_buckets(kinds.pathways(raw_pathways or FIRST))
                  for n in pathway_settings.names(p)]
    except ValueError:
        pass  # a PATHWAYS that does not parse is said by load_settings
    file_keys = list(file_values)
    found = []
    for key, where in [*((k, f" (in {env_file})") for k in file_keys), *((k, "") for k in environ)]:
        if key in names or (where == "" and key in file_keys):
            continue
        close = difflib.get_close_matches(key.upper(), names, n=1, cutoff=0.8) if len(key) <= 40 else []
        if close:
            found.append(f"{key}{where} is not a setting, so it is ignored: did you mean {close[0]}?")
        elif where:
            found.append(f"{short_key(key)}{where} is not a setting, so it is ignored")
    return found


def _check_together(s: Settings) -> None:
    """Settings that are each valid but do not work together."""
    problems = []
    if s.segment_urls == "public" and not s.r2_public_url:
        problems.append(
            "R2_PUBLIC_URL is not set: the public base URL viewers fetch segments from (custom domain or "
            "r2.dev), or set SEGMENT_URLS=presigned for a private bucket"
        )
    if s.segment_urls == "presigned" and s.publish_playlists:
        problems.append(
            "PUBLISH_PLAYLISTS=true needs a publicly readable bucket, SEGMENT_URLS=presigned is for a private "
            "one: choose one of them"
        )
    needed = s.segment_url_life  # an expiry inside it breaks playback
    if s.segment_urls == "presigned" and s.presign_expiry < needed:
        problems.append(
            f"PRESIGN_EXPIRY={s.presign_expiry} is shorter than a segment's life in the playlists "
            f"(3 x the window listed, max(WINDOW_SECONDS, REWIND_SECONDS), + CLEANUP_MARGIN = {needed:.0f}s): "
            "raise it"
        )
    problems += _backup_problems(s)
    if problems:
        raise SettingsError(*problems)


BACKUP_SETTINGS = tuple(pathway_settings.names("backup"))


def _backup_problems(s: Settings) -> list[str]:
    """Each bucket besides the first: not the first one again; and BACKUP_* (the settings table's
    example of another bucket) set without PATHWAYS naming it (a bucket named and never written to is a
    mistake the operator would find in an outage)."""
    problems = []
    for bucket in s.extra_buckets:
        if (bucket.endpoint_url, bucket.bucket) == (s.s3_endpoint_url, s.aws_bucket_name):
            problems.append(f"{bucket.setting('AWS_BUCKET_NAME')}: the {bucket.pathway} pathway's bucket is the first "
                            "one (same S3_ENDPOINT_URL and bucket): name a bucket elsewhere, best at another provider")
    if "backup" not in s.pathways:
        named = [name for name in BACKUP_SETTINGS if name != "BACKUP_S3_REGION" and getattr(s, name.lower())]
        if named:
            problems.append(f"{', '.join(named)} set but PATHWAYS ({','.join(s.pathways)}) does not name backup: "
                            "add it (e.g. PATHWAYS=bucket,backup) or remove the BACKUP_* settings")
    return problems
