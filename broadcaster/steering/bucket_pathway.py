"""The bucket pathway's media playlists as the service serves them (/live/<n>/, /hls/<n>/), for a player
that stays on that pathway while players are steered away from it (to the VM's, or to a second bucket's).

Normally they are the publisher's bucket versions (publish/release.py's `playlists`): only what is in the
bucket, and this adds nothing but a look at the steering policy. While the VM's pathway is first and
uploads are behind (R2 refuses writes, viewers still read it: its versions stop advancing while the VM's
list every finished segment), a player that does not leave a pathway whose playlists still answer would
stall once its buffer ran out: video.js (VHS 3.17, Owncast's page) changes pathway only on an error,
not on the steering manifest alone, and a player without content steering that picked the bucket's
variants has no manifest to read. So while players are steered away from the bucket (to the VM, or to a
second bucket: PATHWAYS=bucket,backup,vm, where such a player would stall all the same), the bucket
pathway serves the VM pathway's
version, every segment not in the bucket yet listed at its VM URI (hls.vm_segment_uri, an absolute path
on the service's host): such a player keeps playing, from the VM, as the steered ones do, and the VM's
bytes count as steered (the cap applies as to any VM answer).

A media sequence number keeps its URI for as long as the playlist lists it (6.2.2; hls.js >= 1.6 raises
"media sequence mismatch" otherwise): a segment listed here at its VM URI stays there, its upload landed
or not, until it leaves the window, across a restart too (`ListedAtVm`, saved with the state); the VM
redirects a request for it to the bucket's copy once the bucket serves again (http/steered.py's
`elsewhere`). Nor does a version go back: after players are steered back, the VM's version is served
(new segments at their VM URIs) until the bucket's has caught up with the last one served here. The
same numbers, discontinuities, durations and dates on every version: only URIs differ from the bucket's
own (6.2.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from ..numbers import whole_number
from ..playlist import hls
from ..playlist.rendered import Rendered
from ..state import validate

_MAP = b'#EXT-X-MAP:URI="'


class Versions(Protocol):
    """One pathway's versions as the publisher shows them (publish/visible.py's VisiblePlaylists)."""

    @property
    def target_duration(self) -> int | None: ...

    @property
    def held_requests(self) -> int: ...

    def media_playlist(self, variant: int) -> Rendered | None: ...

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None: ...


VmUri = Callable[[int, bytes], bytes]  # (variant, a URI the bucket's version lists) -> the VM's URI for it


@dataclass(slots=True)
class _Variant:
    at_vm: set[bytes] = field(default_factory=set)  # file names listed here at their VM URI, still listed
    through: int = -1  # the last number a version with VM URIs listed (never go back below it)
    made: tuple[Rendered, Rendered | None, Rendered] | None = None  # (base, landed, served) last made


# Bounds on what a saved state may hold here, far above what the service writes.
_MAX_VARIANTS = 100
_MAX_NAMES = 100_000  # names listed at their VM URI and still in a window (REWIND_SECONDS at 1 s segments)


class ListedAtVm:
    """What each variant's bucket-pathway playlist listed at VM URIs, still in its window: saved with the
    state (state/snapshots.py, "bucket_pathway"), so that after a restart each such number is listed at
    the same URI until it leaves the window, as before the stop (6.2.2). Before, a restart listed it at
    the bucket's URL (seen in test_presigned's restart under load: a player's media sequence mismatch)."""

    def __init__(self) -> None:
        self.variants: dict[int, _Variant] = {}

    def snapshot(self) -> dict[str, object]:
        return {str(v): {"at_vm": sorted(name.decode() for name in state.at_vm), "through": state.through}
                for v, state in self.variants.items() if state.at_vm}

    def restore(self, data: object) -> None:
        """Continue from `snapshot`; raises ValueError (nothing changed) when it does not add up."""
        variants: dict[int, _Variant] = {}
        for key, raw in validate.mapping(data, "the bucket pathway's VM URIs", _MAX_VARIANTS).items():
            variant = whole_number(key, 4)
            if variant is None:
                raise ValueError(f"a variant listing VM URIs is named {validate.describe(key)}")
            raw = validate.mapping(raw, f"variant {variant}'s VM URIs", 2)
            names = validate.array(validate.field(raw, "at_vm", "VM URIs"), "at_vm", _MAX_NAMES)
            at_vm = set()
            for name in names:
                text = validate.text(name, "a name listed at its VM URI", 256)
                if not text or "/" in text or not text.isascii():
                    raise ValueError(f"a name listed at its VM URI is {validate.describe(text)}")
                at_vm.add(text.encode())
            through = validate.integer(validate.field(raw, "through", "VM URIs"), "through", -1)
            variants[variant] = _Variant(at_vm, through)
        self.variants = variants


class BucketPathway:
    """The server's PlaylistSource for the bucket pathway's media playlists. `landed`: the bucket's
    versions (only what is in the bucket); `ahead`: the VM's (every segment the VM kept, with the bucket's
    URLs); `vm_uri`: a segment's VM URI (steering/vm_playlists.py's, which also lets the VM serve it);
    `away`: players are steered away from the bucket now (the VM, or a second bucket, is first)."""

    def __init__(self, landed: Versions, ahead: Versions, vm_uri: VmUri, away: Callable[[], bool],
                 listed: ListedAtVm | None = None) -> None:
        """`listed`: what was listed at VM URIs (the service's, restored from the state)."""
        self._landed = landed
        self._ahead = ahead
        self._vm_uri = vm_uri
        self._away = away
        self._listed = listed if listed is not None else ListedAtVm()
        self._held = 0  # requests held on the VM's versions

    @property
    def _variants(self) -> dict[int, _Variant]:
        return self._listed.variants

    @property
    def target_duration(self) -> int | None:
        return self._landed.target_duration

    @property
    def held_requests(self) -> int:
        return self._landed.held_requests + self._held

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        return None  # the multivariant playlists are steering/masters.py's

    def media_playlist(self, variant: int) -> Rendered | None:
        landed = self._landed.media_playlist(variant)
        state = self._variants.get(variant)
        if state is None and not self._away():
            return landed  # the bucket serves, and nothing was listed here at a VM URI: the hot path
        if state is None:
            state = self._variants[variant] = _Variant()
        if self._mixing(state, landed):
            base = self._ahead.media_playlist(variant) or landed
        else:
            base = landed
        if base is None:
            return None
        made = state.made
        if made is not None and made[0] is base and made[1] is landed:
            return made[2]
        served = self._make(variant, state, base, landed)
        state.made = (base, landed, served)
        if not state.at_vm and not self._away():
            del self._variants[variant]  # every VM URI left the window: back to the bucket's own versions
        return served

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        if self._mixing(self._variants.get(variant), self._landed.media_playlist(variant)):
            self._held += 1
            try:
                rendered = await self._ahead.wait_for_sequence(variant, sequence, timeout)
            finally:
                self._held -= 1
        else:
            rendered = await self._landed.wait_for_sequence(variant, sequence, timeout)
        return None if rendered is None else self.media_playlist(variant)

    def _mixing(self, state: _Variant | None, landed: Rendered | None) -> bool:
        """The VM's version is served: players are steered away from the bucket, or one with VM URIs listed
        more than the bucket's version does yet."""
        return self._away() or (state is not None and state.through > (-1 if landed is None else landed.last_sequence))

    def _make(self, variant: int, state: _Variant, base: Rendered, landed: Rendered | None) -> Rendered:
        # Serving the VM's version, whatever the bucket's does not list is not in the bucket: all of it
        # while the bucket has no version yet (players steered away before the first upload landed).
        in_bucket = None if base is landed else set(_names(landed.body)) if landed is not None else set()
        at_vm = state.at_vm
        changed = False

        def uri(raw: bytes) -> bytes:
            nonlocal changed
            name = _name(raw)
            if name in at_vm or (in_bucket is not None and name not in in_bucket):
                at_vm.add(name)
                changed = True
                return self._vm_uri(variant, raw)
            return raw

        def body_of(body: bytes) -> bytes:
            lines = body.split(b"\n")
            for i, line in enumerate(lines):
                if line.startswith(_MAP):
                    end = line.index(b'"', len(_MAP))
                    lines[i] = _MAP + uri(line[len(_MAP):end]) + line[end:]
                elif line and not line.startswith(b"#"):
                    lines[i] = uri(line)
            return b"\n".join(lines)

        served = base.replaced(body_of)
        at_vm.intersection_update(_names(base.body))  # those that left the window (a delta lists fewer)
        if not changed:
            return base
        state.through = max(state.through, base.last_sequence)
        return served


def _name(uri: bytes) -> bytes:
    return urlsplit(uri).path.rpartition(b"/")[2]


def _names(body: bytes) -> list[bytes]:
    """The file name of each URI a media playlist lists (segments and EXT-X-MAP)."""
    out = []
    for raw in body.split(b"\n"):
        if raw.startswith(_MAP):
            out.append(_name(raw[len(_MAP):raw.index(b'"', len(_MAP))]))
        elif raw and not raw.startswith(b"#"):
            out.append(_name(raw))
    return out
