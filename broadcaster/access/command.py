"""`hls-broadcaster invite add|revoke|list`: the named invites of a private stream, in its invites file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..settings import SettingsError, raw_setting
from ..settings.load import MIN_SECRET_CHARS
from .invites import DAY, Invite, InviteError, InviteLinks, read_invites, shown_date, write_invites
from .tokens import NAME, VIEWER, derive

MAX_DAYS = 3650


def add_parser(sub: Any) -> None:
    invite = sub.add_parser(
        "invite", help="add, revoke or list the named invite links of a private stream (PRIVATE=true)",
        description="Named invite links for a private stream. `add` prints the link to send; a revoked or "
                    "expired invite lets its viewers in until their token runs out (PRIVATE_TOKEN_LIFE).")
    actions = invite.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add (or renew) an invite and print its link")
    add.add_argument("name", help="the invite's name (letters, digits, - and _; at most 40)")
    add.add_argument("--days", type=float, default=7.0, help="days it lets viewers in (default 7)")
    add.add_argument("--page", default="", metavar="URL",
                     help="the viewer page's URL the link opens (e.g. https://live.example.com/)")
    revoke = actions.add_parser("revoke", help="revoke an invite: its link lets no one in from now on")
    revoke.add_argument("name")
    actions.add_parser("list", help="list the invites, their expiry and whether revoked")
    actions.add_parser("tracker-key", help="print the P2P tracker's TRACKER_VIEWER_KEY line (derived from "
                                           "PRIVATE_SECRET): it then lets only viewers with a token announce")


def _where(args: argparse.Namespace) -> tuple[str, Path]:
    try:
        secret = raw_setting("PRIVATE_SECRET", env_file=args.env_file) or ""
        invites = raw_setting("PRIVATE_INVITES", env_file=args.env_file)
        state = raw_setting("STATE_DIR", env_file=args.env_file) or "state"
    except SettingsError as err:
        raise InviteError(str(err)) from None
    if len(secret.strip()) < MIN_SECRET_CHARS:
        raise InviteError(f"PRIVATE_SECRET {'is not set' if not secret.strip() else 'is too short'}: invite links "
                          f"are signed with it (at least {MIN_SECRET_CHARS} characters, as the service needs)")
    path = Path(invites).expanduser() if invites else Path(state).expanduser() / "invites.json"
    return secret.strip(), path


def _line(invite: Invite, now: float) -> str:
    state = invite.refusal(now) or f"valid until {shown_date(invite.expires)}"
    return f"{invite.name}  {state.removeprefix('this invite ')}"


def _act(args: argparse.Namespace, now: float) -> None:
    secret, path = _where(args)
    if args.action == "tracker-key":  # the viewer key, as the tracker checks tokens with it
        print(f"TRACKER_VIEWER_KEY={derive(secret, VIEWER).hex()}")
        return
    invites = read_invites(path)
    if args.action == "list":
        for invite in sorted(invites.values(), key=lambda i: i.name):
            print(_line(invite, now))
        return
    if NAME.fullmatch(args.name) is None:
        raise InviteError(f"invite name {args.name[:60]!r}: letters, digits, - and _ only (not - first), at most 40")
    if args.action == "revoke":
        if args.name not in invites:
            raise InviteError(f"no invite named {args.name} in {path}")
        invites[args.name] = Invite(args.name, invites[args.name].expires, revoked=True)
        write_invites(path, invites)
        print(f"revoked {args.name}: its viewers are refused once their token runs out (PRIVATE_TOKEN_LIFE)")
        return
    if not 0 < args.days <= MAX_DAYS:
        raise InviteError(f"--days {args.days:g}: between 0 and {MAX_DAYS}")
    invites[args.name] = invite = Invite(args.name, int(now + args.days * DAY))
    write_invites(path, invites)
    print(_line(invite, now))
    page = (args.page or "https://YOUR-PAGE").rstrip("/")
    print(f"{page}/?invite={InviteLinks(secret).token(args.name)}")


def run(args: argparse.Namespace) -> int:
    try:
        _act(args, time.time())
    except InviteError as err:
        print(f"hls-broadcaster invite: error: {err}", file=sys.stderr)
        return 2
    return 0
