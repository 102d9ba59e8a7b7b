"""A pathway nobody reads costs nothing (issue 66 item 3), on real parts: the service in this process
(its pathways' visible playlists looked at directly), SeaweedFS, the Owncast emulator's real segments.

While the bucket serves and no client reads the VM's pathway, none of its versions is made: its visible
playlists stay as they were (none, from the start). A client that reads it then gets the current
version, at once after one push: the same numbers and segments as the bucket's, at the VM's URIs, a
blocking request too; while clients read it, its versions follow the bucket's; once nobody has for the
linger, they stop again. tests/test_readers.py has the rules at the seam."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.playlist.rendered import Rendered
from broadcaster.publish import readers
from broadcaster.steering.policy import SteeringPolicy
from tests.support.counting_proxy import CountingProxy
from tests.support.service_process import running_service, service_env
from tests.support.waiting import until

pytestmark = pytest.mark.integration

WAIT = 30.0  # seconds any one condition may take on a busy machine
LINGER = 8.0  # seconds a read keeps the VM's versions made here (20 s at least): past a loaded machine's next segment


def entries(body: str) -> dict[int, tuple[str, str]]:
    """Number -> (segment file name, PROGRAM-DATE-TIME) of each segment a media playlist lists."""
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", body)[1])  # type: ignore[index]
    out: dict[int, tuple[str, str]] = {}
    date = ""
    for line in body.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.split(":", 1)[1]
        elif line and not line.startswith("#"):
            out[sequence] = (line.rsplit("/", 1)[1], date)
            sequence += 1
    return out


def last(rendered: Rendered | None) -> int:
    return rendered.last_sequence if rendered is not None else -1


async def test_the_vms_versions_are_made_only_while_read_and_a_read_gets_the_current_one(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "LINGER_LEAST", LINGER)
    monkeypatch.setattr(readers, "LINGER_TARGETS", 0)
    # The bucket serves throughout, as the policy's verdict: on a loaded machine its slow uploads could
    # steer players away, and every pathway's versions are then made for everyone, as they must be
    # (PathwayPlan.idle: tests/test_variant_playlist.py).
    monkeypatch.setattr(SteeringPolicy, "bucket_serves", lambda self: True)
    env = service_env(owncast.variant_dir(0).parent, seaweed, tmp_path / "state", PATHWAYS="bucket,vm",
                      WINDOW_SECONDS="6")
    async with running_service(env) as service, aiohttp.ClientSession() as http:
        bucket, vm = service.pathway_playlists["bucket"], service.pathway_playlists["vm"]
        await until(lambda: (r := bucket.media_playlist(0)) is not None and len(entries(r.body.decode())) >= 4,
                    "4 segments in the bucket's playlist", WAIT)
        # Requests answered with no playlist (a redirect for a query, a 404 for a variant spelt "00") read
        # nothing: no version of it is made for them.
        for asked, status in (("0/playlist.m3u8?x=1", 302), ("00/playlist.m3u8", 404)):
            async with http.get(f"{service.url}/live/vm/{asked}", allow_redirects=False) as r:
                assert r.status == status, asked
        seen = last(bucket.media_playlist(0))
        await until(lambda: last(bucket.media_playlist(0)) > seen, "one more segment in the bucket's", WAIT)
        # Nobody read the VM's pathway since the start: no version of it was made, in any variant.
        assert vm.media_playlist(0) is None and vm.media_playlist(1) is None

        for variant in (0, 1):
            shown = last(bucket.media_playlist(variant))
            async with http.get(f"{service.url}/live/vm/{variant}/playlist.m3u8") as r:
                assert r.status == 200, await r.text()
                body = await r.text()
            in_bucket = bucket.media_playlist(variant)
            assert in_bucket is not None
            theirs = entries(in_bucket.body.decode())
            ours = entries(body)
            # The current version: at least what the bucket's showed when asked, number for number the
            # same segments (at the VM's URIs: /live/vm/<n>/...).
            assert max(ours) >= shown, (shown, ours)
            common = set(ours) & set(theirs)
            assert len(common) >= 3 and all(ours[n] == theirs[n] for n in common), (ours, theirs)
            assert f"/live/vm/{variant}/" in body and b"/live/vm/" not in in_bucket.body

        # A blocking request for the next number while read: held, and answered with it, or after a target
        # duration as it is, as on any pathway players are steered away from (playlists.py: on a loaded
        # machine the next segment can take longer; CI, 2026-11-27).
        newest = last(vm.media_playlist(0))
        async with http.get(f"{service.url}/live/vm/0/playlist.m3u8?_HLS_msn={newest + 1}") as r:
            assert r.status == 200
            assert max(entries(await r.text())) >= newest

        # While read (within the linger), the VM's versions follow the bucket's without being asked.
        target = last(bucket.media_playlist(0)) + 1
        await until(lambda: last(vm.media_playlist(0)) >= target, "the VM's version follows the bucket's", WAIT)

        # Nobody reads it for the linger: its versions stop while the bucket's go on...
        await until(lambda: last(bucket.media_playlist(0)) >= last(vm.media_playlist(0)) + 3,
                    "the bucket's playlist three segments past the VM's", WAIT)
        kept = last(vm.media_playlist(0))
        await until(lambda: last(bucket.media_playlist(0)) >= kept + 2, "two more in the bucket's", WAIT)
        assert last(vm.media_playlist(0)) == kept
        # ...and the next read gets the current one again.
        shown = last(bucket.media_playlist(0))
        async with http.get(f"{service.url}/live/vm/0/playlist.m3u8") as r:
            assert r.status == 200 and max(entries(await r.text())) >= shown


async def test_while_nobody_plays_the_probe_sleeps_and_a_players_first_request_wakes_it(
        tmp_path: Path, seaweed: SeaweedS3, owncast: OwncastEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 66 item 3: with nobody playing, the probe of the bucket's public URL sends no GET and takes
    no turn every second either (its timer a loop wake-up a second); the first player's playlist request
    wakes it, and it probes at once, not a turn later. The public URL through a counting proxy, which
    tells the probe's GETs (it names itself) from anyone's."""
    from broadcaster.steering import probe

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
