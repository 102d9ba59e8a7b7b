"""`hls-broadcaster clip`: the operator's client of the running service's control socket."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..settings import SettingsError, raw_setting


class CommandError(Exception):
    """One line for the operator."""


def add_parser(sub: Any) -> None:
    clip = sub.add_parser(
        "clip", help="make, list or delete clips of the rewind window (talks to the running service)",
        description="Makes a clip of the running service's rewind window: a VOD playlist in the bucket over the "
                    "segments already there (no video copied). Prints the clip's public URL as the last line; a "
                    "private stream's is the service's gated path (/live/clips/ID/master.m3u8).")
    what = clip.add_mutually_exclusive_group(required=True)
    what.add_argument("--last", type=float, metavar="SECONDS", help="the last SECONDS up to the live edge")
    what.add_argument("--from", dest="start", metavar="TIME",
                      help="start time: RFC 3339 (2026-11-23T14:00:00Z) or Unix seconds; with --to")
    what.add_argument("--list", action="store_true", help="list the clips kept")
    what.add_argument("--delete", metavar="ID", help="delete a clip (its segments go once nothing lists them)")
    clip.add_argument("--to", dest="end", metavar="TIME", help="end time, as --from (default: the live edge)")
    clip.add_argument("--state-dir", type=Path, metavar="STATE_DIR",
                      help="the service's STATE_DIR (default: STATE_DIR from the environment or .env, else ./state)")


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir is not None:
        return Path(args.state_dir).expanduser()
    try:
        value = raw_setting("STATE_DIR", env_file=args.env_file)
    except SettingsError as err:
        raise CommandError(str(err)) from None
    return Path(value or "state").expanduser()


async def _ask(path: Path, method: str, route: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    if not path.exists():
        raise CommandError(f"no service is running with STATE_DIR={path.parent.parent} (no {path}): start it, "
                           "or pass --state-dir")
    import aiohttp  # here, not at the top: `hls-broadcaster --help` need not load it (see run)

    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path)),
                                         timeout=aiohttp.ClientTimeout(total=60)) as session:
            async with session.request(method, f"http://service{route}", json=body) as response:
                return response.status, await response.json(content_type=None)
    except PermissionError:
        raise CommandError(f"not allowed to connect to {path}: run as the user the service runs as") from None
    except (aiohttp.ClientError, OSError, ValueError) as err:
        raise CommandError(f"cannot talk to the service on {path}: {err}") from None


def _line(clip: dict[str, Any]) -> str:
    return f"{clip['id']}  {clip['start']} to {clip['end']}  {clip['seconds']:.0f} s  {clip['segments']} segments"


async def _run(args: argparse.Namespace) -> int:
    from .book import parse_time, socket_path

    path = socket_path(_state_dir(args))
    if args.list:
        status, data = await _ask(path, "GET", "/clips")
        for clip in data.get("clips", []):
            print(_line(clip) + "  " + clip["url"])
        return 0
    if args.delete is not None:
        status, data = await _ask(path, "DELETE", f"/clips/{args.delete}")
        if status != 200:
            raise CommandError(data.get("error", f"HTTP {status}"))
        print(f"deleted {data['id']}")
        return 0
    if args.last is not None:
        body: dict[str, Any] = {"last": args.last}
    else:
        body = {"from": parse_time(args.start)}
        if args.end is not None:
            body["to"] = parse_time(args.end)
        else:
            status, data = await _ask(path, "GET", "/clips")
            window = data.get("window") or {}
            body["to"] = window.get("end", body["from"])
    status, data = await _ask(path, "POST", "/clips", body)
    if status != 201:
        raise CommandError(data.get("error", f"HTTP {status}") if isinstance(data, dict) else f"HTTP {status}")
    print(_line(data))
    if data.get("private"):
        print(f"a private stream's clip: served by this service behind its gate (401/403 without a viewer token); "
              f"invited viewers play it on the stream's page at /?src={data['url']}")
    print(data["url"])
    return 0


def run(args: argparse.Namespace) -> int:
    from .book import ClipError  # here: `--help` need not load the bucket client (0.7 s)

    if args.end is not None and args.start is None:
        print("hls-broadcaster clip: error: --to goes with --from", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args))
    except (CommandError, ClipError) as err:
        print(f"hls-broadcaster clip: error: {err}", file=sys.stderr)
        return 1

