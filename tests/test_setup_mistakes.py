"""Every set-up mistake is named at once, a line each, exit 2 (systemd's RestartPreventExitStatus=2), and
no traceback. The permission mistakes are tried as uid 65534 (tests/support/as_user.py), since root reads
every folder whatever its mode."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from dotenv import dotenv_values

from broadcaster.demo.seaweed import SeaweedS3
from broadcaster.preflight import _check_settings
from broadcaster.preflight.machine import check_hls_dir, check_listeners, check_state_dir
from broadcaster.preflight.report import Report
from broadcaster.settings import SETTINGS, SettingsError, load_settings
from broadcaster.source.access import AccessWatch, problems
from broadcaster import fixes, state_dir
from broadcaster.fixes import AS_ROOT
from broadcaster.preflight import as_root_line
from tests.support.as_user import NOBODY, as_nobody
from tests.support.service_process import ServiceProcess, with_this_code
from tests.support.waiting import until

pytestmark = pytest.mark.integration
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="not root")


def owncast_folder(place: Path) -> Path:
    """Owncast's data/hls as Owncast leaves it (0755 folders, 0644 files), with one variant."""
    hls = place / "home" / "owncast" / "data" / "hls"
    (hls / "0").mkdir(parents=True)
    (hls / "stream.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n0/stream.m3u8\n")
    (hls / "0" / "stream.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n")
    (hls / "0" / "stream-abc-1.ts").write_bytes(b"\x47" * 188)
    for folder in (place / "home", place / "home" / "owncast", hls.parent, hls, hls / "0"):
        folder.chmod(0o755)
    return hls


def env_file(place: Path, bucket: SeaweedS3 | None, hls: Path, **over: str) -> Path:
    """The service's env file, readable by anyone. No bucket: for mistakes found before any bucket call."""
    state = place / "state"
    s3 = {"S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "setupkey", "AWS_SECRET_ACCESS_KEY": "secret",
          "AWS_BUCKET_NAME": "setup", "R2_PUBLIC_URL": "https://media.example.com"} if bucket is None else {
          "S3_ENDPOINT_URL": bucket.endpoint_url, "AWS_ACCESS_KEY_ID": bucket.access_key,
          "AWS_SECRET_ACCESS_KEY": bucket.secret_key, "AWS_BUCKET_NAME": bucket.bucket,
          "R2_PUBLIC_URL": bucket.public_url}
    values = {"HLS_DIR": str(hls), **s3, "STATE_DIR": str(state), "PORT": "0", "TRUST_CF_CONNECTING_IP": "true",
              **over}
    path = place / "env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o644)
    return path


def environ(place: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {s.name for s in SETTINGS}}
    env.update(HOME=str(place), PYTHONDONTWRITEBYTECODE="1")
    return env


def stage(place: Path) -> Path:
    """as_nobody's scratch mount point, in `place`."""
    (place / ".stage").mkdir(exist_ok=True)
    return place / ".stage"


def as_user(place: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = as_nobody([sys.executable, "-m", "broadcaster", *args], stage(place))
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=environ(place), cwd=place)


@contextlib.asynccontextmanager
async def running_as_user(place: Path, argv: list[str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """`argv` as the user, in the background for the block, stopped after it."""
    quiet = asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(*as_nobody(argv, stage(place)), env=environ(place), cwd=place,
                                                stdout=quiet, stderr=quiet)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)


def prepare_state(place: Path) -> None:
    """STATE_DIR as systemd's StateDirectory= leaves it: the service user's."""
    state = place / "state"
    state.mkdir()
    os.chown(state, NOBODY, NOBODY)


def paste(line: str, place: Path, settings: Path) -> subprocess.CompletedProcess[str]:
    """The fix a line ends with, pasted into a root shell as printed; then the user's `check`."""
    assert line.count(AS_ROOT) == 1, line
    command = line.split(AS_ROOT, 1)[1]
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return as_user(place, "check", "--env-file", str(settings))


def stops_alike(place: Path, settings: Path, about: str) -> tuple[str, str]:
    """`check` and `run` as the user both stop on one line naming `about`: exit 2, no traceback, `run` with
    that line as its error beside its INFO lines. The line (without FAIL), and all `check` said."""
    checked = as_user(place, "check", "--env-file", str(settings))
    said = [x[5:] for x in checked.stdout.splitlines() if x.startswith("FAIL ") and about in x]
    assert checked.returncode == 2 and len(said) == 1, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stdout + checked.stderr
    (line,) = said
    ran = as_user(place, "--env-file", str(settings), "run")
    told = [x for x in ran.stderr.splitlines() if not re.match(r"[\d-]+ [\d:,]+ INFO ", x)]
    assert ran.returncode == 2 and told == [f"hls-broadcaster: error: {line}"], ran.stderr
    return line, checked.stdout


def remake_as_owncast(hls: Path) -> None:
    """Owncast at a stream's start under UMask=0077 (in a process of its own: the umask is the process's)."""
    code = ("import os, shutil, sys\nos.umask(0o077)\nhls = sys.argv[1]\nshutil.rmtree(hls)\n"
            "os.mkdir(hls, 0o750)\nos.mkdir(hls + '/0', 0o750)\n"
            "for name in ('stream.m3u8', '0/stream.m3u8', '0/stream-def-1.ts'):\n"
            "    with open(os.path.join(hls, name), 'w') as f:\n        f.write('#EXTM3U\\n')\n")
    subprocess.run([sys.executable, "-c", code, str(hls)], check=True, timeout=60)
    assert (hls / "0").stat().st_mode & 0o777 == 0o750 and not (hls / "0").stat().st_mode & 0o007


READ_FIX = ("as root: setfacl -d -m u:{user}:rX {hls.parent} && setfacl -R -m u:{user}:rX {hls} && "
            "find {hls} -type d -exec setfacl -d -m u:{user}:rX {{}} +")
# HLS_DIR itself cannot be reached: the setting's own line.
ENTER = ("HLS_DIR (from {place}/env)='{hls}': user {user} cannot enter {place}/home/owncast (permission "
         "denied); as root: setfacl -m u:{user}:x {place}/home/owncast")


@pytest.mark.parametrize(("closing", "closed", "mode", "expected"), [  # `closed`: the path from HLS_DIR
    ("owncast", "../..", 0o700, ENTER),  # Debian 12's home folders
    ("ubuntu-home", "../..", 0o750, ENTER),  # Ubuntu's (21.04 on): its group's, not the service's
    ("hls-list", ".", 0o711, "user {user} cannot list HLS_DIR {hls}; " + READ_FIX),  # entered, not listed
    ("variant", "0", 0o700, "user {user} cannot list {hls}/0 (HLS_DIR's variant folder 0); " + READ_FIX),
    ("playlist", "0/stream.m3u8", 0o600,
     "user {user} cannot read {hls}/0/stream.m3u8 (HLS_DIR's variant folder 0); " + READ_FIX),
    # Its group (4242) may read it: an ACL still, never a group to join (it would grant all the group may).
    ("group", "0", 0o750, "user {user} cannot list {hls}/0 (HLS_DIR's variant folder 0); " + READ_FIX),
])
def test_a_folder_the_user_cannot_read_is_named_with_a_fix_that_works_pasted(
        place: Path, seaweed: SeaweedS3, closing: str, closed: str, mode: int, expected: str) -> None:
    """Pasted, it keeps passing once Owncast has made its folders again, closed to others."""
    assert shutil.which("setfacl"), "setfacl is not installed: scripts/test installs Debian's acl package"
    hls = owncast_folder(place)
    prepare_state(place)
    if closing == "group":
        os.chown(hls / "0", 0, 4242)
    (hls / closed).chmod(mode)
    line = expected.format(place=place, hls=hls, user="nobody")
    settings = env_file(place, seaweed, hls)

    said, out = stops_alike(place, settings, "HLS_DIR")
    assert said == line and out.count("FAIL ") == 1, out
    again = paste(line, place, settings)  # as uid 65534 (the rig), now a clean set-up
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"ok   HLS_DIR {hls}: user nobody can enter, list and read it" in again.stdout, again.stdout
    if not closing.endswith(("owncast", "home")):
        remake_as_owncast(hls)
        after = as_user(place, "check", "--env-file", str(settings))
        assert after.returncode == 0, after.stdout + after.stderr


def test_the_acl_package_is_named_where_setfacl_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stock Debian has no setfacl: the fix installs its package first."""
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "setfacl" else real(name))
    line = fixes.enter(Path("/home/owncast"))
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert line == f"as root: apt-get update && apt-get install -y acl && setfacl -m u:{user}:x /home/owncast"
    monkeypatch.setattr(shutil, "which", lambda name: None)  # not Debian's: named, not installed
    assert fixes.enter(Path("/o")).endswith("setfacl -m u:" + user + ":x /o  # setfacl is in the acl package")


@pytest.mark.parametrize("mistake", ["unreadable", "closed-folder", "closed-above", "a-folder", "not-utf8", "missing"])
def test_an_env_file_that_cannot_be_read_is_one_line_exit_2(place: Path, mistake: str) -> None:
    """The thing refused is named (the file or its folder), and its fix, pasted, lets the user read it."""
    hls = owncast_folder(place)
    settings = env_file(place, None, hls)
    if mistake == "unreadable":
        settings.chmod(0o600)  # root's 0600
        # nobody's group is not its own (Debian's _apt is in it too): an ACL for it alone.
        expected = f"env file {settings}: user nobody cannot read it (permission denied); as root: setfacl -m " \
                   f"u:nobody:r {settings}"
    elif mistake == "closed-folder":
        (place / "etc").mkdir(mode=0o700)
        settings = settings.rename(place / "etc" / "env")
        expected = f"env file {settings}: user nobody cannot enter {place / 'etc'}, its folder (permission " \
                   f"denied); as root: setfacl -m u:nobody:x {place / 'etc'}"
    elif mistake == "closed-above":
        (place / "etc" / "hls").mkdir(parents=True)
        (place / "etc").chmod(0o700)
        settings = settings.rename(place / "etc" / "hls" / "env")
        expected = f"env file {settings}: user nobody cannot enter {place / 'etc'}, on the way to it (permission " \
                   f"denied); as root: setfacl -m u:nobody:x {place / 'etc'}"
    elif mistake == "a-folder":
        settings.unlink()
        settings.mkdir()
        expected = f"env file {settings} is not a file"
    elif mistake == "not-utf8":
        settings.write_bytes(b"HLS_DIR=/tmp/\xff\xfe\n")
        expected = f"env file {settings} is not UTF-8 text"
    else:
        settings.unlink()
        expected = f"env file {settings} does not exist"
    for argv in (["check", "--env-file", str(settings)], ["--env-file", str(settings), "run"]):
        done = as_user(place, *argv)
        said = (done.stdout + done.stderr).strip().splitlines()
        assert done.returncode == 2 and len(said) == 1 and expected in said[0], (argv, said)
        assert AS_ROOT not in expected or said[0].endswith(expected), said  # the fix ends the line
        assert "Traceback" not in done.stderr
    if AS_ROOT in expected:
        done = paste(said[0], place, settings)
        assert "env file" not in done.stdout + done.stderr, done.stdout + done.stderr
        assert f"ok   HLS_DIR {hls}" in done.stdout, done.stdout  # read, and every check run


@pytest.mark.parametrize("left_by_root", [False, True])
def test_a_state_dir_the_user_cannot_write_is_named_with_a_fix_that_works_pasted(place: Path,
                                                                                 left_by_root: bool) -> None:
    """STATE_DIR root's, or root's 0600 files left in it by a `sudo hls-broadcaster run` by hand."""
    hls = owncast_folder(place)
    state = place / "state"
    fix = f"as root: install -d -m 0750 -o nobody {state} && chown -R nobody {state}"
    if left_by_root:
        prepare_state(place)
        for name in ("lock", "state.json"):
            (state / name).write_text("")
            (state / name).chmod(0o600)
        expected = f"user nobody cannot rewrite lock in it (left by a run as another user?); {fix}"
    else:
        state.mkdir(mode=0o755)  # root's, not the service user's
        expected = f"STATE_DIR (from {place / 'env'})='{state}': not writable by user nobody; {fix}"
    settings = env_file(place, None, hls)
    line, _ = stops_alike(place, settings, "STATE_DIR")
    assert line.endswith(expected) and (left_by_root or line == expected), line
    again = paste(line, place, settings)
    assert f"ok   STATE_DIR {state}: writable by user nobody" in again.stdout, again.stdout


@ROOT_ONLY
def test_check_as_root_proves_nothing_unless_told_the_user(place: Path, seaweed: SeaweedS3) -> None:
    """Root enters every folder: its check fails saying so, unless told the user (--as)."""
    hls = owncast_folder(place)
    prepare_state(place)
    (place / "home" / "owncast").chmod(0o700)
    settings = env_file(place, seaweed, hls)
    env = environ(place)

    def check(*more: str) -> subprocess.CompletedProcess[str]:
        # As root, in the namespace where the user reaches this Python (which may live in root's home).
        argv = as_nobody([sys.executable, "-m", "broadcaster", "check", "--env-file", str(settings), *more],
                         stage(place), drop_root=False)
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=with_this_code(env), cwd=place)

    as_root = check()
    fails = [x for x in as_root.stdout.splitlines() if x.startswith("FAIL")]
    # The line names this very check as the service's user would run it: the program by its full path
    # (not on that user's PATH) and the env file given, not a bare name and a stock path.
    command = f"{sys.executable} -m broadcaster --env-file {settings} check"
    assert as_root.returncode == 2 and fails == [f"FAIL {as_root_line(command)}"], as_root.stdout
    # Pasted as the line says (as that user), it runs the check.
    pasted = subprocess.run(as_nobody(command.split(), stage(place)), capture_output=True, text=True,
                            timeout=120, env=with_this_code(env), cwd=place)
    assert "check ran as root" not in pasted.stdout, pasted.stdout
    assert f"user nobody cannot enter {place / 'home' / 'owncast'}" in pasted.stdout, pasted.stdout  # as the user
    assert "all checks passed" not in as_root.stdout
    told = check("--as", "nobody")
    fails = [x for x in told.stdout.splitlines() if x.startswith("FAIL")]
    assert told.returncode == 2 and len(fails) == 1, told.stdout + told.stderr
    assert f"user nobody cannot enter {place / 'home' / 'owncast'} (permission denied)" in fails[0], fails
    (place / "home" / "owncast").chmod(0o755)
    passed = check("--as", "nobody")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert f"ok   HLS_DIR {hls}: user nobody can enter" in passed.stdout
    assert check("--as", "root").returncode == 0  # the operator says the service runs as root
    unknown = check("--as", "no-such-user-68")
    assert unknown.returncode == 2 and unknown.stderr.strip() == "hls-broadcaster: error: --as no-such-user-68: " \
        "no such user", unknown.stderr


def test_check_before_the_first_start_does_not_need_state_dir(place: Path, seaweed: SeaweedS3) -> None:
    """Before systemd's StateDirectory= makes STATE_DIR, check says so and passes, never creating it."""
    if state_dir.SYSTEMD_STATE_DIR.exists():
        pytest.skip(f"{state_dir.SYSTEMD_STATE_DIR} exists on this machine")
    hls = owncast_folder(place)
    settings = env_file(place, seaweed, hls, STATE_DIR=str(state_dir.SYSTEMD_STATE_DIR))
    done = as_user(place, "check", "--env-file", str(settings))
    assert done.returncode == 0, done.stdout + done.stderr
    warned = [x for x in done.stdout.splitlines() if x.startswith("warn STATE_DIR")]
    assert len(warned) == 1 and "StateDirectory= makes it at the first start" in warned[0], done.stdout
    assert not state_dir.SYSTEMD_STATE_DIR.exists()


def test_a_mistyped_state_dir_fails_check_as_run_refuses_it(place: Path, seaweed: SeaweedS3) -> None:
    """A STATE_DIR the user cannot make, not the unit's StateDirectory= (a typo): the fix pasted makes it."""
    hls = owncast_folder(place)
    (place / "lib").mkdir(mode=0o755)  # as /var/lib: root's
    typo = place / "lib" / "hls-broadcastr"
    settings = env_file(place, seaweed, hls, STATE_DIR=str(typo))
    line, _ = stops_alike(place, settings, "STATE_DIR")
    said = f"STATE_DIR {typo}: does not exist and user nobody cannot make it in {place / 'lib'}"
    assert line.startswith(said) and "StateDirectory= makes only /var/lib/hls-broadcaster" in line, line
    assert f"ok   STATE_DIR {typo}: writable by user nobody" in paste(line, place, settings).stdout


def test_the_fix_for_a_relative_state_dir_names_an_absolute_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`state` pasted into a root shell would make /root/state: the fix names it absolute."""
    monkeypatch.chdir(tmp_path)
    fix = fixes.own_folder(Path("state"))
    assert f" {tmp_path / 'state'} " in fix + " " and " state " not in fix + " ", fix


async def test_a_folder_closed_while_running_makes_health_degraded_with_the_reason(place: Path, seaweed: SeaweedS3) -> None:
    hls = owncast_folder(place)
    prepare_state(place)
    env = {**environ(place), **{k: v or "" for k, v in dotenv_values(env_file(place, seaweed, hls)).items()}}
    async with (ServiceProcess(env, place, prefix=as_nobody([], stage(place))) as service,
                aiohttp.ClientSession() as http):

        async def health() -> tuple[int, dict[str, object]]:
            async with http.get(f"{service.url}/health") as r:
                return r.status, json.loads(await r.text())

        status, body = await health()
        assert status == 200 and body["stream"] == "idle", body
        (hls / "0").chmod(0o700)  # Owncast made it again, closed
        reason = f"cannot read Owncast's folder: user nobody cannot list {hls}/0"
        seen: list[tuple[int, dict[str, object]]] = []

        async def degraded() -> bool:
            seen.append(await health())
            return seen[-1][0] == 503 and reason in str(seen[-1][1]["status"])

        await until(degraded, f"/health naming {reason}", 20, every=0.5)
        assert seen[-1][1]["stream"] == "live", seen[-1]  # degraded: live and not ok
        (hls / "0").chmod(0o755)

        async def recovered() -> bool:
            return (await health())[0] == 200

        await until(recovered, "/health ok again", 20, every=0.5)
    assert "Traceback" not in "\n".join(service.lines)


def test_a_folder_gone_is_no_refusal(tmp_path: Path) -> None:
    """Owncast makes HLS_DIR again at every stream: gone for a moment is not 'cannot enter'."""
    hls = tmp_path / "hls"
    (hls / "0").mkdir(parents=True)
    watch = AccessWatch(hls)
    assert watch.check() == [] and watch.problem is None
    shutil.rmtree(hls)
    assert watch.check() == [] and watch.problem is None
    assert problems(tmp_path / "never" / "made", watch=True) == []


HOSTILE = ["", " ", "\t", "0", "-1", "1e309", "nan", "inf", "\u0663", "x" * 5000, "a\x00b", "\udcff", "../../..",
           "~nobody-here/x", "http://", "https://a b", "'self'", '"quoted"', "a\nb", "[::1]:99999", ":", "*",
           "a" * 64 + ".example.com", "-"]


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_no_value_of_any_setting_gives_a_traceback(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SettingsError with a line per problem naming the setting, or settings that pass the checks."""
    monkeypatch.chdir(tmp_path)  # a STATE_DIR of '0' is made here, not in the checkout
    (tmp_path / "hls").mkdir()
    base = {"HLS_DIR": str(tmp_path / "hls"), "S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s", "AWS_BUCKET_NAME": "bucket", "R2_PUBLIC_URL": "https://media.example.com",
            "STATE_DIR": str(tmp_path / "state"), "PORT": "0"}
    for value in HOSTILE:
        for make in (False, True):  # as `check` reads STATE_DIR, and as `run` does
            try:
                settings = load_settings(environ={**base, name: value}, make_state_dir=make)
            except SettingsError as err:
                assert err.problems and all(p and "\n" not in p for p in err.problems), (value, err.problems)
                assert any(s.name in p for p in err.problems for s in SETTINGS), (value, err.problems)
                continue
            lines: list[str] = []
            report = Report(lines.append, [])
            _check_settings(settings, report)
            check_hls_dir(settings, report)
            check_state_dir(settings, report)
            check_listeners(settings, report)
            assert all("\n" not in line for line in lines), (value, lines)


def test_the_inotify_fix_is_a_shell_line_that_raises_the_limits_now_and_at_boot(tmp_path: Path) -> None:
    """Not pasted here (it would change the machine's limits): it parses as sh, and writes sysctl's format."""
    command = fixes.inotify_limits().split(AS_ROOT, 1)[1]
    assert subprocess.run(["sh", "-n", "-c", command], capture_output=True, timeout=30).returncode == 0
    written = tmp_path / "60-hls-broadcaster.conf"
    subprocess.run(["sh", "-c", command.split(" && ")[0].replace(str(fixes.INOTIFY_LIMITS), str(written))],
                   check=True, timeout=30)
    assert written.read_text() == "fs.inotify.max_user_instances=512\nfs.inotify.max_user_watches=524288\n"
    assert command.endswith(f"sysctl -p {fixes.INOTIFY_LIMITS}")


def test_an_hls_dir_one_folder_too_high_names_owncasts_hls_folder(place: Path) -> None:
    """HLS_DIR set to Owncast's data folder: the line says where the stream is; with that, check passes."""
    hls = owncast_folder(place)
    data = hls.parent
    (data / "logs").mkdir(mode=0o700)  # Owncast's own, closed to others
    (data / "owncast.db").write_bytes(b"")
    prepare_state(place)
    line, out = stops_alike(place, env_file(place, None, data), "HLS_DIR")
    assert line.endswith(f"looks like Owncast's data folder, not its HLS folder: the stream is written in "
                         f"{hls}; set HLS_DIR={hls}"), line
    assert "sysctl" not in out
    fixed = line.rsplit("set ", 1)[1]  # HLS_DIR=<the folder named>, as the line says to set it
    again = as_user(place, "check", "--env-file", str(env_file(place, None, Path(fixed.split("=", 1)[1]))))
    assert f"ok   HLS_DIR {hls}: user nobody can enter, list and read it" in again.stdout, again.stdout
    # Two folders too high (Owncast's own folder, data/hls in it): named too.
    owncast = data.parent
    (line,) = problems(owncast, watch=False)
    assert line == (f"HLS_DIR {owncast} looks like Owncast's own folder, not its HLS folder: the stream is written in "
                    f"{hls}; set HLS_DIR={hls}"), line


@ROOT_ONLY
def test_run_as_root_on_the_service_users_state_dir_is_refused_with_the_command_to_run(place: Path) -> None:
    """`sudo hls-broadcaster run` by hand on the service's STATE_DIR is refused, nothing written in it."""
    hls = owncast_folder(place)
    prepare_state(place)  # the service user's, as StateDirectory= leaves it
    settings = env_file(place, None, hls)
    done = subprocess.run([sys.executable, "-m", "broadcaster", "--env-file", str(settings), "run"],
                          capture_output=True, text=True, timeout=60, env=with_this_code(environ(place)), cwd=place)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert line == (f"hls-broadcaster: error: run as root on STATE_DIR {place / 'state'}, which is user nobody's: "
                    f"it would leave files only root may rewrite, and nobody's next start would fail on them. Run "
                    f"it as that user: sudo -u nobody {sys.executable} -m broadcaster --env-file {settings} run"), line
    assert list((place / "state").iterdir()) == []


async def test_a_state_dir_another_service_holds_fails_check_as_run_refuses_it(place: Path, seaweed: SeaweedS3) -> None:
    """A copied env file; the running service's own, checked while it runs, passes."""
    hls = owncast_folder(place)
    prepare_state(place)
    first = env_file(place, seaweed, hls)
    second = place / "second.env"
    second.write_text(first.read_text())
    second.chmod(0o644)
    argv = [sys.executable, "-m", "broadcaster", "--env-file", str(first), "run"]
    async with running_as_user(place, argv) as proc:
        # Its pid, not "?": the lock is taken a moment before the pid is written into it.
        await until(lambda: (state_dir.holder(place / "state") or "?").isdigit() or proc.returncode is not None,
                    "the first service holding STATE_DIR, its pid written", timeout=30)
        pid = state_dir.holder(place / "state")
        assert pid is not None, proc.returncode
        checked = await asyncio.to_thread(as_user, place, "check", "--env-file", str(second))
        (line,) = [x for x in checked.stdout.splitlines() if x.startswith("FAIL")]
        in_use = f"STATE_DIR {place / 'state'} is in use by another hls-broadcaster (pid {pid})"
        assert checked.returncode == 2 and line == (
            f"FAIL {in_use}; each service needs a STATE_DIR of its own (its settings are {first}'s, these "
            f"{second}'s): `run` refuses it"), checked.stdout
        ran = await asyncio.to_thread(as_user, place, "--env-file", str(second), "run")
        assert ran.returncode == 2 and in_use in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
        own = await asyncio.to_thread(as_user, place, "check", "--env-file", str(first))
        assert own.returncode == 0 and "FAIL" not in own.stdout, own.stdout


@ROOT_ONLY
async def test_run_as_root_does_not_make_state_dir_in_another_users_folder(place: Path) -> None:
    """Refused before anything is made, with the command that, run, makes it that user's."""
    hls = owncast_folder(place)
    home = place / "home" / "owncast"
    os.chown(home, NOBODY, NOBODY)
    settings = env_file(place, None, hls, STATE_DIR=str(home / "hls-state"))
    done = subprocess.run([sys.executable, "-m", "broadcaster", "--env-file", str(settings), "run"],
                          capture_output=True, text=True, timeout=60, env=with_this_code(environ(place)), cwd=place)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"hls-broadcaster: error: run as root on STATE_DIR {home / 'hls-state'}, to be made in "
                           f"{home}, which is user nobody's:"), line
    assert not (home / "hls-state").exists()
    command = line.split("sudo -u nobody ", 1)[1]
    assert command == f"{sys.executable} -m broadcaster --env-file {settings} run", line
    async with running_as_user(place, command.split()) as proc:
        await until(lambda: state_dir.holder(home / "hls-state") is not None or proc.returncode is not None,
                    "the service started as that user", timeout=30)
        assert proc.returncode is None and (home / "hls-state").stat().st_uid == NOBODY


def test_the_check_as_root_names_runs_without_an_env_file_that_is_not_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command named for the service's user names the default env file only where it is."""
    monkeypatch.chdir(tmp_path)
    program = tmp_path / "venv" / "bin" / "hls-broadcaster"
    assert fixes.this_check(Path(".env"), str(program)) == f"{program} check"
    (tmp_path / ".env").write_text("HLS_DIR=/srv/owncast/data/hls\n")
    assert fixes.this_check(Path(".env"), str(program)) == f"{program} --env-file {tmp_path / '.env'} check"
