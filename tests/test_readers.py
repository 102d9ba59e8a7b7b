"""Readers (publish/readers.py): a pathway's versions are made while a client read it within the linger;
a request that finds them not made waits for one push, saved and shown, shared by every request waiting;
a save that shows an older push's versions after the pushes stopped making them does not pass for current.
Through the real publisher, service and HTTP routes: tests/test_idle_pathway.py."""

from __future__ import annotations

import asyncio

from broadcaster.metrics import Metrics
from broadcaster.publish.readers import LINGER_LEAST, LINGER_TARGETS, Readers
from broadcaster.publish.release import Outlets, Release, Versions
from broadcaster.publish.visible import VisiblePlaylists
from tests.support.fakes import Clock, version


def readers(target: int | None = 2) -> tuple[Readers, Clock, list[int]]:
    clock = Clock()
    r = Readers(lambda: target, clock=clock)
    wakes: list[int] = []
    r.wake = lambda: wakes.append(1)
    return r, clock, wakes


def test_a_pathway_is_made_while_read_within_the_linger() -> None:
    r, clock, _ = readers(target=5)
    assert r.linger == LINGER_TARGETS * 5 and readers(target=1)[0].linger == LINGER_LEAST
    assert not r.make()  # never read
    assert not r.read()  # ...so what is shown is not current
    assert r.make()
    clock.t += r.linger - 0.01
    assert r.make()
    clock.t += 0.02
    assert not r.make() and not r.current_now


async def test_requests_wait_for_one_push_shown_and_are_answered_together() -> None:
    r, _, wakes = readers()
    assert not r.read()
    waiting = [asyncio.create_task(r.current(5.0)) for _ in range(3)]
    await asyncio.sleep(0)
    assert wakes == [1]  # one push asked for, however many wait
    assert r.make()  # that push makes the pathway's versions
    r.shown()
    assert await asyncio.gather(*waiting) == [True, True, True]
    assert r.read() and r.current_now  # the next request is served at once
    assert await r.current(0.01)


async def test_a_wait_ends_unanswered_when_nothing_is_shown() -> None:
    """The state cannot be saved (versions held back): the request gives up after its timeout."""
    r, _, wakes = readers()
    r.read()
    assert not await r.current(0.01)
    assert wakes == [1]
    assert not await r.current(0.01)
    assert wakes == [1, 1]  # each new wait asks again: the first push may have been lost


def test_players_steered_off_the_bucket_make_every_pathways_versions_read_or_not() -> None:
    """The bucket fails: the pushes make the VM's versions for everyone, and once shown they are current
    (a request is answered at once), though nobody read the pathway before (bench/steering.py's steered
    phase once waited on a 503 there)."""
    r, _, _ = readers()
    assert not r.make()
    assert r.make(steered=True)
    r.shown()
    assert r.current_now and r.read()


def test_an_older_push_shown_after_the_pushes_stopped_making_them_is_not_current() -> None:
    """Push k made the versions; push k+1, with nobody reading any more, did not; push k's save shows
    its versions only then: they are push k's, older than the playlist, and nothing newer will come."""
    r, clock, _ = readers()
    r.read()
    assert r.make()  # push k
    clock.t += r.linger + 1
    assert not r.make()  # push k+1
    r.shown()  # push k's versions, saved at last
    assert not r.current_now and not r.read()


def test_the_release_tells_a_pathway_current_when_its_versions_are_shown_and_when_nothing_changed() -> None:
    """Release (no state file: shown at once): a push with the VM's versions makes them current; a push
    without them (nobody reads it) shows nothing there and tells nothing; a push of versions all shown
    already (no change since) tells it current again, with nothing to show."""
    bucket, vm = VisiblePlaylists(), VisiblePlaylists()
    r, clock, _ = readers()
    vm.on_current = r.shown
    release = Release(Outlets(bucket, pathways={"vm": vm}), Metrics(), key_prefix="live")
    first, second, on_vm = version(1), version(2), version(1)
    r.read()
    assert r.make()
    release.changed(Versions({"bucket": {0: first}, "vm": {0: on_vm}}, {}, 1))
    assert vm.media_playlist(0) is on_vm and r.current_now
    clock.t += r.linger + 1  # nobody read it for the linger
    assert not r.make()
    release.changed(Versions({"bucket": {0: second}}, {}, 1))
    assert bucket.media_playlist(0) is second and vm.media_playlist(0) is on_vm and not r.current_now
    r.read()
    assert r.make()
    release.changed(Versions({"bucket": {0: second}, "vm": {0: on_vm}}, {}, 1))  # all shown already
    assert r.current_now
