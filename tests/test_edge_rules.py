"""`hls-broadcaster edge-rules` (broadcaster/bucket/edge_rules.py): the edge key and the rules it prints
check the very tokens the service lists in segment URIs, and a stream with nothing to guard is told
with one line naming the setting."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from broadcaster.access.tokens import edge_key
from broadcaster.bucket.edge_rules import rules, ttl
from broadcaster.bucket.urls import segment_urls
from broadcaster.cli import main
from broadcaster.edge_token import SEPARATOR, checked_text, valid
from broadcaster.settings import Settings, SettingsError, load_settings
from tests.support.settings_env import env

SECRET = "k" * 40


def private(tmp_path: Path, **over: str) -> Settings:
    return load_settings(environ=env(tmp_path, **{"PRIVATE": "true", "PRIVATE_SECRET": SECRET,
                                                  "PRIVATE_EDGE_WINDOW": "60", **over}))


def test_the_printed_rule_accepts_the_tokens_the_playlists_list(tmp_path: Path) -> None:
    s = private(tmp_path, R2_KEY_PREFIX="shows/live")
    printed = "\n".join(rules(s))
    key = re.search(r"Edge key \(a secret, derived from PRIVATE_SECRET\): ([0-9a-f]{64})", printed)
    assert key is not None and key[1] == edge_key(SECRET) and SECRET not in printed
    waf = re.search(r'is_timed_hmac_valid_v0\("([0-9a-f]{64})", concat\("([^"]+)", "\?", '
                    r"http.request.uri.query\), (\d+), http.request.timestamp.sec, (\d+)\)", printed)
    assert waf is not None
    prefix, life, separator = waf[2], int(waf[3]), int(waf[4])
    assert prefix == "/shows/live/" and life == ttl(s) == 60 + math.ceil(s.segment_url_life)
    assert 'Cache key: Ignore query string' in printed and f'PREFIX = "{prefix}"' in printed
    uri = segment_urls(s).segment("shows/live/0/seg-7.ts")  # what a playlist lists now
    path, _, query = uri.removeprefix("https://media.example.com").partition("?")
    assert path.startswith(prefix)
    assert valid(waf[1], checked_text(prefix, query), life, int(uri.split("verify=")[1].split("-")[0]) + life - 1,
                 separator)
    assert separator == len(SEPARATOR)


@pytest.mark.parametrize(("over", "words"), [({"PRIVATE": "false"}, "PRIVATE is not true"),
                                             ({"SEGMENT_URLS": "presigned"}, "SEGMENT_URLS=presigned")])
def test_nothing_to_guard_is_one_line_naming_the_setting(tmp_path: Path, over: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        rules(private(tmp_path, **over))


def test_the_command_prints_the_rules_or_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PRIVATE", "PRIVATE_SECRET", "R2_KEY_PREFIX", "SEGMENT_URLS"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / "stream.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env(tmp_path, PRIVATE="true", PRIVATE_SECRET=SECRET).items()))
    assert main(["edge-rules", "--env-file", str(env_file)]) == 0
    assert edge_key(SECRET) in capsys.readouterr().out
    env_file.write_text(env_file.read_text().replace("PRIVATE=true", "PRIVATE=false"))
    assert main(["edge-rules", "--env-file", str(env_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hls-broadcaster edge-rules: error: PRIVATE is not true") and len(err.splitlines()) == 1
