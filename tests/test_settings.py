"""Settings: precedence, validation that names the setting, and the CLI's one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from broadcaster.cli import build_parser
from broadcaster.settings import SETTINGS, Address, SettingsError, load_settings, lookalike_keys, raw_setting
from tests.support.settings_env import SECRET, env


def one_line_error(environ: dict[str, str], env_file: Path | None = None) -> str:
    """The one problem load_settings refuses the settings for, in a line that does not show SECRET."""
    with pytest.raises(SettingsError) as err:
        load_settings(environ=environ, env_file=env_file)
    message = str(err.value)
    assert "\n" not in message and SECRET not in message
    return message


def test_defaults_and_normalisation(tmp_path: Path) -> None:
    s = load_settings(environ=env(tmp_path))
    assert (s.first_bucket.region, s.r2_key_prefix, s.host, s.port) == ("auto", "live", "127.0.0.1", 3000)
    assert s.first_bucket.public_url == "https://media.example.com"
    assert s.state_dir.is_dir() and s.window_seconds == 30 and s.upload_concurrency == 8


def test_flags_win_over_environment_which_wins_over_env_file(tmp_path: Path) -> None:
    dotenv = tmp_path / "settings.env"
    dotenv.write_text("PORT=4000\nWINDOW_SECONDS=12\nR2_KEY_PREFIX=from-file\n")
    s = load_settings({"PORT": "5000"}, env(tmp_path, WINDOW_SECONDS="20"), dotenv)
    assert (s.port, s.window_seconds, s.r2_key_prefix) == (5000, 20.0, "from-file")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "abc", "PORT='abc': expected a whole number"),
        ("PORT", "70000", "PORT='70000': expected a number from 0 to 65535"),
        # ASCII digits only: int() would take these for 3.
        ("PORT", "\u0663", "PORT='\u0663': expected a whole number"),
        ("UPLOAD_CONCURRENCY", "\uff13", "UPLOAD_CONCURRENCY='\uff13': expected a whole number"),
        ("METRICS_LISTEN", "127.0.0.1:\u00b2", "METRICS_LISTEN='127.0.0.1:\u00b2': expected HOST:PORT"),
        ("HLS_DIR", "/no/such/dir", "HLS_DIR='/no/such/dir': no such folder"),
        ("S3_ENDPOINT_URL", "r2.example", "S3_ENDPOINT_URL='r2.example': expected an http:// or https:// URL"),
        ("AWS_BUCKET_NAME", "Bad_Bucket", "AWS_BUCKET_NAME='Bad_Bucket'"),
        ("R2_KEY_PREFIX", "../up", "R2_KEY_PREFIX='../up'"),
        ("WINDOW_SECONDS", "-1", "WINDOW_SECONDS='-1': expected a number above 0"),
        ("WINDOW_SECONDS", "nan", "WINDOW_SECONDS='nan'"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='loud': expected one of"),
        ("SEGMENT_URLS", "signed", "SEGMENT_URLS='signed': expected one of public, presigned"),
        ("PRESIGN_EXPIRY", "30", "PRESIGN_EXPIRY='30': expected a number from 60 to 604800"),
        ("PRESIGN_EXPIRY", "700000", "PRESIGN_EXPIRY='700000': expected a number from 60 to 604800"),
        *(("S3_REGION", value, f"S3_REGION={value!r}: contains a control character")
          for value in ("a\nb", "a\x00b", "tab\there", "bell\x07")),
        ("HLS_DIR", "~nobody-here/hls", "HLS_DIR='~nobody-here/hls': no such user for ~nobody-here"),
    ],
)
def test_bad_values_name_the_setting(tmp_path: Path, name: str, value: str, expected: str) -> None:
    assert expected in one_line_error(env(tmp_path, **{name: value}))


@pytest.mark.parametrize(
    ("value", "parsed", "shown"),
    [("", "", ""), (" OFF ", "off", "off"), ("127.0.0.1:9100", Address("127.0.0.1", 9100), "127.0.0.1:9100"),
     ("[::1]:9100", Address("::1", 9100), "[::1]:9100")],
)
def test_metrics_listen_is_given_parsed(tmp_path: Path, value: str, parsed: object, shown: str) -> None:
    """The service binds the host and port settings parsed; its messages show them as written."""
    listen = load_settings(environ=env(tmp_path, METRICS_LISTEN=value)).metrics_listen
    assert listen == parsed and str(listen) == shown


def test_bad_secret_is_named_but_never_echoed(tmp_path: Path) -> None:
    assert "AWS_SECRET_ACCESS_KEY" in one_line_error(env(tmp_path, AWS_SECRET_ACCESS_KEY="   "))
    s = load_settings(environ=env(tmp_path))
    assert SECRET not in repr(s) and SECRET not in str(s)


def test_unwritable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "STATE_DIR" in one_line_error(env(tmp_path, STATE_DIR=str(blocker / "sub")))


def run_cli(*args: str, environ: dict[str, str], cwd: Path, argv: tuple[str, ...] = ("-m", "broadcaster"),
            ) -> subprocess.CompletedProcess[str]:
    """`python -m broadcaster args` (or `python argv args`), its settings those of `environ` alone."""
    full = {k: v for k, v in os.environ.items() if k not in {s.name for s in SETTINGS}}
    full.update(environ)
    return subprocess.run([sys.executable, *argv, *args], env=full, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("args", "over", "said"), [
    (["--port", "nope"], {}, "--port='nope': expected a whole number\n"),
    # Wrong credentials are refused by a real bucket: see the SeaweedFS integration tests.
    ([], {"S3_ENDPOINT_URL": "ftp://x"}, "S3_ENDPOINT_URL="),
    ([], {"OWNCAST_URL": f"https://admin:{SECRET}@owncast.example.com"}, "OWNCAST_URL="),
    ([], {"SEGMENT_URLS": "presigned", "PUBLISH_PLAYLISTS": "true"}, "PUBLISH_PLAYLISTS=true"),
], ids=["bad-flag", "bad-endpoint", "password-in-url", "not-together"])
def test_cli_bad_settings_are_one_line_exit_2_no_traceback(tmp_path: Path, args: list[str], over: dict[str, str],
                                                           said: str) -> None:
    r = run_cli("run", *args, environ=env(tmp_path, **over), cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith(f"hls-broadcaster: error: {said}"), r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and SECRET not in r.stderr + r.stdout


def test_help_explains_every_setting(tmp_path: Path) -> None:
    r = run_cli("--help", environ={}, cwd=tmp_path)
    assert r.returncode == 0
    for s in SETTINGS:
        assert s.name in r.stdout
    r = run_cli("run", "--help", environ={}, cwd=tmp_path)
    for s in SETTINGS:
        assert s.flag in r.stdout


@pytest.mark.parametrize("name", ["OWNCAST_URL", "R2_PUBLIC_URL", "S3_ENDPOINT_URL"])
@pytest.mark.parametrize("userinfo", [f"admin:{SECRET}@", "admin@", f":{SECRET}@"])
def test_a_url_with_a_user_or_password_is_refused_without_showing_it(tmp_path: Path, name: str,
                                                                     userinfo: str) -> None:
    """These URLs are shown (/config.json, the log, every playlist); Owncast's admin logs in as
    admin:<stream key>."""
    message = one_line_error(env(tmp_path, **{name: f"https://{userinfo}stream.example.com"}))
    assert message.startswith(f"{name}='https://***@stream.example.com': expected a URL without user:password@")
    assert "admin" not in message


def test_r2_public_url_is_required_for_public_segment_urls_only(tmp_path: Path) -> None:
    e = env(tmp_path)
    del e["R2_PUBLIC_URL"]
    message = one_line_error(e)
    assert message.startswith("R2_PUBLIC_URL is not set") and "SEGMENT_URLS=presigned" in message
    s = load_settings(environ={**e, "SEGMENT_URLS": "presigned"})
    assert (s.segment_urls, s.first_bucket.public_url, s.presign_expiry) == ("presigned", "", 3600)


def test_presigned_segment_urls_refuse_playlists_in_the_bucket_public_ones_any_expiry(tmp_path: Path) -> None:
    message = one_line_error(env(tmp_path, SEGMENT_URLS="presigned", PUBLISH_PLAYLISTS="true"))
    assert message.startswith("PUBLISH_PLAYLISTS=true") and "SEGMENT_URLS=presigned" in message
    assert load_settings(environ=env(tmp_path, PUBLISH_PLAYLISTS="true")).publish_playlists  # public: fine
    assert load_settings(environ=env(tmp_path, PRESIGN_EXPIRY="60")).segment_urls == "public"


@pytest.mark.parametrize(("window", "margin", "expiry", "needed"),
                         [("30", "60", "149", 150), ("1200", "60", "3600", 3660), ("20", "0", "60", 60)])
def test_presign_expiry_must_outlast_a_segments_life_in_the_playlists(
        tmp_path: Path, window: str, margin: str, expiry: str, needed: int) -> None:
    over = {"SEGMENT_URLS": "presigned", "WINDOW_SECONDS": window, "CLEANUP_MARGIN": margin, "REWIND_SECONDS": "0"}
    if int(expiry) < needed:
        message = one_line_error(env(tmp_path, PRESIGN_EXPIRY=expiry, **over))
        assert message.startswith(f"PRESIGN_EXPIRY={expiry} ") and f"= {needed}s" in message, message
    s = load_settings(environ=env(tmp_path, PRESIGN_EXPIRY=str(needed), **over))  # exactly enough is enough
    assert s.presign_expiry == needed


def test_p2p_is_off_by_default_and_takes_ws_tracker_urls(tmp_path: Path) -> None:
    assert load_settings(environ=env(tmp_path)).p2p_trackers == ()
    s = load_settings(environ=env(tmp_path, P2P_TRACKERS=" wss://tracker.example.com , ws://127.0.0.1:8000,"))
    assert s.p2p_trackers == ("wss://tracker.example.com", "ws://127.0.0.1:8000")


def test_p2p_stun_is_cloudflares_by_default_none_or_the_operators(tmp_path: Path) -> None:
    """Not the library's default (Google's and Twilio's): Cloudflare's, whom viewers already reach."""
    assert load_settings(environ=env(tmp_path)).p2p_stun_servers == ("stun:stun.cloudflare.com:3478",)
    assert load_settings(environ=env(tmp_path, P2P_STUN_SERVERS=" None ")).p2p_stun_servers == ()
    s = load_settings(environ=env(tmp_path, P2P_STUN_SERVERS="stun:stun.example.com, STUNS:[2001:db8::1]:5349,"))
    assert s.p2p_stun_servers == ("stun:stun.example.com", "STUNS:[2001:db8::1]:5349")


@pytest.mark.parametrize(("name", "value"), [
    *(("P2P_TRACKERS", value) for value in [
        "https://tracker.example.com", "udp://tracker.example.com:80", "wss://", "tracker.example.com",
        "wss://a.example.com, http://b.example.com", "wss://t.example.com/#x", 'wss://t.example.com/"x',
        ",".join(f"wss://t{i}.example.com" for i in range(9))]),
    *(("P2P_STUN_SERVERS", value) for value in [
        "stun.example.com", "turn:turn.example.com", "stun:", "stun:a.example.com:0",
        "stun:a.example.com:70000", "stun:a.example.com/x", "stun:a b", 'stun:a"b', "stun:-", "stun:..", " ",
        " , ", ",".join(f"stun:s{i}.example.com" for i in range(5))]),
])
def test_bad_p2p_servers_are_one_line_naming_the_setting(tmp_path: Path, name: str, value: str) -> None:
    message = one_line_error(env(tmp_path, **{name: value}))
    rest = message.removeprefix(f"{name}=")
    said = ("tracker",) if name == "P2P_TRACKERS" else ("stun:HOST", "STUN URLs")
    assert rest != message and any(words in rest for words in said), message


def test_the_p2p_swarm_is_one_per_stream(tmp_path: Path) -> None:
    """Two streams announced to one tracker never share a swarm: another bucket or prefix is another swarm."""
    swarm = load_settings(environ=env(tmp_path)).p2p_swarm
    assert swarm == load_settings(environ=env(tmp_path, PORT="4000")).p2p_swarm  # stable across restarts
    assert swarm != load_settings(environ=env(tmp_path, R2_KEY_PREFIX="other")).p2p_swarm
    assert swarm != load_settings(environ=env(tmp_path, AWS_BUCKET_NAME="other-bucket")).p2p_swarm
    assert swarm.startswith("hls-broadcaster-") and SECRET not in swarm


def test_one_setting_alone_is_found_as_load_settings_finds_it(tmp_path: Path) -> None:
    """`clip` needs only STATE_DIR: environment, then .env, then the default; nothing else required."""
    env_file = tmp_path / "service.env"
    env_file.write_text("STATE_DIR=/srv/from-file\n")
    assert raw_setting("STATE_DIR", environ={}, env_file=env_file) == "/srv/from-file"
    assert raw_setting("STATE_DIR", environ={"STATE_DIR": "/srv/from-env"}, env_file=env_file) == "/srv/from-env"
    assert raw_setting("STATE_DIR", environ={"STATE_DIR": ""}) == "state"
    assert raw_setting("HLS_DIR", environ={}) is None  # required, not set
    with pytest.raises(SettingsError, match="missing.env does not exist"):
        raw_setting("STATE_DIR", environ={}, env_file=tmp_path / "missing.env")


def test_every_missing_or_bad_setting_is_named_in_one_error(tmp_path: Path) -> None:
    e = env(tmp_path, PORT="nope", WINDOW_SECONDS="-1", HLS_DIR=str(tmp_path / "missing"))
    del e["AWS_BUCKET_NAME"]
    with pytest.raises(SettingsError) as err:
        load_settings(environ=e)
    assert [p.split("=")[0].split(" ")[0] for p in err.value.problems] == [
        "HLS_DIR", "AWS_BUCKET_NAME", "PORT", "WINDOW_SECONDS"], err.value.problems  # in the table's order
    assert re.match(r"AWS_BUCKET_NAME is not set.*--aws-bucket-name", err.value.problems[1])  # and its flag
    assert all("\n" not in p for p in err.value.problems)


def test_cli_names_every_bad_setting_a_line_each_exit_2(tmp_path: Path) -> None:
    e = env(tmp_path, PORT="nope", LOG_LEVEL="loud")
    del e["AWS_ACCESS_KEY_ID"]
    for command in ("run", "check"):
        r = run_cli(command, environ=e, cwd=tmp_path)
        said = r.stdout + r.stderr
        assert r.returncode == 2, said
        assert "AWS_ACCESS_KEY_ID is not set" in said and "PORT='nope'" in said and "LOG_LEVEL='loud'" in said, said
        assert "Traceback" not in said and SECRET not in said
    r = run_cli("check", environ=e, cwd=tmp_path)
    assert [line.split(" ", 2)[1].split("=")[0] for line in r.stdout.splitlines() if line.startswith("FAIL")] == [
        "AWS_ACCESS_KEY_ID", "PORT", "LOG_LEVEL"], r.stdout


@pytest.mark.parametrize("value", ["a" * 64 + ".example.com", "exa mple", "-x", "x" * 300, "a..b"])
def test_host_must_be_an_address_or_a_host_name(tmp_path: Path, value: str) -> None:
    assert one_line_error(env(tmp_path, HOST=value)).startswith("HOST=")
    assert one_line_error(env(tmp_path, METRICS_LISTEN=f"{value}:9464")).startswith("METRICS_LISTEN=")


@pytest.mark.parametrize("value", ["127.0.0.1", "::1", "[::1]", "0.0.0.0", "localhost", "vm.example.com"])
def test_host_takes_addresses_and_host_names(tmp_path: Path, value: str) -> None:
    assert load_settings(environ=env(tmp_path, HOST=value)).host == value.strip("[]")


def test_a_key_that_looks_like_a_setting_is_named_with_the_setting(tmp_path: Path) -> None:
    dotenv = tmp_path / "service.env"
    dotenv.write_text("HLS_DIRR=/srv/hls\nhls_watch=auto\nPYTHONUNBUFFERED=1\nPORT=3000\n")
    found = lookalike_keys(environ={"AWS_SECRET_KEY": "x", "HOME": "/root", "PATH": "/bin"}, env_file=dotenv)
    assert found == [
        f"HLS_DIRR (in {dotenv}) is not a setting, so it is ignored: did you mean HLS_DIR?",
        f"hls_watch (in {dotenv}) is not a setting, so it is ignored: did you mean HLS_WATCH?",
        f"PYTHONUNBUFFERED (in {dotenv}) is not a setting, so it is ignored",
        "AWS_SECRET_KEY is not a setting, so it is ignored: did you mean AWS_SECRET_ACCESS_KEY?",
    ]


def test_check_warns_of_a_misspelt_key_and_takes_env_file_before_or_after_the_command(tmp_path: Path) -> None:
    dotenv = tmp_path / "service.env"
    values = env(tmp_path)
    del values["HLS_DIR"]
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in values.items()) + f"HLS_DIRR={tmp_path}\n")
    after = run_cli("check", "--env-file", str(dotenv), environ={}, cwd=tmp_path)
    before = run_cli("--env-file", str(dotenv), "check", environ={}, cwd=tmp_path)
    assert after.returncode == before.returncode == 2 and after.stdout == before.stdout, (after, before)
    assert after.stdout.splitlines()[:2] == [
        f"warn HLS_DIRR (in {dotenv}) is not a setting, so it is ignored: did you mean HLS_DIR?",
        "FAIL HLS_DIR is not set: Owncast's HLS folder (data/hls) (set it in the environment, a .env file or "
        "--hls-dir)"], after.stdout
    assert "Traceback" not in after.stderr + before.stderr


def test_env_file_after_the_command_wins_over_one_before(tmp_path: Path) -> None:
    parser = build_parser()
    assert parser.parse_args(["run"]).env_file == Path(".env")
    assert parser.parse_args(["--env-file", "a", "run"]).env_file == Path("a")
    assert parser.parse_args(["run", "--env-file", "b"]).env_file == Path("b")
    assert parser.parse_args(["--env-file", "a", "check", "--env-file", "b"]).env_file == Path("b")
    assert parser.parse_args(["clip", "--list", "--env-file", "c"]).env_file == Path("c")


@pytest.mark.parametrize("line", ["FRAME_ANCESTORS='self' https://www.example.com", 'AWS_SECRET_ACCESS_KEY="s3cr3t'])
def test_a_line_the_env_file_reader_cannot_read_is_named_not_dropped(tmp_path: Path, line: str) -> None:
    """python-dotenv drops a line it cannot parse with a warning, its setting silently left at its default."""
    dotenv = tmp_path / "service.env"
    dotenv.write_text(f"PORT=3000\n{line}\nLOG_LEVEL=info\n")
    message = one_line_error(env(tmp_path), dotenv)
    assert message == (
        f"env file {dotenv}, line 2 ({line.split('=')[0]}): not read as KEY=value: a value that starts with a "
        "quote must end with it (no quotes are needed, even with spaces: FRAME_ANCESTORS=self https://a.example)")
    assert "s3cr3t" not in message


def test_values_survive_the_env_file_as_the_docs_write_them(tmp_path: Path) -> None:
    """Spaces inside a value, quotes around one, a comment after one: as deploy/env.example says."""
    dotenv = tmp_path / "service.env"
    dotenv.write_text("FRAME_ANCESTORS=self https://a.example https://*.b.example\nVIEWER_SOURCES='https://c.example'\n"
                      "LOG_LEVEL=warning # quieter\n")
    s = load_settings(environ=env(tmp_path), env_file=dotenv)
    assert s.frame_ancestors == "'self' https://a.example https://*.b.example"
    assert s.viewer_sources == ("https://c.example",) and s.log_level == "warning"


@pytest.mark.parametrize(("port", "grafana"), [(3000, True), (3001, False)])
def test_the_demo_on_a_taken_port_says_how_to_move_it(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], port: int,
                                                      grafana: bool) -> None:
    """Its default port is Grafana's too: one line naming the clash and --port. The demo's runner is a
    stand-in (a unit test loads neither its emulator nor SeaweedFS: tests/test_suite_rules.py)."""
    from broadcaster import cli
    from broadcaster.service.startup import StartupError

    async def taken(**_: object) -> int:
        raise StartupError(f"cannot listen on 127.0.0.1:{port} (HOST/PORT): address already in use")

    runner = types.ModuleType("broadcaster.demo.run")
    monkeypatch.setattr(runner, "run_demo", taken, raising=False)
    monkeypatch.setattr(runner, "DemoError", type("DemoError", (RuntimeError,), {}), raising=False)
    monkeypatch.setitem(sys.modules, "broadcaster.demo.run", runner)
    assert cli.main(["demo", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("; --port picks another (0: any free one)"), err
    assert ("Grafana's default port is 3000 too" in err) is grafana, err


def test_a_settings_mistake_is_told_before_the_network_libraries_load(tmp_path: Path) -> None:
    """`run` and `check` import aiohttp and botocore (0.3 s of CPU) only once the settings hold."""
    code = ("import sys\nfrom broadcaster.cli import main\n"
            "for command in ('run', 'check'):\n"
            "    code = main([command, '--port', 'nope'] if command == 'run' else [command])\n"
            "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'botocore', 'aiobotocore'})\n"
            "    print(command, code, heavy)\n")
    done = run_cli(environ={"WINDOW_SECONDS": "abc"}, cwd=tmp_path, argv=("-c", code))
    said = [line for line in done.stdout.splitlines() if line.startswith(("run ", "check "))]
    assert said == ["run 2 []", "check 2 []"], (done.stdout, done.stderr)


@pytest.mark.parametrize("name", ["STREAM_TITLE", "HLS_DIR", "FRAME_ANCESTORS", "P2P_TRACKERS", "PORT"])
def test_a_huge_refused_value_is_quoted_to_a_bounded_length(tmp_path: Path, name: str) -> None:
    """A 2 MB STREAM_TITLE gave 2 MB of `check` output: the line quotes the value's start and says its length."""
    value = {"P2P_TRACKERS": "http://" + "t" * 2_000_000, "FRAME_ANCESTORS": "https://" + "f" * 2_000_000,
             "HLS_DIR": "/" + "d" * 2_000_000}.get(name, "x" * 2_000_000)
    line = one_line_error(env(tmp_path, **{name: value}))
    assert line.startswith(f"{name}=") and len(line) < 400, line[:500]
    assert f"({len(value)} characters)" in line or name != "STREAM_TITLE", line


def test_a_key_given_twice_in_the_env_file_is_named_with_both_lines(tmp_path: Path) -> None:
    """python-dotenv takes the last one silently: the operator who fixed the first saw nothing change."""
    dotenv = tmp_path / "service.env"
    dotenv.write_text("# settings\nWINDOW_SECONDS=20\nPORT=4000\n\nWINDOW_SECONDS=12\nAWS_SECRET_ACCESS_KEY=a\n"
                      "AWS_SECRET_ACCESS_KEY=s3cr3t-b\n")
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env(tmp_path), env_file=dotenv)
    assert err.value.problems == [
        f"env file {dotenv}, lines 2 and 5: WINDOW_SECONDS is given twice (the last would win): keep one",
        f"env file {dotenv}, lines 6 and 7: AWS_SECRET_ACCESS_KEY is given twice (the last would win): keep one"]
    assert "s3cr3t" not in str(err.value)
    r = run_cli("check", "--env-file", str(dotenv), environ=env(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert [line for line in r.stderr.splitlines() if "twice" in line] == [
        f"hls-broadcaster: error: env file {dotenv}, lines 2 and 5: WINDOW_SECONDS is given twice (the last "
        "would win): keep one",
        f"hls-broadcaster: error: env file {dotenv}, lines 6 and 7: AWS_SECRET_ACCESS_KEY is given twice (the "
        "last would win): keep one"], r.stderr


@pytest.mark.parametrize("value", ["https://a.example; script-src *", "'self';", "https://a.example;https://b.example",
                                   "frame-ancestors https://a.example"])
def test_frame_ancestors_with_a_directive_pasted_in_says_so(tmp_path: Path, value: str) -> None:
    line = one_line_error(env(tmp_path, FRAME_ANCESTORS=value))
    assert "expected only the sources" in line and "e.g. FRAME_ANCESTORS=self https://example.com" in line, line
