"""Command line: `hls-broadcaster run` (and `python -m broadcaster run`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, fixes, state_dir
from .access import command as invites
from .bucket import edge_rules
from .bucket.url_mistakes import url_mistakes
from .clips import command as clips
from .settings import SETTINGS, Settings, SettingsError, load_settings, lookalike_keys

log = logging.getLogger("broadcaster")


def _settings_help() -> str:
    width = max(len(s.name) for s in SETTINGS)
    rows = [
        f"  {s.name:<{width}}  {s.help}" + (" (required)" if s.default is None else f" [default: {s.default}]")
        for s in SETTINGS
    ]
    return ("settings (environment variable, .env line, or the flag of the same name, e.g. --hls-dir;\n"
            "flags win over the environment, which wins over the .env file):\n" + "\n".join(rows))


def _add_env_file(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """--env-file before the command or after it: a command's own copy (SUPPRESS) never undoes the first."""
    parser.add_argument("--env-file", type=Path, default=Path(".env") if top else argparse.SUPPRESS,
                        help="settings file (default: ./.env)")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    _add_env_file(parser)
    group = parser.add_argument_group("settings (each also read from the environment variable of its name)")
    for s in SETTINGS:
        default = "required" if s.default is None else f"default {s.default}"
        group.add_argument(s.flag, dest=s.name, metavar=s.name, help=f"{s.help} ({default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hls-broadcaster",
        description="Moves Owncast's live HLS stream onto Cloudflare R2 and serves playlists pointing at it.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_env_file(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_setting_flags(sub.add_parser("run", help="run the service"))
    check = sub.add_parser("check", help="validate the settings and prove the bucket works, one line per check")
    _add_setting_flags(check)
    check.add_argument("--as", dest="as_user", metavar="USER",
                       help="run the checks as USER, the service's (run by root: the env file, Owncast's "
                            "folder, STATE_DIR and the port are judged as USER may; without it root's check "
                            "fails, since root reads every folder)")
    check.add_argument("--r2-dev", metavar="URL", help="with PRIVATE=true: the bucket's r2.dev URL "
                       "(https://pub-<id>.r2.dev), tried as a door around the edge (it must not serve segments)")
    demo = sub.add_parser("demo", help="run everything locally: S3 server, synthetic stream, service, viewer")
    demo.add_argument("--host", default="127.0.0.1", help="address for the service and viewer (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=3000, help="port for the service and viewer (default 3000)")
    demo.add_argument("--segment-seconds", type=int, default=2, choices=range(1, 7), metavar="1-6",
                      help="length of the synthetic stream's segments (default 2)")
    demo.add_argument("--latency-level", type=int, choices=range(0, 5), metavar="0-4",
                      help="Owncast's latency level instead: 1-5 s segments (overrides --segment-seconds)")
    demo.add_argument("--passthrough", action="store_true",
                      help="copy the first variant's video like Owncast's passthrough (irregular segments)")
    demo.add_argument("--p2p", action="store_true",
                      help="viewers share segments peer to peer through a local tracker (needs Node.js)")
    for commands in (clips, invites, edge_rules):
        commands.add_parser(sub)
    for command in ("clip", "invite", "edge-rules"):  # each reads settings from the env file too
        _add_env_file(sub.choices[command])
    return parser


class _Redact(logging.Filter):
    """Last line of defence: a secret that slips into a log message is masked."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self._secrets):
            for s in self._secrets:
                message = message.replace(s, "***")
            record.msg, record.args = message, None
        return True


def setup_logging(level: str, secrets: list[str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_Redact(secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # botocore at debug logs request headers; keep it quiet whatever LOG_LEVEL says.
    for noisy in ("botocore", "aiobotocore", "urllib3", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run(args: argparse.Namespace) -> int:
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    # STATE_DIR made only once a run as root is known not to leave files the service's user cannot rewrite.
    settings: Settings = load_settings(flags, env_file=args.env_file, make_state_dir=False)
    if problems := url_mistakes(settings):  # what `check` fails on too, told before anything starts
        raise SettingsError(*problems)
    if (refused := state_dir.root_refusal(settings.state_dir, args.env_file)) is not None:
        raise SettingsError(refused)
    if (refused := state_dir.refusal(settings.state_dir) or state_dir.make(settings.state_dir)) is not None:
        raise SettingsError(f"STATE_DIR {settings.state_dir}: {refused}")
    # Imported once the settings hold (1.2 s of aiohttp and botocore): a setting's mistake is told at once.
    from .service import run
    from .service.startup import SetupError, StartupError

    setup_logging(settings.log_level, settings.secrets())
    for line in lookalike_keys(env_file=args.env_file):
        log.warning("%s", line)
    log.info("hls-broadcaster %s starting: %r", __version__, settings)
    if os.geteuid() == 0:  # allowed (STATE_DIR is root's), said once: the service needs no privilege
        log.warning("running as root: the service needs no privilege of root's; run it as a user of its own "
                    "(deploy/hls-broadcaster.service's User=), which Owncast's files are granted to")
    try:
        return asyncio.run(run(settings))
    except SetupError as err:
        for problem in err.problems:
            print(f"hls-broadcaster: error: {problem}", file=sys.stderr)
        return 2
    except StartupError as err:
        print(f"hls-broadcaster: error: {err}", file=sys.stderr)
        return 1


def _check(args: argparse.Namespace) -> int:
    """Every check, a line each, the settings first; exit 0 when none failed, 2 when one did."""
    if args.as_user is not None and (refused := _become(args.as_user, fixes.this_check(args.env_file))) is not None:
        print(f"hls-broadcaster: error: {refused}", file=sys.stderr)
        return 2
    as_root = fixes.this_check(args.env_file) if os.geteuid() == 0 and args.as_user is None else None
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    lookalikes = lookalike_keys(env_file=args.env_file)  # an unreadable file: SettingsError, main's line
    try:
        settings = load_settings(flags, env_file=args.env_file, make_state_dir=False)
    except SettingsError as err:
        for line in lookalikes:
            print(f"warn {line}")
        for problem in err.problems:
            print(f"FAIL {problem}")
        print(f"{len(err.problems)} setting(s) to fix (named above); the other checks run once they are set.")
        return 2
    from .preflight import run_checks

    setup_logging("error", settings.secrets())
    passed = asyncio.run(run_checks(settings, print_line=print, warnings=lookalikes, as_root=as_root,
                                    env_file=args.env_file, r2_dev=args.r2_dev))
    return 0 if passed else 2


def _become(name: str, command: str) -> str | None:
    """This process as the user `name` from now on, as `sudo -u` makes it; else the line saying why not."""
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        return f"--as {name}: no such user"
    if user.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        return f"--as {name}: only root takes another user's place (sudo {command} --as {name})"
    os.initgroups(name, user.pw_gid)
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)
    os.environ["HOME"] = user.pw_dir  # as sudo -u sets it: root's is not this user's to read
    return None


def _demo(args: argparse.Namespace) -> int:
    from .demo.run import DemoError, run_demo
    from .service.startup import StartupError

    setup_logging("warning")
    try:
        return asyncio.run(run_demo(
            port=args.port, host=args.host, segment_seconds=args.segment_seconds,
            latency_level=args.latency_level, passthrough=args.passthrough, p2p=args.p2p))
    except (DemoError, StartupError) as err:
        grafana = " (Grafana's default port is 3000 too)" if args.port == 3000 else ""
        hint = f"{grafana}; --port picks another (0: any free one)" if "(HOST/PORT)" in str(err) else ""
        print(f"hls-broadcaster demo: error: {err}{hint}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    commands = {"run": _run, "check": _check, "demo": _demo, "clip": clips.run, "invite": invites.run,
                "edge-rules": edge_rules.run}
    try:
        return commands[args.command](args)
    except SettingsError as err:
        for problem in err.problems:
            print(f"hls-broadcaster: error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
