"""The .env file's values, or a SettingsError naming the file and each line python-dotenv would mistake."""

from __future__ import annotations

import io
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from .. import fixes
from ..files import closed_folder, user_name
from .values import SettingsError


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
