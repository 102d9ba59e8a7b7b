"""The bucket pathway's playlists while only the bucket's writes fail (issue 48, steering/bucket_pathway.py):
a player that stays on the bucket's pathway when steered to the VM's (video.js, whose VHS 3.17 changes
pathway only on an error; a player without content steering that picked the bucket's variants) keeps
getting new segments, at the VM's URIs, each number keeping its URI for as long as it is listed (6.2.2),
and the VM serves them, counted as steered. A real Publisher over a scripted bucket (World), the real
policy and the service's own wiring of the routes (http/steered.py), over real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from broadcaster.http import PlaylistOptions, create_app
from broadcaster.http.steered import pathways
from broadcaster.metrics import Metrics
from broadcaster.settings import load_settings
from broadcaster.steering.bucket_pathway import ListedAtVm
from broadcaster.steering.copies import Copies
from broadcaster.steering.metrics import PathwayCounts
from broadcaster.steering.policy import BucketSignals, SteeringPolicy
from tests.support.client import Client, get
from tests.support.fakes import Clock, FakeHealth
from tests.support.hls_checker import VariantSetChecker
from tests.support.settings_env import env
from tests.support.waiting import until
from tests.support.world import PUBLIC, World

VM = "/live/vm/0/"
BUCKET = f"{PUBLIC}/live/0/"


class Rig:
    def __init__(self, world: World, client: Client, policy: SteeringPolicy, counts: PathwayCounts,
                 behind: list[float], clock: Clock) -> None:
        self.world, self.client, self.policy, self.counts, self.behind, self.clock = (
            world, client, policy, counts, behind, clock)
        self.served: list[str] = []  # every version of the bucket pathway's playlist a player got, in order
        self.copies: Copies | None = None  # the VM's copies (make)

    async def bucket_playlist(self, query: str = "") -> list[tuple[str, str]]:
        """(where, name) of each segment the bucket pathway's playlist lists: `bucket` or `vm`."""
        status, _, body = await get(self.client, f"/live/0/playlist.m3u8{query}")
        assert status == 200, body
        text = body.decode()
        self.served.append(text)
        out = []
        for line in text.splitlines():
            if line.startswith(BUCKET):
                out.append(("bucket", line.removeprefix(BUCKET)))
            elif line.startswith(VM):
                out.append(("vm", line.removeprefix(VM)))
            elif line and not line.startswith("#"):
                raise AssertionError(f"a URI on neither pathway: {line}")
        return out

    def steer(self, behind: float) -> None:
        self.behind[0] = behind
        self.policy.evaluate()


async def make(tmp_path: Path, aiohttp_client: AiohttpClient, listed: ListedAtVm | None = None,
               on: tuple[World, Copies] | None = None) -> Rig:
    """`listed`: the service's record of what was listed at VM URIs; `on`: the world (and the VM's
    copies) of another rig, served by new routes (as a restarted service continues its playlists)."""
    if on is None:
        (tmp_path / "state").mkdir()
        copies = Copies(tmp_path / "state", max_bytes=1 << 20, keep_for=600)
        copies.open()
        (tmp_path / "hls").mkdir()
        world = World(tmp_path / "hls", window=30.0, keeper=copies, can_block_reload=True)
    else:
        world, copies = on
    settings = load_settings(environ=env(tmp_path))
    assert settings.pathways == ("bucket", "vm") and settings.r2_key_prefix == "live"
    clock = Clock()
    behind = [0.0]
    policy = SteeringPolicy(settings.pathways, {"bucket": BucketSignals(behind=lambda: behind[0])},
                            lambda: world.playlists.target_duration, interval=2.0, clock=clock)
    counts = PathwayCounts(lambda: policy.first != "bucket")
    assert world.ahead is not None
    routes = pathways(settings, policy, copies, world.ahead, world.playlists, counts, listed_at_vm=listed)
    app = create_app(world.playlists, FakeHealth(), Metrics(), playlist_options=PlaylistOptions(pathways=routes))
    rig = Rig(world, await aiohttp_client(app, auto_decompress=False), policy, counts, behind, clock)
    rig.copies = copies
    return rig


async def one_landed_one_uploading(w: World) -> None:
    """Segment 0 in the bucket; segment 1 kept by the VM, its upload held."""
    w.owncast_lists(0, "stream-abc-0.ts")
    await until(lambda: w.playlists.media_playlist(0) is not None)
    w.store.hold("live/0/stream-abc-1.ts")
    w.owncast_lists(0, "stream-abc-1.ts")
    await until(lambda: (r := w.ahead.media_playlist(0)) is not None and b"stream-abc-1" in r.body)  # type: ignore[union-attr]


async def test_steered_to_the_vm_the_bucket_pathway_lists_what_is_not_in_the_bucket_at_the_vms_uris(
        tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    rig = await make(tmp_path, aiohttp_client)
    w = rig.world
    names = [f"stream-abc-{n}.ts" for n in range(8)]
    for name in names[:2]:
        w.owncast_lists(0, name)
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and names[1].encode() in r.body)
    # R2 refuses writes: the VM lists 2 and 3 at once, the bucket's versions stop at 1.
    for name in names[2:6]:
        w.store.hold(f"live/0/{name}")
    for name in names[2:4]:
        w.owncast_lists(0, name)
    await until(lambda: (r := w.ahead.media_playlist(0)) is not None and names[3].encode() in r.body)  # type: ignore[union-attr]
    # Before the policy steers: the bucket pathway is the bucket's versions, as they are without steering.
    assert await rig.bucket_playlist() == [("bucket", n) for n in names[:2]]
    rig.steer(behind=10.0)
    assert rig.policy.first == "vm"
    # Steered to the VM: a player still on the bucket's pathway gets 2 and 3 too, from the VM.
    assert await rig.bucket_playlist() == [("bucket", n) for n in names[:2]] + [("vm", n) for n in names[2:4]]
    status, _, body = await get(rig.client, f"{VM}{names[2]}")
    assert status == 200 and body == (tmp_path / "hls" / "0" / names[2]).read_bytes()
    assert rig.counts.bytes == {True: len(body), False: 0}  # counted as steered
    # A blocking reload for the next number is answered once the VM lists it, at its VM URI.
    playlist = w.pub.playlist(0)
    assert playlist is not None
    held = asyncio.ensure_future(rig.bucket_playlist(f"?_HLS_msn={playlist.next_sequence}"))
    await until(lambda: rig.world.playlists.held_requests + rig.world.ahead.held_requests > 0)  # type: ignore[union-attr]
    assert not held.done()
    w.owncast_lists(0, names[4])
    assert (await asyncio.wait_for(held, 5))[-1] == ("vm", names[4])
    # 2 and 3 land while players are still steered away: a number keeps its URI while it is listed.
    for name in names[2:4]:
        w.store.release(f"live/0/{name}")
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and names[3].encode() in r.body)
    assert await rig.bucket_playlist() == [("bucket", n) for n in names[:2]] + [("vm", n) for n in names[2:5]]
    # The bucket serves again and has caught up: players are steered back; what was listed at the VM
    # stays there until it leaves the window, and what lands from now on is listed at the bucket.
    for name in names[4:6]:
        w.store.release(f"live/0/{name}")
    w.owncast_lists(0, names[5])
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and names[5].encode() in r.body)
    rig.steer(behind=0.0)
    rig.clock.t += 60
    rig.steer(behind=0.0)
    assert rig.policy.first == "bucket"
    w.owncast_lists(0, names[6])
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and names[6].encode() in r.body)
    assert await rig.bucket_playlist() == ([("bucket", n) for n in names[:2]] + [("vm", n) for n in names[2:5]]
                                           + [("bucket", n) for n in names[5:7]])
    checker = VariantSetChecker()  # consecutive versions: numbers, and the same URI for the same number
    for text in rig.served:
        checker.assert_ok("0", text)
    await w.pub.close()


async def test_a_restart_lists_each_number_at_the_uri_it_had(
        tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    """What the bucket pathway listed at VM URIs is saved with the state (ListedAtVm): a restarted
    service, the bucket serving again, lists those numbers at the same VM URIs until they leave the
    window (6.2.2). Without it the restart listed them at the bucket's URLs (test_presigned's restart,
    under load: a player's media sequence mismatch)."""
    listed = ListedAtVm()
    rig = await make(tmp_path, aiohttp_client, listed)
    w = rig.world
    names = [f"stream-abc-{n}.ts" for n in range(3)]
    w.owncast_lists(0, names[0])
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and names[0].encode() in r.body)
    w.store.hold(f"live/0/{names[1]}")
    w.owncast_lists(0, names[1])
    await until(lambda: (r := w.ahead.media_playlist(0)) is not None and names[1].encode() in r.body)  # type: ignore[union-attr]
    rig.steer(behind=10.0)
    assert await rig.bucket_playlist() == [("bucket", names[0]), ("vm", names[1])]
    saved = json.loads(json.dumps(listed.snapshot()))  # as state.json holds it
    # The next run: its uploads landed, nothing steered away (a new policy), the window continued.
    w.store.release(f"live/0/{names[1]}")
    w.owncast_lists(0, names[2])
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and names[2].encode() in r.body)
    restored = ListedAtVm()
    restored.restore(saved)
    assert rig.copies is not None
    again = await make(tmp_path, aiohttp_client, restored, on=(w, rig.copies))
    assert again.policy.first == "bucket"
    assert await again.bucket_playlist() == [("bucket", names[0]), ("vm", names[1]), ("bucket", names[2])]
    forgetting = await make(tmp_path, aiohttp_client, ListedAtVm(), on=(w, rig.copies))  # as before
    assert await forgetting.bucket_playlist() == [("bucket", n) for n in names]
    checker = VariantSetChecker()
    for text in rig.served + again.served:
        checker.assert_ok("0", text)
    await w.pub.close()


@pytest.mark.parametrize("saved", [
    [], {"0": []}, {"x": {"at_vm": [], "through": 1}}, {"0": {"at_vm": ["a/b.ts"], "through": 1}},
    {"0": {"at_vm": ["a.ts"], "through": -2}}, {"0": {"at_vm": ["a.ts"]}},
    {"0": {"at_vm": [1], "through": 1}},
])
def test_a_crafted_record_of_vm_uris_is_refused_and_changes_nothing(saved: object) -> None:
    listed = ListedAtVm()
    listed.restore({"0": {"at_vm": ["stream-abc-1.ts"], "through": 4}})
    with pytest.raises(ValueError):
        listed.restore(saved)
    assert listed.snapshot() == {"0": {"at_vm": ["stream-abc-1.ts"], "through": 4}}


async def test_while_the_bucket_serves_nothing_changes(tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    """Uploads slow but players not steered: the bucket pathway is the bucket's own versions (the same
    object the publisher showed), never a VM URI."""
    rig = await make(tmp_path, aiohttp_client)
    w = rig.world
    await one_landed_one_uploading(w)
    assert await rig.bucket_playlist() == [("bucket", "stream-abc-0.ts")]
    w.store.release("live/0/stream-abc-1.ts")
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and b"stream-abc-1" in r.body)
    assert await rig.bucket_playlist() == [("bucket", "stream-abc-0.ts"), ("bucket", "stream-abc-1.ts")]
    await w.pub.close()


async def test_steered_back_before_the_bucket_caught_up_no_version_goes_back(
        tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    """Players steered back while an upload the bucket pathway listed at its VM URI has not landed (the
    policy's signals can clear before the backlog lands): its playlist does not fall back to the bucket's
    older version, which would drop numbers a player holds (6.2.2); the VM's goes on being served until
    the bucket's catches up with it."""
    rig = await make(tmp_path, aiohttp_client)
    w = rig.world
    await one_landed_one_uploading(w)
    rig.steer(behind=10.0)
    assert await rig.bucket_playlist() == [("bucket", "stream-abc-0.ts"), ("vm", "stream-abc-1.ts")]
    rig.steer(behind=0.0)
    rig.clock.t += 60
    rig.steer(behind=0.0)
    assert rig.policy.first == "bucket"
    assert await rig.bucket_playlist() == [("bucket", "stream-abc-0.ts"), ("vm", "stream-abc-1.ts")]
    w.owncast_lists(0, "stream-abc-2.ts")  # lands at once, but the bucket's version waits for 1
    await until(lambda: (r := w.ahead.media_playlist(0)) is not None and b"stream-abc-2" in r.body)  # type: ignore[union-attr]
    assert await rig.bucket_playlist() == [("bucket", "stream-abc-0.ts"), ("vm", "stream-abc-1.ts"),
                                           ("vm", "stream-abc-2.ts")]
    w.store.release("live/0/stream-abc-1.ts")
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and b"stream-abc-2" in r.body)
    w.owncast_lists(0, "stream-abc-3.ts")
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and b"stream-abc-3" in r.body)
    assert await rig.bucket_playlist() == [("bucket", "stream-abc-0.ts"), ("vm", "stream-abc-1.ts"),
                                           ("vm", "stream-abc-2.ts"), ("bucket", "stream-abc-3.ts")]
    checker = VariantSetChecker()
    for text in rig.served:
        checker.assert_ok("0", text)
    await w.pub.close()


async def test_steered_away_before_anything_landed_nothing_is_listed_at_the_buckets_uri(
        tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    """Players steered away before the bucket holds a single segment of the stream (a start while R2
    refuses writes, or a probe a loaded machine failed): the bucket pathway has no version of its own
    yet, and serves the VM's with every segment at its VM URI, not at a bucket URI that answers 404;
    steered back, it goes on doing so until the bucket's catches up, so no version drops a number
    (seen: [0, 1] then [0] in run j1 of 2026-11-26, test_faults_input, on SeaweedFS at nice 19)."""
    rig = await make(tmp_path, aiohttp_client)
    w = rig.world
    names = [f"stream-abc-{n}.ts" for n in range(3)]
    for name in names[:2]:
        w.store.hold(f"live/0/{name}")
        w.owncast_lists(0, name)
    await until(lambda: (r := w.ahead.media_playlist(0)) is not None and names[1].encode() in r.body)  # type: ignore[union-attr]
    assert w.playlists.media_playlist(0) is None
    rig.steer(behind=10.0)
    assert rig.policy.first == "vm"
    assert await rig.bucket_playlist() == [("vm", n) for n in names[:2]]
    # 0 lands and players are steered back: the bucket's own version ([0]) is behind what was served.
    w.store.release(f"live/0/{names[0]}")
    await until(lambda: w.playlists.media_playlist(0) is not None)
    rig.steer(behind=0.0)
    rig.clock.t += 60
    rig.steer(behind=0.0)
    assert rig.policy.first == "bucket"
    assert await rig.bucket_playlist() == [("vm", n) for n in names[:2]]
    w.store.release(f"live/0/{names[1]}")
    w.owncast_lists(0, names[2])
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and names[2].encode() in r.body)
    assert await rig.bucket_playlist() == [("vm", n) for n in names[:2]] + [("bucket", names[2])]
    checker = VariantSetChecker()
    for text in rig.served:
        checker.assert_ok("0", text)
    await w.pub.close()


async def vm_playlist(rig: Rig) -> list[str]:
    status, _, body = await get(rig.client, "/live/vm/0/playlist.m3u8")
    assert status == 200, body
    return [line.removeprefix(VM) for line in body.decode().splitlines() if line.startswith(VM)]


async def test_while_the_bucket_serves_the_vm_pathway_lists_only_what_the_vm_redirects(
        tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    """A player on the VM's pathway while the bucket serves (one without content steering; hls.js keeping
    the bucket in its penalty box for five minutes after an error there) is sent to the bucket for every
    segment: the VM's pathway lists a segment once it landed, so the VM never sends the bytes of one still
    uploading. Steered to the VM, it lists each as soon as the VM kept it; steered back, it does not go
    back below what it showed."""
    rig = await make(tmp_path, aiohttp_client)
    w = rig.world
    await one_landed_one_uploading(w)
    rig.clock.t += 60
    assert rig.policy.bucket_serves()
    assert await vm_playlist(rig) == ["stream-abc-0.ts"]
    async with rig.client.get(f"{VM}stream-abc-0.ts", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == f"{BUCKET}stream-abc-0.ts"
    # Steered to the VM (the uploads wait): it lists what it kept, and serves it.
    rig.steer(behind=10.0)
    assert await vm_playlist(rig) == ["stream-abc-0.ts", "stream-abc-1.ts"]
    # Back before segment 1 landed: the VM's pathway goes on showing its own version until the bucket's
    # catches up with it, then the bucket's.
    rig.steer(behind=0.0)
    rig.clock.t += 60
    rig.steer(behind=0.0)
    assert rig.policy.bucket_serves()
    assert await vm_playlist(rig) == ["stream-abc-0.ts", "stream-abc-1.ts"]
    w.store.release("live/0/stream-abc-1.ts")
    await until(lambda: (r := w.playlists.media_playlist(0)) is not None and b"stream-abc-1" in r.body)
    w.store.hold("live/0/stream-abc-2.ts")
    w.owncast_lists(0, "stream-abc-2.ts")
    await until(lambda: (r := w.ahead.media_playlist(0)) is not None and b"stream-abc-2" in r.body)  # type: ignore[union-attr]
    assert await vm_playlist(rig) == ["stream-abc-0.ts", "stream-abc-1.ts"]
    await w.pub.close()
