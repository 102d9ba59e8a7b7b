"""Settings read from flags, then the environment, then a .env file, then defaults. Every bad one is
named in one SettingsError, a line each (every mistake at once); secrets are never echoed back.
"""

from __future__ import annotations

import difflib
import io
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from .. import fixes
from ..files import closed_folder, user_name
from . import values as kinds
from .buckets import FIRST, BucketSettings, bucket_rows, extra_buckets
from .record import SETTINGS, Settings
from .rows import Setting, rows
from .values import SettingsError

_BY_NAME = {s.name: s for s in SETTINGS}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A key that names another bucket's setting: <ID>_ and the end of a bucket setting's name.
_BUCKET_KEY = re.compile(r"([A-Z][A-Z0-9]{0,15})_(" + "|".join(r.name.removeprefix("X_") for r in bucket_rows("x"))
                         + ")")


class _Sources:
    """Where a raw value is found: flag, then environment, then .env; empty counts as not set."""

    def __init__(self, flags: Mapping[str, str | None], environ: Mapping[str, str], env_file: Path | None) -> None:
        self.flags, self.environ, self.env_file = flags, environ, env_file
        self.file_values = env_file_values(env_file)

    def lookup(self, s: Setting) -> tuple[str | None, str]:
        """A setting's raw value (None: required and not set) and where it came from."""
        for raw, source in ((self.flags.get(s.name), s.flag), (self.environ.get(s.name), s.name),
                            (self.file_values.get(s.name), f"{s.name} (from {self.env_file})")):
            if raw is not None and raw != "":
                return raw, source
        return s.default, f"{s.name} (default)"

    def parse(self, settings: Iterable[Setting], needed: str, values: dict[str, Any], problems: list[str],
              make_state_dir: bool = True) -> None:
        """Each setting's value into `values` (by name), or a line naming it into `problems`."""
        for s in settings:
            raw, source = self.lookup(s)
            if raw is None:
                problems.append(f"{s.name} is not set: {needed.format(help=s.help, flag=s.flag)}")
                continue
            parse = kinds.state_dir_as_is if s.name == "STATE_DIR" and not make_state_dir else s.parse
            try:
                if _CONTROL.search(raw):  # no setting takes one; a line break would split the messages too
                    raise ValueError("contains a control character (a line break, a tab, NUL...)")
                values[s.name] = parse(raw)
            except ValueError as err:
                problems.append(f"{source}{'' if s.secret else '=' + kinds.quoted(raw)}: {err}")


def raw_setting(name: str, environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> str | None:
    """One setting's raw value, found as load_settings finds it: not parsed, the others not required."""
    return _Sources({}, os.environ if environ is None else environ, env_file).lookup(_BY_NAME[name])[0]


def load_settings(flags: Mapping[str, str | None] | None = None,
                  environ: Mapping[str, str] | None = None, env_file: Path | None = None, *,
                  make_state_dir: bool = True) -> Settings:
    """Flags, then the environment, then the .env file; make_state_dir=False: STATE_DIR is not made."""
    sources = _Sources(flags or {}, os.environ if environ is None else environ, env_file)
    values: dict[str, Any] = {}
    problems: list[str] = []
    sources.parse(SETTINGS, "{help} (set it in the environment, a .env file or {flag})", values, problems,
                  make_state_dir)
    pathways = (FIRST, *extra_buckets(values.get("PATHWAYS", ())))
    for pathway in pathways[1:]:
        sources.parse(bucket_rows(pathway), f"PATHWAYS names {pathway}, a bucket, which needs {{help}}",
                      values, problems)
    if "PATHWAYS" in values:
        problems += _unnamed_buckets(sources, pathways)
    if problems:
        raise SettingsError(*problems)
    buckets = tuple(BucketSettings(p, **{r.attr: values[r.name] for r in bucket_rows(p)}) for p in pathways)
    settings = Settings(**{r.attr: values[r.name] for r in rows(Settings)}, buckets=buckets)
    _check_together(settings)
    return settings


def _bucket_of(key: str) -> str | None:
    """The pathway whose bucket a key that is no setting names (B2_BUCKET_NAME: b2), or None."""
    if key in _BY_NAME or (bucket := _BUCKET_KEY.fullmatch(key)) is None:
        return None
    return bucket[1].lower()


def _sets_nothing(key: str, value: str | None, pathway: str) -> bool:
    """Empty, or its default (deploy/env.example's BACKUP_* lines)."""
    return value in ("", None, *(r.default for r in bucket_rows(pathway) if r.name == key))


def _unnamed_buckets(sources: _Sources, pathways: tuple[str, ...]) -> list[str]:
    """A bucket's block in the env file or flags for a pathway PATHWAYS does not name: it stops the start."""
    lines = []
    for key, value, where in [*((k, v, f" (in {sources.env_file})") for k, v in sources.file_values.items()),
                              *((k, v, "") for k, v in sources.flags.items())]:
        pathway = _bucket_of(key)
        if pathway is None or pathway in pathways or _sets_nothing(key, value, pathway):
            continue
        lines.append(f"{key}{where} sets the bucket pathway {pathway}, which PATHWAYS ({','.join(pathways)}) "
                     f"does not name: add {pathway} to PATHWAYS (e.g. PATHWAYS=bucket,{pathway}) or remove it")
    return lines


def lookalike_keys(environ: Mapping[str, str] | None = None, env_file: Path | None = None) -> list[str]:
    """A line for each key that looks like a setting's name but is not one (HLS_DIRR, hls_dir, or a
    bucket's with no such pathway): every unknown key of the env file, and of the environment those close
    to a setting's name."""
    sources = _Sources({}, os.environ if environ is None else environ, env_file)
    names = list(_BY_NAME)
    raw_pathways = sources.lookup(_BY_NAME["PATHWAYS"])[0]
    try:
        pathways = kinds.pathways(raw_pathways or FIRST)
    except ValueError:
        pathways = (FIRST,)  # a PATHWAYS that does not parse is said by load_settings
    names += [r.name for p in extra_buckets(pathways) for r in bucket_rows(p)]
    file_keys = list(sources.file_values)
    found = []
    for key, where in [*((k, f" (in {env_file})") for k in file_keys), *((k, "") for k in sources.environ)]:
        if key in names or (where == "" and key in file_keys):
            continue
        value = sources.file_values.get(key) if where else sources.environ.get(key)
        pathway = _bucket_of(key)
        if pathway is not None and _sets_nothing(key, value, pathway):
            continue
        close = difflib.get_close_matches(key.upper(), names, n=1, cutoff=0.8) if len(key) <= 40 else []
        if pathway is not None:
            found.append(f"{key}{where} is a setting of the bucket pathway {pathway}, which PATHWAYS "
                         f"({','.join(pathways)}) does not name, so it is ignored: add {pathway} to PATHWAYS "
                         f"(e.g. PATHWAYS=bucket,{pathway}) or remove it")
        elif close:
            found.append(f"{key}{where} is not a setting, so it is ignored: did you mean {close[0]}?")
        elif where:
            found.append(f"{short_key(key)}{where} is not a setting, so it is ignored")
    return found


def _check_together(s: Settings) -> None:
    problems = []
    for bucket in s.buckets:
        if not bucket.public_url and not bucket.first:
            problems.append(f"{bucket.setting('R2_PUBLIC_URL')} is not set: PATHWAYS names {bucket.pathway}, a "
                            "bucket, which needs the public base URL viewers fetch its segments from")
        if not bucket.first and (bucket.endpoint_url, bucket.bucket) == (s.first_bucket.endpoint_url,
                                                                         s.first_bucket.bucket):
            problems.append(f"{bucket.setting('AWS_BUCKET_NAME')}: the {bucket.pathway} pathway's bucket is the first "
                            "one (same S3_ENDPOINT_URL and bucket): name a bucket elsewhere, best at another provider")
    if s.segment_urls == "public" and not s.first_bucket.public_url:
        problems.append(
            "R2_PUBLIC_URL is not set: the public base URL viewers fetch segments from (custom domain or "
            "r2.dev), or set SEGMENT_URLS=presigned for a private bucket")
    if s.segment_urls == "presigned" and s.publish_playlists:
        problems.append(
            "PUBLISH_PLAYLISTS=true needs a publicly readable bucket, SEGMENT_URLS=presigned is for a private "
            "one: choose one of them"
        )
    problems += _private_problems(s)
    needed = s.segment_url_life  # an expiry inside it breaks playback
    if s.segment_urls == "presigned" and s.presign_expiry < needed:
        problems.append(
            f"PRESIGN_EXPIRY={s.presign_expiry} is shorter than a segment's life in the playlists (3 x the "
            f"window listed, max(WINDOW_SECONDS, REWIND_SECONDS), + CLEANUP_MARGIN = {needed:.0f}s): raise it"
        )
    if problems:
        raise SettingsError(*problems)


# Below this a secret may be guessed offline from one token: 32 characters of `openssl rand -hex 32`'s 64.
MIN_SECRET_CHARS = 32


def _private_problems(s: Settings) -> list[str]:
    """A private stream needs its secret, a way in, and its doors at the service (not in the bucket)."""
    if not s.private:
        return []
    problems = []
    if len(s.private_secret) < MIN_SECRET_CHARS:
        problems.append(f"PRIVATE_SECRET {'is not set' if not s.private_secret else 'is too short'}: PRIVATE=true "
                        f"needs at least {MIN_SECRET_CHARS} characters every token is derived from (e.g. the "
                        "output of `openssl rand -hex 32`)")
    if s.publish_playlists:
        problems.append("PUBLISH_PLAYLISTS=true serves playlists from the bucket, around the viewer token "
                        "PRIVATE=true asks for at the service: choose one of them")
    return problems


def env_file_values(env_file: Path | None) -> dict[str, str | None]:
    """The .env file's values; none when there is no file at the default path, else an error naming it."""
    if env_file is None:
        return {}
    try:
        if env_file.is_file():
            with env_file.open(encoding="utf-8") as stream:
                text = stream.read()
            refuse_unparsed(env_file, text)
            return dotenv_values(stream=io.StringIO(text))
        if env_file.exists():
            raise SettingsError(f"env file {env_file} is not a file")
    except PermissionError:
        closed = closed_folder(env_file)
        if closed is None:
            told = f"cannot read it (permission denied); {fixes.read_service_file(env_file)}"
        elif closed == env_file.absolute().parent:
            fix = fixes.enter_service_folder(closed)
            told = f"cannot enter {closed}, its folder (permission denied); {fix}"
        else:
            told = f"cannot enter {closed}, on the way to it (permission denied); {fixes.enter(closed)}"
        raise SettingsError(f"env file {env_file}: user {user_name()} {told}") from None
    except UnicodeDecodeError as err:
        raise SettingsError(f"env file {env_file} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise SettingsError(f"env file {env_file} cannot be read ({err.strerror or err})") from None
    if env_file != Path(".env"):
        raise SettingsError(f"env file {env_file} does not exist")
    return {}


def refuse_unparsed(env_file: Path, text: str) -> None:
    """Name each line python-dotenv would drop (its key only), and each key given twice."""
    problems = []
    first_line: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.key is not None and not binding.error:
            text = binding.original.string  # the binding's text may begin with the blank lines before it
            line = binding.original.line + text[:text.find(binding.key)].count("\n")
            if binding.key in first_line:
                problems.append(f"env file {env_file}, lines {first_line[binding.key]} and {line}: "
                                f"{short_key(binding.key)} is given twice (the last would win): keep one")
            else:
                first_line[binding.key] = line
        if binding.error:
            key = binding.original.string.split("=", 1)[0].strip() if "=" in binding.original.string else ""
            problems.append(
                f"env file {env_file}, line {binding.original.line}" + (f" ({short_key(key)})" if key else "")
                + ": not read as KEY=value: a value that starts with a quote must end with it (no quotes "
                "are needed, even with spaces: FRAME_ANCESTORS=self https://a.example)")
    if problems:
        raise SettingsError(*problems)


def short_key(key: str) -> str:
    return key if len(key) <= 40 else f"{key[:40]}... ({len(key)} characters)"
