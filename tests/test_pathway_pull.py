"""A pathway nobody reads costs a record per push, not a rendering, on real parts: every push shows the
VM's versions as a Pending rendered when a client first asks, with the bucket's numbers and segments at
the VM's URIs (the rule at the seam: tests/test_playlist_views.py)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist.rendered import Pending, Rendered
from broadcaster.publish.visible import VisiblePlaylists
from broadcaster.steering import probe
from broadcaster.steering.policy import SteeringPolicy
from tests.support.counting_proxy import CountingProxy
from tests.support.service_process import running_service, service_env
from tests.support.listing import listing
from tests.support.waiting import until

pytestmark = pytest.mark.integration

WAIT = 30.0  # seconds any one condition may take on a busy machine


def entries(body: str) -> dict[int, tuple[str, str]]:
    """Number -> (segment file name, PROGRAM-DATE-TIME) of each segment a media playlist lists."""
    return {e.number: (e.name, e.date) for e in listing(body)}


def last(rendered: Rendered | None) -> int:
    return rendered.last_sequence if rendered is not None else -1


def pending(shown: VisiblePlaylists, variant: int) -> bool:
    """`variant`'s visible version there is pushed and not rendered: no client asked for it."""
    version = shown.version(variant)
    return isinstance(version, Pending) and not version.made


async def test_the_vms_versions_are_rendered_only_when_asked_and_a_request_gets_the_current_one(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # The bucket serves throughout (slow uploads must not steer players away here).
    monkeypatch.setattr(SteeringPolicy, "bucket_serves", lambda self: True)
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", PATHWAYS="bucket,vm",
                      WINDOW_SECONDS="6")
    async with running_service(env) as service, aiohttp.ClientSession() as http:
        bucket, vm = service.pathway_playlists["bucket"], service.pathway_playlists["vm"]
        await until(lambda: (r := bucket.media_playlist(0)) is not None and len(entries(r.body.decode())) >= 4,
                    "4 segments in the bucket's playlist", WAIT)
        # Requests answered with no playlist render nothing.
        for asked, status in (("0/playlist.m3u8?x=1", 302), ("00/playlist.m3u8", 404)):
            async with http.get(f"{service.url}/live/vm/{asked}", allow_redirects=False) as r:
                assert r.status == status, asked
        # Every push shows the VM's versions too, none rendered: nobody asked.
        seen = last(bucket.media_playlist(0))
        await until(lambda: last(bucket.media_playlist(0)) > seen and all(pending(vm, v) for v in (0, 1)),
                    "one more segment in the bucket's, the VM's versions pushed and not rendered", WAIT)
        assert vm.last_sequence(0) is not None and vm.last_sequence(1) is not None

        for variant in (0, 1):
            async with http.get(f"{service.url}/live/vm/{variant}/playlist.m3u8") as r:
                assert r.status == 200, await r.text()
                body = await r.text()
            in_bucket = bucket.media_playlist(variant)
            assert in_bucket is not None
            theirs = entries(in_bucket.body.decode())
            ours = entries(body)
            # Number for number the bucket's segments, at the VM's URIs, as far as it was pushed.
            assert max(ours) >= seen, (seen, ours)
            common = set(ours) & set(theirs)
            assert len(common) >= 3 and all(ours[n] == theirs[n] for n in common), (ours, theirs)
            assert f"/live/vm/{variant}/" in body and b"/live/vm/" not in in_bucket.body

        # A blocking request for the next number: held, and answered with it.
        newest = vm.last_sequence(0)
        assert newest is not None
        async with http.get(f"{service.url}/live/vm/0/playlist.m3u8?_HLS_msn={newest + 1}") as r:
            assert r.status == 200
            assert max(entries(await r.text())) >= newest

        # The pushes after go on without rendering them until asked again.
        before = last(bucket.media_playlist(0))
        await until(lambda: (vm.last_sequence(0) or -1) > before and pending(vm, 0),
                    "a newer VM version pushed, not rendered", WAIT)
        async with http.get(f"{service.url}/live/vm/0/playlist.m3u8") as r:
            assert r.status == 200 and max(entries(await r.text())) > before


async def test_while_nobody_plays_the_probe_sleeps_and_a_players_first_request_wakes_it(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """With nobody playing the probe sends no GET; the first playlist request wakes it at once."""
    monkeypatch.setattr(probe, "QUIET_EVERY", 600.0)  # asleep, only a request can wake it within the test
    monkeypatch.setattr(probe, "WATCHED_LEAST", 1.0)
    monkeypatch.setattr(probe, "WATCHED_TARGETS", 0)
    monkeypatch.setattr(SteeringPolicy, "bucket_serves", lambda self: True)  # as in the test above
    proxy = CountingProxy(upstream=seaweed.endpoint_url)
    await proxy.start()
    try:
        env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", PATHWAYS="bucket,vm",
                          R2_PUBLIC_URL=proxy.url + urlsplit(seaweed.public_url).path)

        def probes() -> int:
            return len(proxy.answers) - sum(proxy.gets.values())  # nobody else fetches a segment

        async with running_service(env) as service, aiohttp.ClientSession() as http:
            assert service.delivery.steered is not None
            loop, bucket = service.delivery.steered.loop, service.pathway_playlists["bucket"]
            await until(lambda: loop._unwatched, "the probe asleep: nobody plays", WAIT)
            asleep = probes()
            # Three segments listed meanwhile (three PROBE_EVERY turns, were it turning): not one GET.
            seen = last(bucket.media_playlist(0))
            await until(lambda: last(bucket.media_playlist(0)) >= seen + 3, "three more segments", WAIT)
            assert probes() == asleep
            async with http.get(f"{service.url}/live/0/playlist.m3u8") as r:
                assert r.status == 200
            await until(lambda: probes() > asleep, "the probe a player's first request woke", WAIT)
    finally:
        await proxy.close()
