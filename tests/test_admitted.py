"""Tokens let in again by their bytes for a moment (broadcaster/access/admitted.py), over the real
Gatekeeper and invites file with clocks the test moves: a token let in is not judged again for a moment;
an expiry and a revoked invite take effect within a second, even when the invites file was looked at just
before the revoke and the token let in just before the next look; forged and undecodable tokens are never
let in nor remembered, and no more tokens are remembered than the bound."""

from __future__ import annotations

import os
from pathlib import Path

from broadcaster.access.admitted import REMEMBERED, AdmittedTokens
from broadcaster.access.grants import Gatekeeper, Grant, Keys, Refusal
from broadcaster.access.invites import LOOK_EVERY, Invite, InviteLinks, InvitesFile, write_invites
from broadcaster.access.tokens import PASSPHRASE as WHO, ViewerTokens
from tests.support.fakes import Clock

SECRET = "q" * 40
WALL = 1_800_000_000.0
STEP = 1 / 64  # seconds the monotonic clock moves between looks (a binary fraction: sums are exact)


class Counted:
    """The Gatekeeper, its judgements counted."""

    def __init__(self, keeper: Gatekeeper) -> None:
        self.keeper = keeper
        self.judged = 0

    def admit(self, text: str | None) -> Refusal | None:
        self.judged += 1
        return self.keeper.admit(text)


def parts(tmp_path: Path) -> tuple[Clock, Clock, Counted]:
    """(wall clock, monotonic clock, the judge) over an invites file in tmp_path."""
    wall, mono = Clock(WALL), Clock(50.0)
    keeper = Gatekeeper(Keys(SECRET, "pw", 600), InvitesFile(tmp_path / "invites.json", mono), wall)
    return wall, mono, Counted(keeper)


def refused_within(admitted: AdmittedTokens, token: bytes, mono: Clock, seconds: float) -> float:
    """Moves `mono` on in steps until `token` is refused (at most `seconds`): how long that took."""
    start = mono.t
    while admitted.admits(token):
        assert mono.t - start <= seconds, f"still let in {mono.t - start:.2f} s on"
        mono.t += STEP
    return mono.t - start


def test_a_token_let_in_is_let_in_again_unjudged_and_its_expiry_takes_effect_within_a_second(tmp_path: Path) -> None:
    wall, mono, judge = parts(tmp_path)
    admitted = AdmittedTokens(judge, mono)
    token = ViewerTokens(SECRET).mint(WHO, int(wall.t) + 10).encode()
    assert admitted.admits(token) and judge.judged == 1
    mono.t += REMEMBERED / 2
    assert admitted.admits(token) and judge.judged == 1  # a dict lookup, no judgement
    wall.t += 11  # it has ended
    assert refused_within(admitted, token, mono, 1.0) <= REMEMBERED
    assert judge.judged == 2 and not admitted.admits(token)  # a refused token is not remembered: judged each time
    assert judge.judged == 3


def test_a_revoked_invite_is_refused_within_a_second_at_worst(tmp_path: Path) -> None:
    """The worst case: the file looked at, the invite revoked just after, the token let in just before the
    next look (so on the old file), and remembered from then on."""
    wall, mono, judge = parts(tmp_path)
    path = tmp_path / "invites.json"
    write_invites(path, {"alice": Invite("alice", int(wall.t) + 3600), "bob": Invite("bob", int(wall.t) + 3600)})
    links = InviteLinks(SECRET)
    alice, bob = (judge.keeper.grant({"invite": links.token(name)}) for name in ("alice", "bob"))
    assert isinstance(alice, Grant) and isinstance(bob, Grant)
    admitted = AdmittedTokens(judge, mono)
    assert admitted.admits(bob.token.encode())  # the file is looked at now
    revoked_at = mono.t
    write_invites(path, {"alice": Invite("alice", int(wall.t) + 3600, revoked=True),
                         "bob": Invite("bob", int(wall.t) + 3600)})
    os.utime(path, ns=(1, 1))  # a change within the file system's mtime tick is seen too
    mono.t += LOOK_EVERY - STEP
    assert admitted.admits(alice.token.encode())  # judged on the file as it was: still let in
    took = refused_within(admitted, alice.token.encode(), mono, 1.0)
    assert mono.t - revoked_at <= 1.0 and took > 0
    assert judge.keeper.admit(alice.token) == Refusal(403, "this invite was revoked")


def test_forged_and_undecodable_tokens_are_never_let_in_nor_remembered(tmp_path: Path) -> None:
    wall, mono, judge = parts(tmp_path)
    admitted = AdmittedTokens(judge, mono)
    token = ViewerTokens(SECRET).mint(WHO, int(wall.t) + 600)
    forged = [(token[:-2] + f"{n:02d}").encode() for n in range(100)]
    assert not any(admitted.admits(t) for t in forged) and len(admitted) == 0 and judge.judged == 100
    assert not admitted.admits(b"v1.9.-.\xff") and not admitted.admits(b"") and len(admitted) == 0
    assert judge.judged == 101  # the undecodable one is refused before any judgement
    assert not admitted.admits(ViewerTokens("another secret " * 3).mint(WHO, int(wall.t) + 600).encode())


def test_no_more_tokens_are_remembered_than_the_bound(tmp_path: Path) -> None:
    wall, mono, judge = parts(tmp_path)
    admitted = AdmittedTokens(judge, mono, kept=8)
    tokens = ViewerTokens(SECRET)
    for n in range(50):
        assert admitted.admits(tokens.mint(WHO, int(wall.t) + 600 + n).encode())
        assert len(admitted) <= 8
    assert judge.judged == 50
