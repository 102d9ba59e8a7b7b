"""The HLS publishing rules this service keeps, in one place.

Section numbers are from draft-pantos-hls-rfc8216bis (RFC 8216 numbers them one lower in 4.3.x).
"""

from __future__ import annotations

import base64
import functools
import math
import re
from datetime import datetime, timezone
from pathlib import PurePosixPath

PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"  # 4 (Apple's validator rejects x-mpegURL)

# The bucket's playlists: PREFIX/master.m3u8 names its variants relatively, as PREFIX/<n>/playlist.m3u8.
MASTER_PLAYLIST_NAME = "master.m3u8"
MEDIA_PLAYLIST_NAME = "playlist.m3u8"
# Owncast's own names (/hls/stream.m3u8, <n>/stream.m3u8), answered too so Owncast's page plays unchanged.
OWNCAST_PLAYLIST_NAME = "stream.m3u8"


def variant_uri(index: int, media_name: str) -> str:
    """A variant's URI in a multivariant playlist: relative (4.4.6.2), so it works behind any host."""
    return f"{index}/{media_name}"


def bucket_key(prefix: str, name: str) -> str:
    """PREFIX/name in the bucket, or name at its top level (PREFIX has no '/' at either end)."""
    return f"{prefix}/{name}" if prefix else name


def object_key(prefix: str, index: int, name: str) -> str:
    """A variant's file in the bucket, PREFIX/<n>/name, where variant_uri finds it."""
    return bucket_key(prefix, variant_uri(index, name))


def clip_key(prefix: str, clip_id: str, name: str) -> str:
    """A clip's playlist in the bucket, PREFIX/clips/<id>/name."""
    return bucket_key(prefix, f"clips/{clip_id}/{name}")


def clip_segment_uri(prefix: str, key: str) -> str:
    """A segment's URI in a clip's variant playlist: relative, so a clip plays from any host of the bucket."""
    return "../../../" + (key[len(prefix) + 1:] if prefix else key)


# Segment names are never reused, so viewers and the CDN may keep them for a year (appendix B.1).
SEGMENT_CACHE_CONTROL = "public, max-age=31536000, immutable"

_SEGMENT_TYPES = {
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",  # fMP4 init section (EXT-X-MAP)
    ".aac": "audio/aac",
}

MIN_WINDOW_TARGET_DURATIONS = 3  # a sliding playlist never shrinks below this without ENDLIST (6.2.2)

# 6.2.2 across restarts: numbers each state saved reserves past its own next one, for versions shown
# while saves fail (docs/hls-rules.md#numbers-across-restarts): a day of 1 s segments.
SEQUENCE_RESERVE = 86_400


def continue_above(reserved: int, next_sequence: int, last_discontinuities: list[int]) -> tuple[int, int]:
    """(first media sequence, discontinuity sequence) after a state not saved at a clean stop: above
    anything served meanwhile (up to `reserved`, each number adding at most one discontinuity), so a
    player sees a legal change (6.2.2)."""
    span = reserved - next_sequence
    high, low = max(last_discontinuities, default=0), min(last_discontinuities, default=0)
    return reserved + span + (high - low), high + span


def suffix(name: str) -> str:
    """PurePosixPath(name).suffix, without making a path (asked several times a segment)."""
    base = name.rstrip("/").rpartition("/")[2]
    dot = base.rfind(".")
    return base[dot:] if 0 < dot < len(base) - 1 else ""


def segment_content_type(name: str) -> str | None:
    """Content-Type for a segment file, or None when it is not a kind of file we publish."""
    return _SEGMENT_TYPES.get(suffix(name).lower())


def rounded_duration(duration: float) -> int:
    """EXTINF rounded to the nearest integer (4.4.3.1), as written (milliseconds): 1.4996 s counts as 2."""
    return math.floor(round(duration, 3) + 0.5)


def fits_target(duration: float, target_duration: int) -> bool:
    """4.4.3.1: every EXTINF, rounded to the nearest integer, must be <= EXT-X-TARGETDURATION."""
    return 0 < round(duration, 3) and rounded_duration(duration) <= target_duration


# Owncast uses 1 to 5 s segments; far beyond is a broken playlist, and a target duration is forever (6.2.1).
MAX_TARGET_DURATION = 30


def target_duration_for(advertised: int | None) -> int:
    """The target duration Owncast's playlist advertises, bounded (6.2.1: a playlist keeps it)."""
    return min(MAX_TARGET_DURATION, max(1, advertised or 1))


def stalled_after(target_duration: int | None) -> int:
    """Seconds without a new segment before a variant's input counts as stopped: three target durations."""
    return 3 * (target_duration or 3)


def min_window_seconds(target_duration: int) -> float:
    return float(MIN_WINDOW_TARGET_DURATIONS * target_duration)


def playlist_version(*, has_map: bool) -> int:
    """The lowest EXT-X-VERSION the playlist needs (8): 3 for fractional EXTINF, 6 for EXT-X-MAP."""
    return 6 if has_map else 3


# A segment one variant lacks where the others list it (4.4.4.7): it keeps its EXTINF and date, so every
# variant numbers that moment alike (6.2.4); a moment lost in every variant is left out instead.
GAP_TAG = "#EXT-X-GAP"


@functools.lru_cache(maxsize=64)  # asked on every playlist request; a handful of target durations exist
def playlist_cache_control(target_duration: int) -> str:
    """Media playlists are cached for about half a target duration (appendix B.1), at least 1 s."""
    return f"public, max-age={max(1, target_duration // 2)}"


UNREADY_CACHE_CONTROL = "no-cache"  # not ready yet (or an error): hls.js would keep it (B.1)
# URIs for one viewer's scheme (http:// behind a proxy) that a shared cache must not give another viewer.
UNSHARED_CACHE_CONTROL = "private, no-store"


def format_program_date_time(epoch_seconds: float) -> str:
    """4.4.4.6: ISO 8601 with a time zone and millisecond precision."""
    dt = datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- Blocking playlist reload (6.2.5.2, 6.2.6) ------------------------------------------------------

HOLD_BACK_TARGET_DURATIONS = 3  # HOLD-BACK: at least three target durations from the live edge
MSN_AHEAD_LIMIT = 2  # a request for more than two past the last listed segment is an error (400)
# A request for a listed segment is answered at once (6.2.5.2); further behind than this, with the whole
# newest version, not a delta (bounded per client: broadcaster/http/late.py).
MSN_BEHIND_LIMIT = 2
BLOCK_TIMEOUT_TARGET_DURATIONS = 3  # a held request waiting this long gets 503


def server_control(target_duration: int, *, can_skip: bool = False) -> str:
    """The EXT-X-SERVER-CONTROL line of a playlist served by an origin that can block (4.4.3.8)."""
    skip = f"CAN-SKIP-UNTIL={skip_until(target_duration):.1f}," if can_skip else ""
    hold_back = HOLD_BACK_TARGET_DURATIONS * target_duration
    return f"#EXT-X-SERVER-CONTROL:{skip}CAN-BLOCK-RELOAD=YES,HOLD-BACK={hold_back:.1f}"


MAX_IDENTITY_BYTES = 64 * 1024  # the newest segments a full playlist lists without gzip (ffmpeg, curl)


def start_at_edge(target_duration: int) -> str:
    """EXT-X-START (4.4.2.2) of a rewind window: start where HOLD-BACK says, not at the window's start."""
    return f"#EXT-X-START:TIME-OFFSET=-{HOLD_BACK_TARGET_DURATIONS * target_duration:.1f}"


def block_timeout(target_duration: int) -> float:
    return float(BLOCK_TIMEOUT_TARGET_DURATIONS * target_duration)


def blocking_cache_control(target_duration: int) -> str:
    """A blocking request's answer may be cached for six target durations (appendix B.1)."""
    return f"public, max-age={6 * target_duration}"


# -- Playlist delta updates (6.2.5.1, 4.4.5.2) ------------------------------------------------------

SKIP_UNTIL_TARGET_DURATIONS = 6  # CAN-SKIP-UNTIL: a delta update keeps at least this much of the end
# Delta updates only where they leave out a third or more of the window: else not worth a second rendering.
DELTA_MIN_WINDOW_TARGET_DURATIONS = 9
DELTA_PLAYLIST_VERSION = 9  # EXT-X-SKIP (8); only the delta update itself says so
SKIP_REQUEST_VALUES = frozenset({"YES", "v2"})  # v2 also skips date ranges, which these never carry


def skip_until(target_duration: int) -> float:
    return float(SKIP_UNTIL_TARGET_DURATIONS * target_duration)


def offers_delta_updates(window_seconds: float, target_duration: int) -> bool:
    return window_seconds >= DELTA_MIN_WINDOW_TARGET_DURATIONS * target_duration


# -- Segment hashes for viewer-to-viewer delivery ---------------------------------------------------

# With P2P on, a live media playlist's segment carries the SHA-256 of its bytes in the bucket before its
# EXTINF, as 43 characters of unpadded base64url; viewer/p2p.js refuses a peer's copy that differs. A tag
# of our own: clients ignore tags they do not know (6.3.1).
SEGMENT_HASH_TAG = "#EXT-HB-SHA256"
_SHA256_BYTES = 32
HASHED_EDGE_SECONDS = 60  # only segments near the live edge (those peers share): hashes do not compress
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

# A pathway is a whole copy of the variants at other URIs (PATHWAY-ID, 4.4.6.2): the bucket's, the VM's,
# another bucket's (`backup` is the id the guides use).
BUCKET_PATHWAY = "bucket"
VM_PATHWAY = "vm"
BACKUP_PATHWAY = "backup"
PATHWAYS = (BUCKET_PATHWAY, VM_PATHWAY, BACKUP_PATHWAY)
_PATHWAY_ID = re.compile(r"[A-Za-z0-9._-]+")  # 7.1


def is_pathway_id(text: str) -> bool:
    return bool(_PATHWAY_ID.fullmatch(text))


STEERING_MANIFEST_NAME = "steering.json"  # beside the multivariant playlist (a relative SERVER-URI, 4.1)
STEERING_VERSION = 1
STEERING_CONTENT_TYPE = "application/json"
# The VM's media playlists at <folder>/vm/<n>/<media name>, its segments at /live/vm/<n>/<file>: an
# absolute path, one URL (one CDN copy) however the playlist was reached.
VM_FOLDER = "vm"
VM_SEGMENT_FOLDER = "/live/vm"


def vm_segment_uri(index: int, key: str) -> str:
    """A segment's (or init section's) URI on the VM's pathway: /live/vm/<n>/<its file name>."""
    return f"{VM_SEGMENT_FOLDER}/{index}/{PurePosixPath(key).name}"


def stable_variant_id(index: int) -> str:
    """STABLE-VARIANT-ID (4.4.6.2): a player keeps its quality when it changes pathway."""
    return f"v{index}"


def steering_ttl(target_duration: int) -> int:
    """TTL (7.1): half a target duration, at least 1 s, so a player that moves only with the manifest has
    it before its own failover (Shaka 4.16's comes about 1.5 s after the first failure; docs/steering.md)."""
    return max(1, (target_duration + 1) // 2)


def steering_cache_control(ttl: int) -> str:
    """A CDN may keep the steering manifest for half its TTL: a change is seen within one and a half."""
    return f"public, max-age={max(1, ttl // 2)}"


STEERING_GONE_STATUS = 410  # asked of a service without pathways: a player stops asking (7.1)
