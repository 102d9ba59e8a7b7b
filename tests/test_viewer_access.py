"""A private stream's token on the viewer page (viewer/src/access.js), run by Node against a fake POST
/live/access answering as the service's contract says, a fake clock, and a storage two instances share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import module_output

SRC = Path(__file__).resolve().parents[1] / "viewer" / "src"

HARNESS = """
import * as Access from %(access)s;
const SERVER_NOW = 1800000000; // the service's clock, s
let device = SERVER_NOW * 1000 + 3600000; // this device's clock runs an hour fast
const now = () => device;
const serverNow = () => Math.floor((device - 3600000) / 1000);
const tokens = new Map(); // token -> { who, expires }
const invites = { 'inv-ok': { revoked: false }, 'inv-old': { expired: '2026-11-01' } };
let issued = 0;
let down = false;
const asked = [];
const mint = (who) => {
  issued += 1;
  const token = 't' + issued;
  tokens.set(token, { who, expires: serverNow() + 600 });
  return { status: 200, body: { token, expires: serverNow() + 600 } };
};
const refuse = (error) => ({ status: 403, body: { error } });
const inviteAnswer = (name) => {
  const invite = invites[name];
  if (!invite) return refuse('this invite is not valid');
  if (invite.expired) return refuse('this invite expired on ' + invite.expired);
  if (invite.revoked) return refuse('this invite was revoked');
  return mint(name);
};
function answer(body) {
  if ('passphrase' in body) {
    return body.passphrase === 'open sesame' ? mint('-') : refuse('wrong pass-phrase');
  }
  if ('invite' in body) return inviteAnswer(body.invite);
  const held = tokens.get(body.token);
  if (!held || held.expires <= serverNow()) return refuse('this token expired');
  return held.who === '-' ? mint('-') : inviteAnswer(held.who);
}
async function fetch(url, options) {
  const body = JSON.parse(options.body);
  asked.push({ url, method: options.method, credentials: options.credentials, body });
  if (down) throw new TypeError('Failed to fetch');
  const { status, body: answered } = answer(body);
  const date = new Date(serverNow() * 1000).toUTCString();
  return { status, headers: { get: (name) => (name === 'Date' ? date : null) }, json: async () => answered };
}
const timers = [];
const world = (storage) => ({
  fetch, storage, now, base: 'https://watch.example/embed?x=1',
  setTimeout: (run, ms) => { const t = { run, ms }; timers.push(t); return t; },
  clearTimeout: (t) => { const i = timers.indexOf(t); if (i >= 0) timers.splice(i, 1); },
  onLost: (why) => { out.lost.push(why); },
});
const store = () => { let v = null; return { get: () => v, set: (x) => { v = x; } }; };
const fire = async () => { const t = timers.shift(); await t.run(); };
const out = { lost: [] };

const tab = store();
const a = Access.create(world(tab));
out.wrong = await a.passphrase('nope');
out.wrongHeld = a.token();
out.right = await a.passphrase('open sesame');
out.held = a.token();
out.timers = timers.map((t) => t.ms);
out.master = a.withToken('https://watch.example/live/master.m3u8');
out.beat = a.withToken('live/watching');
out.request = asked[1];
device += 450000;
await fire();
out.renewed = a.token();
out.refreshed = a.refresh('https://watch.example/live/0/stream.m3u8?access=t2&_HLS_msn=5&_HLS_part=1');
out.refreshedOld = a.refresh('https://watch.example/live/0/stream.m3u8?access=t1&_HLS_msn=5');
out.bucket = a.refresh('https://bucket.example/live/0/seg1.ts?verify=1800000000-abc');
out.vm = a.refresh('https://watch.example/live/vm/0/seg1.ts?verify=1800000000-abc');
out.page = a.refresh('https://watch.example/viewer.min.js?v=0123456789abcdef');
out.snapshot = a.snapshot();
out.reloaded = Access.create(world(tab)).token();
timers.length = 0;

const c = Access.create(world(store()));
out.expiredInvite = await c.redeem('inv-old');
out.invite = await c.redeem('inv-ok');
out.inviteHeld = c.token();
invites['inv-ok'].revoked = true;
device += 300000;
await fire();
out.afterRevoked = c.token();
out.lastAsked = asked.slice(-2).map((a) => a.body);
out.timersAfterLost = timers.length;

const e = Access.create(world(store()));
await e.passphrase('open sesame');
down = true;
device += 450000;
await fire();
out.offline = { held: e.token() !== null, retryMs: timers.map((t) => t.ms) };
down = false;
device += 200000; // past its end: a door refused it; no invite to fall back on
out.recoverExpired = await e.recover();
out.afterRecover = e.token();
const f = Access.create(world(store()));
await f.redeem('inv-old').then(() => f.passphrase('open sesame'));
out.recoverValid = await f.recover();
const g = Access.create(world(store()));
g.serve('https://stream.example/tv/hls/stream.m3u8?x=1');  // a page hosted elsewhere playing ?src=
await g.passphrase('open sesame');
out.elsewhere = { asked: asked[asked.length - 1].url,
  vm: g.refresh('https://stream.example/tv/live/vm/0/seg1.ts'),
  page: g.refresh('https://watch.example/live/x.ts') };
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def got() -> dict[str, Any]:
    """What the harness saw (one run of Node for the module's tests)."""
    result: dict[str, Any] = module_output(HARNESS % {"access": json.dumps((SRC / "access.js").as_uri())})
    return result


def test_the_pass_phrase_gets_a_token_renewed_by_the_services_clock_and_added_to_urls(
        got: dict[str, Any]) -> None:
    assert got["wrong"] == {"ok": False, "error": "wrong pass-phrase", "retry": False}
    assert got["wrongHeld"] is None
    assert got["right"] == {"ok": True} and got["held"] == "t1"
    assert got["request"] == {"url": "https://watch.example/live/access", "method": "POST",
                              "credentials": "omit", "body": {"passphrase": "open sesame"}}
    # 600 s left by the service's clock, though this device's runs an hour fast: renewed 150 s early.
    assert got["timers"] == [450000]
    assert got["master"] == "https://watch.example/live/master.m3u8?access=t1"
    assert got["beat"] == "https://watch.example/live/watching?access=t1"
    assert got["renewed"] == "t2" and got["snapshot"]["renewals"] == 1 and got["snapshot"]["held"]
    # hls.js's reloads of a URI the service wrote with the older token go with the new one, directives kept.
    assert got["refreshed"] == "https://watch.example/live/0/stream.m3u8?access=t2&_HLS_msn=5&_HLS_part=1"
    assert got["refreshedOld"] == "https://watch.example/live/0/stream.m3u8?access=t2&_HLS_msn=5"
    assert got["bucket"] == "https://bucket.example/live/0/seg1.ts?verify=1800000000-abc"  # not the service's
    # The VM's pathway: a segment the service lists without a viewer token is asked with it; not its files.
    assert got["vm"] == "https://watch.example/live/vm/0/seg1.ts?verify=1800000000-abc&access=t2"
    assert got["page"] == "https://watch.example/viewer.min.js?v=0123456789abcdef"
    assert got["reloaded"] == "t2"  # the same tab, the page loaded again: no form


def test_an_invites_words_are_the_services_and_a_revoked_invite_ends_at_the_next_renewal(
        got: dict[str, Any]) -> None:
    assert got["expiredInvite"]["error"] == "this invite expired on 2026-11-01"
    assert got["invite"] == {"ok": True} and got["inviteHeld"] is not None
    # Renewal refused (the invite revoked); the invite kept is asked again, refused too: the page asks.
    assert got["lastAsked"] == [{"token": got["inviteHeld"]}, {"invite": "inv-ok"}]
    assert got["afterRevoked"] is None and got["lost"] == ["this invite was revoked"]
    assert got["timersAfterLost"] == 0


def test_offline_renewals_retry_and_a_refused_token_is_recovered_or_dropped(got: dict[str, Any]) -> None:
    assert got["offline"]["held"] and got["offline"]["retryMs"] and max(got["offline"]["retryMs"]) <= 10000
    assert got["recoverExpired"]["ok"] is False and got["afterRecover"] is None
    assert got["recoverValid"] == {"ok": True}


def test_a_page_hosted_elsewhere_asks_the_service_of_the_stream_it_plays(got: dict[str, Any]) -> None:
    elsewhere = got["elsewhere"]
    assert elsewhere["asked"] == "https://stream.example/tv/live/access"
    assert elsewhere["vm"].startswith("https://stream.example/tv/live/vm/0/seg1.ts?access=t")
    assert elsewhere["page"] == "https://watch.example/live/x.ts"  # not that service's: no token
