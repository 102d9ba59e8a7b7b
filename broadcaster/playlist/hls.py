"""The HLS publishing rules this service keeps, in one place.

Section numbers are from draft-pantos-hls-rfc8216bis (RFC 8216 numbers them one lower in 4.3.x).
Everything that decides what a playlist may say, or how a playlist or segment is served, lives here;
the generator and the server call these instead of repeating numbers.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from datetime import datetime, timezone
from pathlib import PurePosixPath

PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"  # 4 (Apple's validator rejects x-mpegURL)

# Names of the playlists written to the bucket (PUBLISH_PLAYLISTS): PREFIX/master.m3u8 names its
# variants relatively, as PREFIX/<n>/playlist.m3u8, next to their segments.
MASTER_PLAYLIST_NAME = "master.m3u8"
MEDIA_PLAYLIST_NAME = "playlist.m3u8"
# Owncast's own names, which its web page plays unchanged: /hls/stream.m3u8 is the multivariant
# playlist and names its variants <n>/stream.m3u8. The service answers there too (a tunnel routes
# those two paths to it), so Owncast's page plays from the bucket.
OWNCAST_PLAYLIST_NAME = "stream.m3u8"


def variant_uri(index: int, media_name: str) -> str:
    """A variant's URI in a multivariant playlist: relative (4.4.6.2), so it works behind any host."""
    return f"{index}/{media_name}"


def bucket_key(prefix: str, name: str) -> str:
    """PREFIX/name in the bucket, or name at its top level; PREFIX is R2_KEY_PREFIX as settings gives it
    (without '/' at either end)."""
    return f"{prefix}/{name}" if prefix else name


def object_key(prefix: str, index: int, name: str) -> str:
    """A variant's file in the bucket, PREFIX/<n>/name: where the multivariant playlist's relative URI
    (variant_uri) finds it."""
    return bucket_key(prefix, variant_uri(index, name))


def clip_key(prefix: str, clip_id: str, name: str) -> str:
    """A clip's playlist in the bucket: PREFIX/clips/<id>/master.m3u8 names its variants relatively
    (PREFIX/clips/<id>/<n>/playlist.m3u8), as the live multivariant playlist does."""
    return bucket_key(prefix, f"clips/{clip_id}/{name}")


def clip_segment_uri(prefix: str, key: str) -> str:
    """A segment's URI in a clip's variant playlist (clip_key(prefix, id, "<n>/playlist.m3u8")): relative
    to it, three folders up, so a clip plays from any host that serves the bucket and copies nothing."""
    return "../../../" + (key[len(prefix) + 1:] if prefix else key)


# Segment names are never reused, so viewers and the CDN may keep them for a year (appendix B.1).
SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"

_SEGMENT_TYPES = {
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",  # fMP4 init section (EXT-X-MAP)
    ".aac": "audio/aac",
}

# The window a sliding playlist must never shrink below without ENDLIST (6.2.2).
MIN_WINDOW_TARGET_DURATIONS = 3

# 6.2.2: a media sequence number always names the same URI, across restarts too. Every state saved
# reserves this many numbers past its own next one, for versions shown while saves fail
# (docs/hls-rules.md#numbers-across-restarts): a day of 1 s segments.
SEQUENCE_RESERVE = 86_400


def continue_above(reserved: int, next_sequence: int, last_discontinuities: list[int]) -> tuple[int, int]:
    """(first media sequence, discontinuity sequence) after a state not saved at a clean stop.

    The numbers from `next_sequence` up to `reserved` may have been served since, each adding at most one
    discontinuity to `last_discontinuities`. Both sequences go far enough above those that a player that saw
    any version served meanwhile sees a legal change (6.2.2); the first new segment carries
    EXT-X-DISCONTINUITY, so its number (hls.js's cc) is above every one served."""
    span = reserved - next_sequence
    high, low = max(last_discontinuities, default=0), min(last_discontinuities, default=0)
    return reserved + span + (high - low), high + span


def suffix(name: str) -> str:
    """PurePosixPath(name).suffix, without making a path (several times a segment: a few microseconds
    each): the last component's extension, "" for none, a leading dot's name or a trailing dot."""
    base = name.rstrip("/").rpartition("/")[2]
    dot = base.rfind(".")
    return base[dot:] if 0 < dot < len(base) - 1 else ""


def segment_content_type(name: str) -> str | None:
    """Content-Type for a segment file, or None when it is not a kind of file we publish."""
    return _SEGMENT_TYPES.get(suffix(name).lower())


def rounded_duration(duration: float) -> int:
    """EXTINF rounded to the nearest integer, as 4.4.3.1 compares it with the target duration: as it is
    written (milliseconds), so a 1.4996 s segment, written 1.500, counts as 2."""
    return math.floor(round(duration, 3) + 0.5)


def fits_target(duration: float, target_duration: int) -> bool:
    """4.4.3.1: every EXTINF, rounded to the nearest integer, must be <= EXT-X-TARGETDURATION."""
    return 0 < round(duration, 3) and rounded_duration(duration) <= target_duration


# Owncast's latency levels use 1 to 5 s segments; anything far beyond is a broken playlist, and a
# target duration is forever (6.2.1), so it must not be taken from one.
MAX_TARGET_DURATION = 30


def target_duration_for(advertised: int | None) -> int:
    """The target duration Owncast's playlist advertises, bounded (6.2.1: a playlist keeps it).

    Owncast's ffmpeg writes its longest listed segment rounded to the nearest second (measured,
    docs/owncast.md), the rounding 4.4.3.1 compares with, so its value fits what it lists so far; a
    longer segment later starts a new playlist with a raised target (publish/target.py, TargetPolicy.fit).
    """
    return min(MAX_TARGET_DURATION, max(1, advertised or 1))


def stalled_after(target_duration: int | None) -> int:
    """Seconds without a new segment after which a variant's input counts as stopped: three target
    durations (of 3 s while none is known), so one late segment is not taken for it."""
    return 3 * (target_duration or 3)


def min_window_seconds(target_duration: int) -> float:
    return float(MIN_WINDOW_TARGET_DURATIONS * target_duration)


def playlist_version(*, has_map: bool) -> int:
    """The lowest EXT-X-VERSION the playlist needs (8): 3 for fractional EXTINF, 6 for EXT-X-MAP."""
    return 6 if has_map else 3


# A segment one variant lacks where the others list it (its file never finished, or its upload failed):
# 4.4.4.7's EXT-X-GAP, which keeps its EXTINF and date so the variant keeps the number every variant
# gives that moment (6.2.4), with no discontinuity. hls.js loads the moment from a variant that has it; a
# moment lost in every variant is left out instead (docs/hls-rules.md, "Segments").
GAP_TAG = "#EXT-X-GAP"


@functools.lru_cache(maxsize=64)  # asked on every playlist request; a handful of target durations exist
def playlist_cache_control(target_duration: int) -> str:
    """Media playlists are cached for about half a target duration (appendix B.1), at least 1 s."""
    return f"public, max-age={max(1, target_duration // 2)}"


# A playlist that is not ready yet (or an error) must not be cached long: hls.js would keep it (B.1).
UNREADY_CACHE_CONTROL = "no-cache"
# An answer naming URIs for one viewer's scheme that a shared cache might hand to viewers of another
# (http:// URIs behind a proxy: http/clients.py's Here): the viewer's own, never a cache's.
UNSHARED_CACHE_CONTROL = "private, no-store"


def format_program_date_time(epoch_seconds: float) -> str:
    """4.4.4.6: ISO 8601 with a time zone and millisecond precision."""
    dt = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- Blocking playlist reload (6.2.5.2, 6.2.6) ------------------------------------------------------

# HOLD-BACK, the distance a player keeps from the live edge, must be at least three target durations.
HOLD_BACK_TARGET_DURATIONS = 3
# A request for a segment more than two past the last listed one is an error (400).
MSN_AHEAD_LIMIT = 2
# A request for a segment listed already is answered at once (6.2.5.2); further behind than this, with
# the whole newest version (a delta skips what a player that late may not hold), and what one client may
# cost that way is bounded (broadcaster/http/late.py).
MSN_BEHIND_LIMIT = 2
# A held request that waited three target durations gets 503: the stream is not advancing.
BLOCK_TIMEOUT_TARGET_DURATIONS = 3


def server_control(target_duration: int, *, can_skip: bool = False) -> str:
    """The EXT-X-SERVER-CONTROL line of a playlist served by an origin that can block (4.4.3.8)."""
    skip = f"CAN-SKIP-UNTIL={skip_until(target_duration):.1f}," if can_skip else ""
    hold_back = HOLD_BACK_TARGET_DURATIONS * target_duration
    return f"#EXT-X-SERVER-CONTROL:{skip}CAN-BLOCK-RELOAD=YES,HOLD-BACK={hold_back:.1f}"


# A full playlist answered without gzip (ffmpeg, curl; never a browser or a CDN) lists at most this many
# bytes of its newest segments: a rewind window must not make one small request cost megabytes
# (docs/hls-rules.md, "Caching").
MAX_IDENTITY_BYTES = 64 * 1024


def start_at_edge(target_duration: int) -> str:
    """EXT-X-START (4.4.2.2) of a playlist listing more than players keep behind the live edge (a
    rewind window): start where HOLD-BACK says, not at the window's start."""
    return f"#EXT-X-START:TIME-OFFSET=-{HOLD_BACK_TARGET_DURATIONS * target_duration:.1f}"


def block_timeout(target_duration: int) -> float:
    return float(BLOCK_TIMEOUT_TARGET_DURATIONS * target_duration)


def blocking_cache_control(target_duration: int) -> str:
    """An answer to a blocking request has a URL of its own: it may be cached for six target
    durations (appendix B.1), which lets a CDN collapse many viewers' identical requests."""
    return f"public, max-age={6 * target_duration}"


# -- Playlist delta updates (6.2.5.1, 4.4.5.2) ------------------------------------------------------

# CAN-SKIP-UNTIL is at least six target durations: a delta update keeps that much of the playlist's end.
SKIP_UNTIL_TARGET_DURATIONS = 6
# Delta updates are offered only when a window this long lets them leave out a third or more of it;
# below that the saving does not pay for a second rendering per version.
DELTA_MIN_WINDOW_TARGET_DURATIONS = 9
# EXT-X-SKIP needs EXT-X-VERSION 9 (8); only the delta update itself says so.
DELTA_PLAYLIST_VERSION = 9
# _HLS_skip=YES skips segments; v2 also skips date ranges, which these playlists never carry.
SKIP_REQUEST_VALUES = frozenset({"YES", "v2"})


def skip_until(target_duration: int) -> float:
    return float(SKIP_UNTIL_TARGET_DURATIONS * target_duration)


def offers_delta_updates(window_seconds: float, target_duration: int) -> bool:
    return window_seconds >= DELTA_MIN_WINDOW_TARGET_DURATIONS * target_duration


# -- Segment hashes for viewer-to-viewer delivery ---------------------------------------------------

# With P2P on, each segment of a live media playlist carries the SHA-256 of the bytes the service put in
# the bucket, before its EXTINF: "#EXT-HB-SHA256:" and 43 characters of unpadded base64url. viewer/p2p.js
# refuses a peer's copy unless it hashes the same: a viewer trusts the playlist, no peer. A tag of our own
# (#EXT-X- is the spec's): clients ignore tags they do not know (6.3.1). Before EXTINF, where naive
# parsers expect no URI. Live media playlists only: clips and recordings are not shared between peers.
SEGMENT_HASH_TAG = "#EXT-HB-SHA256"
_SHA256_BYTES = 32
# Only the segments near the live edge carry their hash: those are the ones peers share (a viewer
# further behind loads from the bucket). Hashes do not compress: on every segment of a 4 h window they
# made the gzipped playlist 7x bigger.
HASHED_EDGE_SECONDS = 60
HASHED_MIN_SEGMENTS = 6  # twice the distance hls.js keeps, whatever the target duration


def hashed_segments(target_duration: int) -> int:
    """How many of a media playlist's newest segments carry their hash (about HASHED_EDGE_SECONDS)."""
    return max(HASHED_MIN_SEGMENTS, math.ceil(HASHED_EDGE_SECONDS / target_duration))


def segment_hash_line(digest: bytes) -> str:
    """The tag line (with its newline) naming a segment's SHA-256."""
    return f"{SEGMENT_HASH_TAG}:{encode_segment_hash(digest)}\n"


def encode_segment_hash(digest: bytes) -> str:
    if len(digest) != _SHA256_BYTES:
        raise ValueError(f"a SHA-256 is {_SHA256_BYTES} bytes, not {len(digest)}")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def decode_segment_hash(text: str) -> bytes:
    """encode_segment_hash's inverse; ValueError for anything it did not write."""
    if len(text) != 43 or not _BASE64URL.fullmatch(text):
        raise ValueError("a segment hash is not 43 characters of base64url")
    digest = base64.urlsafe_b64decode(text + "=")
    if encode_segment_hash(digest) != text:  # the last character's spare bits must be zero
        raise ValueError("a segment hash is not canonical base64url")
    return digest


_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


# -- Content steering: pathways and the steering manifest (4.4.6.6, 7; Apple's "HLS Content Steering
# Specification") ------------------------------------------------------------------------------------

# A pathway is a whole copy of the variants at other URIs; every variant is offered once per pathway,
# its EXT-X-STREAM-INF carrying PATHWAY-ID (4.4.6.2): the bucket's, the VM's, a second bucket's.
BUCKET_PATHWAY = "bucket"
VM_PATHWAY = "vm"
# Another bucket's pathway: its media playlists served here at <folder>/<its id>/<n>/<media name>, listing
# its segments at <ID>_PUBLIC_URL/<key> (service/delivery.py); `backup` is the id the guides use.
BACKUP_PATHWAY = "backup"
PATHWAYS = (BUCKET_PATHWAY, VM_PATHWAY, BACKUP_PATHWAY)
# 7.1: a pathway ID is made of [a-z], [A-Z], [0-9], '.', '-' and '_' only.
_PATHWAY_ID = re.compile(r"[A-Za-z0-9._-]+")


def is_pathway_id(text: str) -> bool:
    return bool(_PATHWAY_ID.fullmatch(text))


# The steering manifest, at <the multivariant playlist's folder>/steering.json: its SERVER-URI is
# relative (a URI in a playlist resolves against the playlist's, 4.1), so /live/master.m3u8 and Owncast's
# /hls/stream.m3u8 each find theirs through the tunnel. JSON (7.1), VERSION 1.
STEERING_MANIFEST_NAME = "steering.json"
STEERING_VERSION = 1
STEERING_CONTENT_TYPE = "application/json"
# The VM's pathway: its media playlists at <folder>/vm/<n>/<media name>, listing its segments at
# /live/vm/<n>/<file>: an absolute-path reference, one URL per segment however the playlist was reached
# (one CDN copy), which Shaka 4.16 also finds after it changed pathway.
VM_FOLDER = "vm"
VM_SEGMENT_FOLDER = "/live/vm"


def vm_segment_uri(index: int, key: str) -> str:
    """A segment's (or init section's) URI in variant `index`'s VM pathway media playlist:
    /live/vm/<n>/<its file name>, which the VM answers from its copy of that very key (never from a
    file named by the URL: vm/segments.py looks the key up)."""
    return f"{VM_SEGMENT_FOLDER}/{index}/{PurePosixPath(key).name}"


def stable_variant_id(index: int) -> str:
    """STABLE-VARIANT-ID (4.4.6.2): the same variant on every pathway, so a player keeps its quality
    when it changes pathway (hls.js compares it) and a pathway clone can name variants (7.2)."""
    return f"v{index}"


def steering_ttl(target_duration: int) -> int:
    """TTL (7.1): how long a player keeps a steering manifest before it asks again. Half a target duration
    (at least 1 s): a player that moves only with the manifest must have it before its own failover (Shaka
    4.16 switches rendition, from the pathway its last manifest put first, about 1.5 s after the first
    failure; reloaded every target duration, the manifest missed that moment in about half the outages).
    The cost is one small request per viewer per TTL, answered by the CDN's cache (docs/steering.md)."""
    return max(1, (target_duration + 1) // 2)


def steering_cache_control(ttl: int) -> str:
    """A CDN may keep the steering manifest for half its TTL: a player then sees a change within one and
    a half TTLs, and the VM answers each data center about twice per TTL however many viewers ask."""
    return f"public, max-age={max(1, ttl // 2)}"


# A steering manifest nobody should ask for (the service runs without pathways now): 410 tells a
# player to stop asking for the rest of its session (7.1); it keeps the pathways it has.
STEERING_GONE_STATUS = 410
