"""Private streams' keys at their seam: viewer tokens, invite links and the invites file, the gatekeeper's
judgement (what a door and POST /live/access answer), the settings, and `hls-broadcaster invite`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from broadcaster.access.grants import BAD_TOKEN, CHANGED, EXPIRED, NO_TOKEN, Gatekeeper, Grant, Keys, Refusal
from broadcaster.access.invites import Invite, InviteError, InviteLinks, InvitesFile, read_invites, write_invites
from broadcaster.access.tokens import ViewerTokens, derive, edge_key
from broadcaster.bucket.edge_urls import EdgeUrls
from broadcaster.bucket.urls import PublicUrls, segment_urls
from broadcaster.clips.book import ClipError
from broadcaster.clips.kept import KeptPlaylists
from broadcaster.http.common import elsewhere
from broadcaster.settings import SETTINGS, SettingsError, load_settings
from tests.support.fakes import Clock
from tests.support.settings_env import env

SECRET = "k" * 40
NOW = 1_800_000_000


def keeper(tmp_path: Path, clock: Clock, passphrase: str = "open sesame", life: int = 600) -> Gatekeeper:
    return Gatekeeper(Keys(SECRET, passphrase, life), InvitesFile(tmp_path / "invites.json", clock), clock)


def test_keys_are_derived_per_purpose_and_a_token_reads_back() -> None:
    assert derive(SECRET, "viewer") != derive(SECRET, "edge") != derive(SECRET, "invite")
    assert edge_key(SECRET) == derive(SECRET, "edge").hex() and len(edge_key(SECRET)) == 64
    tokens = ViewerTokens(SECRET)
    text = tokens.mint("-", NOW + 600)
    assert text.startswith(f"v1.{NOW + 600}.-.")
    read = tokens.read(text)
    assert read is not None and (read.expires, read.who, read.invited) == (NOW + 600, "-", False)


@pytest.mark.parametrize("forged", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # the signature changed
    lambda t: t.replace(".-.", ".alice."),  # another who, the same signature
    lambda t: t.replace("v1.", "v1.9"),  # a later expiry, the same signature
    lambda t: ViewerTokens("z" * 40).mint("-", NOW + 600),  # another secret
    lambda t: t + ".x", lambda t: "", lambda t: "v1.1.-.é", lambda t: "v1." + "9" * 300,
])
def test_a_forged_or_malformed_token_is_not_read(forged: object) -> None:
    tokens = ViewerTokens(SECRET)
    assert callable(forged)
    assert tokens.read(forged(tokens.mint("-", NOW + 600))) is None


def test_the_passphrase_grants_a_token_the_doors_admit_until_it_expires(tmp_path: Path) -> None:
    clock = Clock(NOW)
    gate = keeper(tmp_path, clock)
    assert gate.grant({"passphrase": "wrong"}) == Refusal(403, "wrong pass-phrase")
    assert isinstance(gate.grant({"passphrase": " open sesame\n"}), Grant)  # pasted with a space and a line end
    grant = gate.grant({"passphrase": "open sesame"})
    assert isinstance(grant, Grant) and grant.expires == NOW + 600
    assert gate.admit(None) == Refusal(401, NO_TOKEN) and gate.admit("") == Refusal(401, NO_TOKEN)
    assert gate.admit("v1.junk") == Refusal(403, BAD_TOKEN)
    assert gate.admit(grant.token) is None
    clock.t = NOW + 599
    renewed = gate.grant({"token": grant.token})
    assert isinstance(renewed, Grant) and renewed.expires == NOW + 599 + 600
    clock.t = NOW + 600
    assert gate.admit(grant.token) == Refusal(403, EXPIRED)  # seen before: still judged by the clock
    assert gate.grant({"token": grant.token}) == Refusal(403, EXPIRED)
    assert gate.admit(renewed.token) is None
    assert gate.grant({"what": 1}).status == 400  # type: ignore[union-attr]


def test_changing_the_passphrase_ends_its_tokens_at_once(tmp_path: Path) -> None:
    """The pass-phrase leaked, the operator changed it: its viewers are refused at the next request and
    cannot renew; the P2P tracker's own token (`-`, it knows no pass-phrase) still reads but is never renewed."""
    clock = Clock()
    grant = keeper(tmp_path, clock).grant({"passphrase": "open sesame"})
    assert isinstance(grant, Grant)
    who = ViewerTokens(SECRET).read(grant.token)
    assert who is not None and who.who.startswith("-") and len(who.who) == 9 and not who.invited
    assert keeper(tmp_path, clock).admit(grant.token) is None  # a restart with the same pass-phrase
    for changed in (keeper(tmp_path, clock, passphrase="new words"), keeper(tmp_path, clock, passphrase="")):
        assert changed.admit(grant.token) == Refusal(403, CHANGED)
        assert changed.grant({"token": grant.token}).status == 403  # type: ignore[union-attr]
    tracker = ViewerTokens(SECRET).mint("-", NOW + 60)
    gate = keeper(tmp_path, clock)
    assert gate.admit(tracker) is None and gate.grant({"token": tracker}) == Refusal(403, CHANGED)


def test_invites_only_without_a_passphrase(tmp_path: Path) -> None:
    gate = keeper(tmp_path, Clock(NOW), passphrase="")
    assert gate.grant({"passphrase": ""}) == Refusal(403, "this stream takes invite links only")


def test_an_invite_lets_in_until_revoked_or_expired_and_says_which(tmp_path: Path) -> None:
    clock = Clock(NOW)
    path = tmp_path / "invites.json"
    write_invites(path, {"alice": Invite("alice", NOW + 3600), "bob": Invite("bob", NOW - 1)})
    gate = keeper(tmp_path, clock, life=600)
    links = InviteLinks(SECRET)
    grant = gate.grant({"invite": links.token("alice")})
    assert isinstance(grant, Grant) and grant.expires == NOW + 600
    assert gate.admit(grant.token) is None
    assert gate.grant({"invite": links.token("bob")}) == Refusal(403, "this invite expired on 2027-01-15 07:59 UTC")
    assert gate.grant({"invite": InviteLinks("z" * 40).token("alice")}) == Refusal(403, "this invite is not valid")
    assert gate.grant({"invite": links.token("carol")}) == Refusal(403, "this invite is not valid")  # not in the file
    clock.t = NOW + 3300  # a token near the invite's end ends with it
    late = gate.grant({"invite": links.token("alice")})
    assert isinstance(late, Grant) and late.expires == NOW + 3600
    write_invites(path, {"alice": Invite("alice", NOW + 3600, revoked=True)})
    os.utime(path, ns=(1, 1))  # a change within the same mtime tick is still seen (size, mtime)
    clock.t += 1.0  # the file is looked at again a second on
    assert gate.admit(late.token) == Refusal(403, "this invite was revoked")
    assert gate.grant({"token": late.token}) == Refusal(403, "this invite was revoked")
    # A link opened the moment `invite add` printed it: POST /live/access looks at the file then and there.
    write_invites(path, {"dan": Invite("dan", NOW + 3600)})
    assert isinstance(gate.grant({"invite": links.token("dan")}), Grant)


def test_the_invites_file_is_judged_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "invites.json"
    assert read_invites(path) == {}
    path.write_text("{not json")
    with pytest.raises(InviteError, match=r"invites.json: not JSON"):
        read_invites(path)
    path.write_text(json.dumps({"a.b": {"expires": 1}}))
    with pytest.raises(InviteError, match=r"invite 'a.b' is not"):
        read_invites(path)
    path.write_text(json.dumps({"a": {"expires": True}}))
    with pytest.raises(InviteError):
        read_invites(path)


def test_private_settings_need_a_long_secret_and_no_published_playlists(tmp_path: Path) -> None:
    assert load_settings(environ=env(tmp_path)).private is False
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env(tmp_path, PRIVATE="true", PRIVATE_SECRET="tiny-secret-xyz", PUBLISH_PLAYLISTS="true"))
    assert err.value.problems[0].startswith("PRIVATE_SECRET is too short: PRIVATE=true needs at least 32")
    assert "tiny-secret-xyz" not in " ".join(err.value.problems)  # a secret is never echoed
    assert err.value.problems[1].startswith("PUBLISH_PLAYLISTS=true serves playlists from the bucket")
    s = load_settings(environ=env(tmp_path, PRIVATE="true", PRIVATE_SECRET=SECRET, PRIVATE_PASSPHRASE="pw"))
    assert s.invites_file == s.state_dir / "invites.json" and SECRET not in repr(s) and "pw" in s.secrets()
    assert {"PRIVATE", "PRIVATE_SECRET", "PRIVATE_TOKEN_LIFE"} <= {row.name for row in SETTINGS}


def invite_cli(tmp_path: Path, *args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PRIVATE", "STATE_DIR"))}
    environ.update(PRIVATE_SECRET=secret, STATE_DIR=str(tmp_path / "state"))
    return subprocess.run([sys.executable, "-m", "broadcaster", "invite", *args], env=environ, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_the_invite_command_adds_prints_the_link_revokes_and_lists(tmp_path: Path) -> None:
    added = invite_cli(tmp_path, "add", "alice", "--days", "2", "--page", "https://live.example.com/")
    assert added.returncode == 0, added.stderr
    link = added.stdout.splitlines()[-1]
    assert link == f"https://live.example.com/?invite={InviteLinks(SECRET).token('alice')}"
    invites = read_invites(tmp_path / "state" / "invites.json")
    assert invites["alice"].revoked is False and invites["alice"].expires > NOW - 10**9
    assert invite_cli(tmp_path, "revoke", "alice").returncode == 0
    listed = invite_cli(tmp_path, "list")
    assert listed.stdout.strip() == "alice  was revoked"
    for args, words in ((("revoke", "nobody"), "no invite named nobody"), (("add", "a.b"), "invite name 'a.b'"),
                        (("add", "--", "-eve"), "invite name '-eve'"),
                        (("add", "x", "--days", "0"), "--days 0: between 0 and 3650")):
        bad = invite_cli(tmp_path, *args)
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    key = invite_cli(tmp_path, "tracker-key")
    assert key.stdout == f"TRACKER_VIEWER_KEY={derive(SECRET, 'viewer').hex()}\n"
    short = invite_cli(tmp_path, "list", secret="short")
    assert short.returncode == 2 and "PRIVATE_SECRET is too short" in short.stderr


def test_a_private_stream_lists_segments_with_the_edge_token(tmp_path: Path) -> None:
    assert isinstance(segment_urls(load_settings(environ=env(tmp_path))), PublicUrls)
    s = load_settings(environ=env(tmp_path, PRIVATE="true", PRIVATE_SECRET=SECRET, PRIVATE_EDGE_WINDOW="60"))
    urls = segment_urls(s)
    assert isinstance(urls, EdgeUrls)
    uri = urls.segment("live/0/seg1.ts")
    assert uri.startswith("https://media.example.com/live/0/seg1.ts?verify=")
    ts = int(uri.partition("verify=")[2].partition("-")[0])
    assert ts % 60 == 0 and edge_key(SECRET) not in uri


async def test_a_private_streams_clips_are_made_kept_off_the_bucket_and_served_behind_the_gate(tmp_path: Path) -> None:
    """As the service wires it: a private stream's clip is made (nothing to cut yet: one line says so),
    its playlists in STATE_DIR behind the gate; a public stream's go to the bucket, and with presigned
    segment URLs it refuses clips in one line."""
    from broadcaster.service import Service

    path = "/live/clips/20261118-000000-abcd/0/playlist.m3u8"
    service = Service(load_settings(environ=env(tmp_path, PRIVATE="true", PRIVATE_SECRET=SECRET)))
    try:
        with pytest.raises(ClipError, match="list nothing yet"):
            await service.clips.make(last=5)
        assert isinstance(service.kept, KeptPlaylists)
        assert (await service.app.router.resolve(make_mocked_request("GET", path))).handler is not elsewhere
    finally:
        await service.stop()
    (tmp_path / "public").mkdir()
    public = Service(load_settings(environ=env(tmp_path / "public")))
    try:
        assert public.kept is None
        assert (await public.app.router.resolve(make_mocked_request("GET", path))).handler is elsewhere
    finally:
        await public.stop()
