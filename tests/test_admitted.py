"""Tokens let in again by their bytes, unjudged (broadcaster/access/admitted.py), over the real Gatekeeper
and invites file with a clock the test moves: a token is remembered to its end (or its invite's) and
refused from then; a change of the invites file has every token judged again, so a revoked invite is
refused within a second; forged and undecodable tokens are never let in nor remembered, and no more
tokens are remembered than the bound."""

from __future__ import annotations

import os
from pathlib import Path

from broadcaster.access.admitted import AdmittedTokens
from broadcaster.access.grants import Gatekeeper, Grant, Keys, Refusal
from broadcaster.access.invites import LOOK_EVERY, Invite, InviteLinks, InvitesFile, write_invites
from broadcaster.access.tokens import PASSPHRASE as WHO, ViewerTokens
from tests.support.fakes import Clock

SECRET = "q" * 40
WALL = 1_800_000_000.0
STEP = 1 / 64  # seconds the clock moves between looks (a binary fraction: sums are exact)


class Counted:
    """The Gatekeeper, its judgements counted."""

    def __init__(self, keeper: Gatekeeper) -> None:
        self.keeper = keeper
        self.judged = 0

    def lets_in(self, text: str) -> float | None:
        self.judged += 1
        return self.keeper.lets_in(text)

    def invites_version(self) -> int:
        return self.keeper.invites_version()


def parts(tmp_path: Path) -> tuple[Clock, Counted]:
    """(the clock every part reads, as wall and monotonic seconds alike; the judge) over an invites file
    in tmp_path."""
    clock = Clock(WALL)
    keeper = Gatekeeper(Keys(SECRET, "pw", 600), InvitesFile(tmp_path / "invites.json", clock), clock)
    return clock, Counted(keeper)


def refused_within(admitted: AdmittedTokens, token: bytes, clock: Clock, seconds: float) -> float:
    """Moves `clock` on in steps until `token` is refused (at most `seconds`): how long that took."""
    start = clock.t
    while admitted.admits(token):
        assert clock.t - start <= seconds, f"still let in {clock.t - start:.2f} s on"
        clock.t += STEP
    return clock.t - start


def test_a_pass_phrases_token_is_remembered_to_its_end_and_refused_from_then(tmp_path: Path) -> None:
    """Its end is all that can change its verdict: every reload until then is a lookup."""
    clock, judge = parts(tmp_path)
    admitted = AdmittedTokens(judge, clock)
    token = ViewerTokens(SECRET).mint(WHO, int(clock.t) + 10).encode()
    assert admitted.admits(token) and judge.judged == 1
    clock.t += 10 - STEP
    assert admitted.admits(token) and judge.judged == 1  # a dict lookup, no judgement
    clock.t += STEP  # its end
    assert not admitted.admits(token) and judge.judged == 2
    assert not admitted.admits(token) and judge.judged == 3  # a refused token is not remembered


def test_an_invites_token_is_remembered_to_its_invites_end_unless_the_invites_file_changes(tmp_path: Path) -> None:
    clock, judge = parts(tmp_path)
    path = tmp_path / "invites.json"
    write_invites(path, {"alice": Invite("alice", int(clock.t) + 5)})
    granted = judge.keeper.grant({"invite": InviteLinks(SECRET).token("alice")})
    assert isinstance(granted, Grant) and granted.expires == int(clock.t) + 5
    token = granted.token.encode()
    admitted = AdmittedTokens(judge, clock)
    assert admitted.admits(token) and judge.judged == 1
    clock.t += 2
    assert admitted.admits(token) and judge.judged == 1  # a lookup
    write_invites(path, {"alice": Invite("alice", int(clock.t) + 4)})  # a later end, the same size
    os.utime(path, ns=(1, 1))
    clock.t += 2 * LOOK_EVERY
    assert admitted.admits(token) and judge.judged == 2  # judged again by the file as it is now
    clock.t = WALL + 5  # the invite's end, the token's too
    assert not admitted.admits(token)


def test_a_revoked_invite_is_refused_within_a_second(tmp_path: Path) -> None:
    """Another door having looked at the file just before the revoke (the file is then looked at again
    only LOOK_EVERY later, whoever asks)."""
    clock, judge = parts(tmp_path)
    path = tmp_path / "invites.json"
    write_invites(path, {"alice": Invite("alice", int(clock.t) + 3600), "bob": Invite("bob", int(clock.t) + 3600)})
    links = InviteLinks(SECRET)
    alice, bob = (judge.keeper.grant({"invite": links.token(name)}) for name in ("alice", "bob"))
    assert isinstance(alice, Grant) and isinstance(bob, Grant)
    admitted = AdmittedTokens(judge, clock)
    assert admitted.admits(alice.token.encode())
    clock.t += LOOK_EVERY - STEP
    assert admitted.admits(alice.token.encode())
    clock.t += STEP
    assert judge.keeper.admit(bob.token) is None  # another door: the file is looked at now
    revoked_at = clock.t
    write_invites(path, {"alice": Invite("alice", int(clock.t) + 3600, revoked=True),
                         "bob": Invite("bob", int(clock.t) + 3600)})
    os.utime(path, ns=(1, 1))  # a change within the file system's mtime tick is seen too
    assert refused_within(admitted, alice.token.encode(), clock, 1.0) > 0
    assert clock.t - revoked_at <= 1.0
    assert judge.keeper.admit(alice.token) == Refusal(403, "this invite was revoked")


def test_forged_and_undecodable_tokens_are_never_let_in_nor_remembered(tmp_path: Path) -> None:
    clock, judge = parts(tmp_path)
    admitted = AdmittedTokens(judge, clock)
    token = ViewerTokens(SECRET).mint(WHO, int(clock.t) + 600)
    forged = [(token[:-2] + f"{n:02d}").encode() for n in range(100)]
    assert not any(admitted.admits(t) for t in forged) and len(admitted) == 0 and judge.judged == 100
    assert not admitted.admits(b"v1.9.-.\xff") and not admitted.admits(b"") and len(admitted) == 0
    assert judge.judged == 101  # the undecodable one is refused before any judgement
    assert not admitted.admits(ViewerTokens("another secret " * 3).mint(WHO, int(clock.t) + 600).encode())


def test_no_more_tokens_are_remembered_than_the_bound(tmp_path: Path) -> None:
    clock, judge = parts(tmp_path)
    admitted = AdmittedTokens(judge, clock, kept=8)
    tokens = ViewerTokens(SECRET)
    for n in range(50):
        assert admitted.admits(tokens.mint(WHO, int(clock.t) + 600 + n).encode())
        assert len(admitted) <= 8
    assert judge.judged == 50
