"""The settings record: each field declared with the setting that fills it; SETTINGS is its table."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import values as kinds
from .buckets import FIRST, BucketSettings, bucket_rows
from .rows import Setting, rows, setting
from .values import MAX_DESCRIPTION, MAX_TITLE, Address

# The most MAX_CLIPS allows, and the most clips.json entries read (broadcaster/clips/book.py).
MOST_CLIPS = 10_000

# Past this a playlist reload without delta updates is over 1.9 MB (80 KB gzipped) with 1 s segments,
# and every segment rewrites that much state: docs/rewind-and-clips.md.
MAX_REWIND_SECONDS = 14_400
DEFAULT_REWIND_SECONDS = 300  # five minutes behind the live edge (docs/rewind-and-clips.md: the costs)


class Derived:
    """Values worked out from the settings, as properties of the record (`s.segment_url_life`)."""

    window_seconds: float
    rewind_seconds: int
    cleanup_margin: float
    r2_key_prefix: str
    pathways: tuple[str, ...]
    buckets: tuple[BucketSettings, ...]
    private_invites: Path | None
    state_dir: Path

    @property
    def listed_seconds(self) -> float:
        return max(self.window_seconds, float(self.rewind_seconds))

    @property
    def segment_url_life(self) -> float:
        """The longest a listed segment's URL may still be fetched (6.2.2), plus CLEANUP_MARGIN."""
        return 3 * self.listed_seconds + self.cleanup_margin

    @property
    def p2p_swarm(self) -> str:
        """The viewers' P2P swarm id: one per stream, so no other stream's segments on a tracker collide."""
        first = self.first_bucket
        stream = "\n".join((first.endpoint_url, first.bucket, self.r2_key_prefix))
        return "hls-broadcaster-" + hashlib.sha256(stream.encode()).hexdigest()[:32]

    @property
    def steering(self) -> bool:
        return len(self.pathways) > 1

    @property
    def first_bucket(self) -> BucketSettings:
        return self.buckets[0]

    @property
    def extra_buckets(self) -> tuple[BucketSettings, ...]:
        return self.buckets[1:]

    @property
    def invites_file(self) -> Path:
        return self.private_invites or self.state_dir / "invites.json"


def first_bucket_here() -> Any:
    """Where the first bucket's settings stand in the table; the field holds every bucket's record."""
    return field()


@dataclass(frozen=True)
class Settings(Derived):
    """Every setting, parsed: a field each (its type what its parser returns), every bucket's in `buckets`."""

    hls_dir: Path = setting("Owncast's HLS folder (data/hls)", kinds.existing_dir,
        doc="Owncast's HLS folder, e.g. `/opt/owncast/data/hls`")
    hls_watch: str = setting("how HLS_DIR is watched: 'auto' (inotify on Linux, which says when Owncast closes "
        "a file; watchfiles elsewhere) or 'watchfiles' (a segment then counts as finished once unchanged "
        "for 0.25 s, which every segment waits)", kinds.choice("auto", "watchfiles"), "auto",
        doc="`auto`: inotify on Linux (it says when Owncast closes each segment), watchfiles elsewhere; "
            "`watchfiles`: watchfiles on Linux too (each segment then waits until unchanged for 0.25 s, "
            "see [Whole segments](../how-it-works.md#whole-segments-only))")
    # The first bucket's settings (S3_ENDPOINT_URL ... R2_PUBLIC_URL) go here in the table: every
    # bucket's, the first included, are one record (buckets.py).
    buckets: tuple[BucketSettings, ...] = first_bucket_here()
    r2_key_prefix: str = setting("folder in the bucket; keys are PREFIX/<variant>/<file>", kinds.key_prefix,
        "live")
    host: str = setting("address to listen on; the tunnel connects locally", kinds.host, "127.0.0.1")
    port: int = setting("port to listen on (0 picks a free one and logs it)", kinds.whole(0, 65535), "3000")
    state_dir: Path = setting("folder for what the service remembers across restarts", kinds.state_dir, "state",
        doc="where the service keeps what it must remember across restarts: numbering, windows, pending "
            "deletes (`state.json`, written whole and atomically at compaction, and `state.journal`, a "
            "line appended per save), `served` (how far versions went while saves failed), and `lock`, "
            "held while it runs: one service per `STATE_DIR`")
    window_seconds: float = setting("length of the live playlist window (at least 3 target durations)",
        kinds.positive, "30")
    rewind_seconds: int = setting("how far behind the live edge viewers can seek: the live playlists list this "
        "much of the stream, players still start at the edge (0 = off; docs/rewind-and-clips.md says what it costs)",
        kinds.whole(0, MAX_REWIND_SECONDS), str(DEFAULT_REWIND_SECONDS),
        doc="how far behind the live edge viewers can seek: the live playlists list this much of the stream "
            "(players still start at the live edge), and clips can be made of it; `0` = off, at most `14400` "
            "(4 h); see [Rewind and clips](../rewind-and-clips.md#rewind-and-clips) for what it costs")
    target_duration: int = setting("playlist target duration in s; 0 takes Owncast's", kinds.whole(0, 60),
        "0")
    upload_concurrency: int = setting("uploads in flight at once (also the connection pool size)",
        kinds.whole(1, 256), "8")
    # A hung PUT holds back its variant's listing: keep this near a couple of segment durations.
    upload_timeout: float = setting("seconds one upload attempt may take before it is retried", kinds.positive, "5")
    blocking_reload: bool = setting("advertise and honour LL-HLS blocking playlist reload (_HLS_msn): players get "
        "each new segment as soon as it is listed instead of polling", kinds.boolean, "true")
    publish_playlists: bool = setting("also upload every playlist version to the bucket (PREFIX/master.m3u8, "
        "PREFIX/<variant>/playlist.m3u8), so viewers can load playlists from the CDN and not from this VM",
        kinds.boolean, "false",
        doc="also write every playlist version to the bucket (`PREFIX/master.m3u8`, "
            "`PREFIX/<n>/playlist.m3u8`), so viewers load playlists from the CDN and the VM serves no "
            "viewer at all; see [Playlists at the edge](../low-latency.md#playlists-at-the-edge)")
    segment_urls: str = setting("'public' (R2_PUBLIC_URL/key) or 'presigned' (private bucket: each segment is "
        "listed with a GET URL signed once for PRESIGN_EXPIRY seconds)", kinds.choice("public", "presigned"),
        "public",
        doc="`public`: segments listed as `R2_PUBLIC_URL/key`; `presigned`: a private bucket, each "
            "segment listed with a GET URL signed once; see [Private "
            "bucket](../low-latency.md#private-bucket-presigned-segment-urls)")
    presign_expiry: int = setting("lifetime in seconds of presigned segment URLs; must outlast a segment's whole "
        "time in the playlists (at most 7 days)", kinds.whole(60, 604800), "3600",
        doc="lifetime of presigned URLs in seconds; must be at least 3 × the window listed (the larger of "
            "`WINDOW_SECONDS` and `REWIND_SECONDS`) + `CLEANUP_MARGIN` (checked at start-up), at most 7 days")
    delete_old_segments: bool = setting("delete segments from the bucket once no playlist may list them", kinds.boolean, "true")
    cleanup_margin: float = setting("extra seconds a segment stays after the spec allows deleting it (CDN copies)",
        kinds.non_negative, "60")
    keep_recordings: bool = setting("keep every stream: nothing is deleted and a VOD playlist of it is written "
        "to the bucket when it ends", kinds.boolean, "false",
        doc="keep every stream: nothing is deleted, and a VOD playlist of the whole stream is written "
            "next to its segments when it ends (with `PRIVATE=true`, kept in `STATE_DIR` and served behind "
            "the gate: [Clips and recordings](../private-streams.md#clips-and-recordings))")
    max_clips: int = setting("clips kept at most (hls-broadcaster clip); past it a new clip is refused until one is "
        "deleted", kinds.whole(1, MOST_CLIPS), "100",
        doc="clips kept at most (1 to 10,000); past it `hls-broadcaster clip` is refused with one line "
            "until a clip is deleted; see [Rewind and clips](../rewind-and-clips.md#rewind-and-clips)")
    metrics_listen: str | Address = setting("where /metrics is served: empty = with the playlists, 'off', or HOST:PORT of "
        "its own (keeps it off the public tunnel)", kinds.listen, "")
    header_timeout: float = setting("seconds a new connection may take to send its first complete request head "
        "before it is closed (idle and half-sent connections must not hold file handles)", kinds.positive, "10",
        doc="seconds a new connection may take to send its first request head before it is closed; see "
            "[Limits](../limits.md#limits)")
    write_timeout: float = setting("seconds a client may take to accept what is being sent to it before its connection "
        "is closed (a client that never reads must not hold memory and handles)", kinds.positive, "30",
        doc="seconds a client may take to accept what is being sent to it (a playlist, a viewer file, an"
            " event) before its connection is closed; see [Limits](../limits.md#limits)")
    trust_cf_connecting_ip: bool = setting("take each viewer's address from Cloudflare's CF-Connecting-IP header, to "
        "cap held blocking requests per viewer; only when every connection comes through the Cloudflare "
        "tunnel (HOST=127.0.0.1), since a client reaching the port directly could name any address",
        kinds.boolean, "false",
        doc="`true` when every connection comes through the Cloudflare tunnel (cloudflared on this machine, "
            "`HOST=127.0.0.1`: `deploy/env.example` sets both): each viewer's address is then read from "
            "Cloudflare's `CF-Connecting-IP` header, one address may hold at most 20 pages in the viewer "
            "count and an eighth of the held blocking requests. Off behind the tunnel, every viewer is one "
            "loopback client and one client can fill the count (`hls-broadcaster check` warns when `HOST` is "
            "loopback and this is off). Keep it off when `HOST` is public: a client reaching the port "
            "directly could name any address in that header; see [Limits](../limits.md#limits). The header "
            "is believed from a loopback peer (cloudflared on this machine) or a proxy named in "
            "`FORWARDED_ALLOW_IPS` (cloudflared elsewhere), from no one else")
    # () = no proxy named
    forwarded_allow_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        "reverse proxies (nginx, Caddy) trusted to name the viewer in "
        "X-Forwarded-For or Forwarded: comma-separated addresses or CIDRs; empty = none (each connection's "
        "own address counts)", kinds.networks, "",
        doc="the reverse proxies in front of the service (nginx, Caddy, a load balancer) trusted to name "
            "each viewer in `X-Forwarded-For` (or `Forwarded`): comma-separated addresses or CIDRs, e.g. "
            "`127.0.0.1` for a proxy on this machine. The viewer is the right-most address in that header "
            "that is not one of these proxies, as with uvicorn's `--forwarded-allow-ips`; a header from "
            "any other peer is ignored. Empty: none, and behind such a proxy every viewer counts as the "
            "proxy. The tunnel needs only `TRUST_CF_CONNECTING_IP`; see [Behind a reverse proxy]"
            "(../production.md#behind-a-reverse-proxy)")
    # () = P2P off
    p2p_trackers: tuple[str, ...] = setting("viewers share segments peer to peer (WebRTC), the bucket stays the fallback: "
        "comma-separated ws:// or wss:// WebTorrent tracker URLs (your own: broadcaster/tracker/); empty = off",
        kinds.trackers, "",
        doc="viewers of the bundled page share segments peer to peer (WebRTC, P2P Media Loader) with the"
            " bucket as the fallback: comma-separated `ws://` or `wss://` WebTorrent tracker URLs, at "
            "most 8. Run your own (`broadcaster/tracker/`, `deploy/tracker/`); never a public tracker. "
            "Empty: `/config.json` says nothing about P2P and the page loads no P2P code")
    # () = none: host candidates only
    p2p_stun_servers: tuple[str, ...] = setting("with P2P on: comma-separated stun:HOST[:PORT] URLs viewers' browsers ask for their "
        "public address (each sees every viewer's address), or 'none' (peers then meet only on one network); "
        "the default is Cloudflare's, which viewers already reach through the tunnel and the bucket",
        kinds.stun_servers, "stun:stun.cloudflare.com:3478",
        doc="with P2P on: the STUN servers viewers' browsers ask for their public address "
            "(comma-separated `stun:HOST[:PORT]`, at most 4), each of which sees every viewer's address;"
            " Cloudflare's is already in every viewer's path. `none`: peers meet only on one network")
    p2p_start_on: bool = setting("with P2P on: whether each viewer's choice to share starts as yes (the page "
        "always shows the notice and the choice first; a viewer's own choice is kept in their browser)",
        kinds.boolean, "false",
        doc="with P2P on: whether a viewer's choice to share the video peer to peer starts as yes. The page "
            "shows its one-line notice (other viewers can see your address) and the choice before any "
            "peer connection either way; a viewer's own choice, once made, is kept in their browser. "
            "See [P2P and privacy](../p2p.md#what-viewers-see-and-choose)")
    p2p_min_viewers: int = setting("with P2P on: peers only once this many viewers who chose to share are "
        "watching (with N viewers at most (N-1)/N of the bytes can come from peers)",
        kinds.whole(1, 10000), "3",
        doc="with P2P on: a page connects to peers only once this many viewers who chose to share are "
            "watching (1 to 10000; the heartbeat's answer counts them). With N viewers at most (N-1)/N "
            "of the video can come from peers; the default is from the p2p bench's measured share, see "
            "[When P2P starts](../p2p.md#when-p2p-starts)")
    p2p_upload_mb: int = setting("with P2P on: the most a viewer sends to other viewers per visit, in MB "
        "(0 = take from peers, send nothing)",
        kinds.whole(0, 1000000), "500",
        doc="with P2P on: the most a viewer's page sends to other viewers in one visit, in MB (0: it "
            "takes from peers and sends nothing). On a metered connection (cellular, or the browser's "
            "data saver) it sends nothing either way")
    private: bool = setting("a private stream: every stream door (playlists, events, the VM's segments, the "
        "tracker) asks for a viewer token got with PRIVATE_PASSPHRASE or an invite, and segment URIs carry an "
        "edge token Cloudflare checks (docs/private-streams.md)", kinds.boolean, "false",
        doc="a private stream: every stream door asks for a viewer token, got with `PRIVATE_PASSPHRASE` "
            "or an invite (`hls-broadcaster invite`), and every segment URI carries an edge token "
            "Cloudflare checks; `/health` and `/metrics` stay as they are. See [Private "
            "streams](../private-streams.md#private-streams)")
    # "" = not set (required with PRIVATE=true)
    private_secret: str = setting("with PRIVATE=true: at least 32 characters every token is derived from; changing "
        "it ends every viewer token and invite link at once", kinds.optional(kinds.nonempty), "", secret=True,
        doc="with `PRIVATE=true`: at least 32 characters (e.g. `openssl rand -hex 32`) from which every "
            "key is derived: viewer tokens, edge tokens, invite links. Changing it ends them all at once")
    private_passphrase: str = setting("with PRIVATE=true: the pass-phrase viewers type on the page; empty = "
        "invite links only", kinds.optional(kinds.nonempty), "", secret=True)
    # None = STATE_DIR/invites.json
    private_invites: Path | None = setting("with PRIVATE=true: the file of named invites hls-broadcaster invite "
        "add|revoke|list manages; empty = STATE_DIR/invites.json", kinds.optional_path, "")
    private_token_life: int = setting("with PRIVATE=true: seconds a viewer token lasts; the page renews it, "
        "re-checking its invite, so a revoked invite stops within one life", kinds.whole(30, 86_400), "600",
        doc="with `PRIVATE=true`: seconds a viewer token lasts (30 to 86400); the page renews it before "
            "it ends, re-checking its invite, so a revoked invite stops working within one life")
    private_edge_window: int = setting("with PRIVATE=true: seconds one edge token (verify=) is handed out for in "
        "segment URIs; each stays valid this long plus a listed segment's life", kinds.whole(10, 86_400), "300",
        doc="with `PRIVATE=true`: seconds one edge token (`verify=`) is written into new segment URIs "
            "(10 to 86400); each is accepted for this plus the longest a listed segment's URI is used "
            "(3 × the window listed + `CLEANUP_MARGIN`)")
    viewer_timeout: float = setting("seconds a viewer page stays counted after its last heartbeat (it beats every "
        "third of this while playing); also how fast a closed tab leaves the count when its goodbye is lost",
        kinds.bounded(3, 600), "30",
        doc="seconds a viewer page stays counted after its last heartbeat (3 to 600); the page beats "
            "every third of it while playing; see [Viewers watching](../viewers.md#viewers-watching)")
    show_viewer_count: bool = setting("show \"N watching\" on the viewer page (the count is in /metrics and /health "
        "either way)", kinds.boolean, "true")
    owncast_url: str = setting("Owncast's public URL as viewers' browsers reach it (e.g. https://stream.example.com): "
        "the viewer page pings its /api/ping while playing, so Owncast's own viewer count includes this "
        "page's viewers; empty = off", kinds.optional(kinds.url), "",
        doc="Owncast's public URL as viewers' browsers reach it (`https://owncast.example.com`): the "
            "viewer page pings its `/api/ping` while playing, so Owncast's own count includes this "
            "page's viewers, and reports each viewer's playback from the viewer's browser to its CMCD "
            "collector (`/api/metrics/cmcd`; `/api/metrics/playback` for an Owncast before 0.2), so "
            "its Stream Health includes them too")
    stream_title: str = setting("the viewer page's title and heading; empty = Owncast's server name (from its "
        "/api/config) when OWNCAST_URL is set, else 'Live stream'", kinds.page_text(MAX_TITLE), "",
        doc="the viewer page's title and heading (one line, at most 200 characters); empty: the name "
            "Owncast gives its server (its `/api/config`) when `OWNCAST_URL` is set, else \"Live stream\"; "
            "see [The page's words](../viewers.md#the-pages-words)")
    stream_description: str = setting("a line under the viewer page's heading; empty = Owncast's summary (from its "
        "/api/config) when OWNCAST_URL is set, else none", kinds.page_text(MAX_DESCRIPTION), "",
        doc="a line under the viewer page's heading (at most 1000 characters); empty: Owncast's server "
            "summary (its `/api/config`) when `OWNCAST_URL` is set, else none")
    # a CSP frame-ancestors value
    frame_ancestors: str = setting("sites allowed to show the viewer page in a frame (embedding, /embed): 'self', "
        "space-separated origins like https://example.com or https://*.example.com, '*' for any, or 'none'",
        kinds.frame_ancestors, "'self'",
        doc="the sites allowed to show the viewer page in a frame: `'self'`, space-separated origins "
            "(`https://www.example.com https://*.example.org`), `*` for any, or `none`; see [Embedding "
            "the player](../viewers.md#embedding-the-player)")
    # origins ?src= may name besides the service's own; ("*",) = any
    viewer_sources: tuple[str, ...] = setting("other sites whose playlists the viewer page (/ and /embed) may play with "
        "?src=: space-separated origins like https://other.example, or '*' for any; empty = this "
        "service's own playlists only (a link to this site cannot make it play someone else's stream)",
        kinds.viewer_sources, "",
        doc="other sites whose playlists the viewer page (`/` and `/embed`) may play with `?src=`: "
            "space-separated origins (`https://other.example`) or `*`; empty: only this service's "
            "playlists (its `/live/` and `/hls/` paths, and the bucket's copies it plays from), so a "
            "link to this site cannot make it play someone else's stream")
    # ("bucket",) = no content steering
    pathways: tuple[str, ...] = setting("delivery pathways players are offered, best first (HLS content steering): 'bucket' "
        "alone (the default), or 'bucket' then 'vm' (while the bucket fails, the VM serves segments itself: "
        "read docs/steering.md on Cloudflare's terms first) and/or a second bucket's ID ('backup', set "
        "with BACKUP_*)", kinds.pathways, "bucket",
        doc="the delivery pathways the multivariant playlist offers, in the order players should prefer them "
            "(HLS content steering): `bucket` alone (the default), or `bucket` then `vm` (while the service "
            "sees the bucket failing, it steers players to segments it serves itself, and back once the "
            "bucket serves again) and/or a second bucket's ID (`backup`, set with the `BACKUP_*` settings; "
            "another ID takes settings named after it, `B2_S3_ENDPOINT_URL`...). Cloudflare's terms do not "
            "cover the VM's segments through the tunnel: read [Steering](../steering.md) before you add `vm`")
    vm_pathway_url: str = setting("with 'vm' in PATHWAYS: the base URL the VM's pathway is reached at, on a "
        "hostname Cloudflare does not proxy (e.g. https://vm.example.com); empty: the host each viewer "
        "asked for, through the tunnel", kinds.optional(kinds.url), "",
        doc="with `vm` in `PATHWAYS`: the base URL (scheme and host) at which viewers reach the VM's "
            "pathway, on a hostname Cloudflare does not proxy, so its segments do not go through "
            "Cloudflare's CDN ([Cloudflare's terms](../steering.md#cloudflares-terms)); empty: the host each "
            "viewer asked for (through the tunnel)")
    vm_segment_mbps: float = setting("the most segment bytes the VM sends while players are steered to it, in "
        "megabits per second (behind a CDN that caches them it sends about one copy per data center)",
        kinds.megabits, "50",
        doc="the most segment bytes the VM's pathway sends, in megabits per second averaged over 10 s "
            "(past it: 503, and players retry); behind a Cloudflare cache rule the VM sends about one "
            "copy per data center, see [what it costs](../steering.md#what-it-costs)")
    vm_copies_mb: int = setting("disk space for the copies of segments an upload failed for (STATE_DIR/segments), "
        "kept until every bucket has them, in MB: an outage's backlog at the stream's bitrate",
        kinds.whole(16, 10_000_000), "1024",
        doc="disk space for the copies of segments whose upload failed (an outage's backlog), kept under "
            "`STATE_DIR/segments` until every bucket has them, so Owncast's cleanup cannot lose them; "
            "oldest dropped first past it. Nothing is written while the buckets take each upload at once. "
            "1024 MB holds about 28 minutes of a 5 Mbit/s stream (all variants together)")
    log_level: str = setting("debug, info, warning or error",
                             kinds.choice("debug", "info", "warning", "error"), "info")

    def __repr__(self) -> str:  # never print a secret, even in a traceback
        shown = {s.attr: ("***" if s.secret else getattr(self, s.attr)) for s in rows(Settings)}
        return f"Settings({shown}, buckets={self.buckets})"

    def secrets(self) -> list[str]:
        return [str(getattr(self, s.attr)) for s in rows(Settings) if s.secret] + [
            b.secret_access_key for b in self.buckets]


# Every setting with a name of its own, in the record's order: the first bucket's where `buckets` stands
# (another bucket's, <ID>_*, are named by PATHWAYS: buckets.bucket_rows).
_OWN = {row.attr: row for row in rows(Settings)}
SETTINGS: tuple[Setting, ...] = tuple(row for f in fields(Settings)
                                      for row in (bucket_rows(FIRST) if f.name == "buckets" else (_OWN[f.name],)))
