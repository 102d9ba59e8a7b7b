"""The value of each setting, parsed: ValueError says what is expected, on the setting's line (load.py)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import fixes
from .. import state_dir as judged
from ..numbers import whole_number


class SettingsError(ValueError):
    """Settings are missing or invalid: one line per problem, each naming its setting or file."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("expected a URL without ?query or #fragment")
    if "@" in parts.netloc:
        raise ValueError("expected a URL without user:password@ (it is shown to viewers and in the log)")
    return value.rstrip("/")


_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")


# The most characters of a refused value an error line quotes: a 2 MB STREAM_TITLE is not echoed whole.
SHOWN_CHARS = 80


def shown(value: str) -> str:
    return _USERINFO.sub("***@", value)


def quoted(value: str) -> str:
    """A refused value as an error line quotes it: repr'd, without user:password@, at most SHOWN_CHARS."""
    text = shown(value)
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}... ({len(value)} characters)"


# A DNS label: at most 63 letters, digits or '-', not at either end.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def host(value: str) -> str:
    """An address to listen on: an IP address or a host name (labels of at most 63 characters)."""
    value = value.strip()
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError("expected an IP address (127.0.0.1, ::1, 0.0.0.0) or a host name") from None
        return value
    return value.strip("[]")


def bucket_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value):
        raise ValueError("expected 3-63 lowercase letters, digits, '.' or '-'")
    return value


def key_prefix(value: str) -> str:
    value = value.strip("/")
    if not re.fullmatch(r"[A-Za-z0-9._/-]*", value) or ".." in value or "//" in value:
        raise ValueError("expected letters, digits, '.', '_', '-' and single '/' (no '..')")
    return value


def whole(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        text = value.strip()
        n = whole_number(text.removeprefix("-"))  # int() would also take "٣" and "３" for 3
        if n is None:
            raise ValueError("expected a whole number")
        n = -n if text.startswith("-") else n
        if not low <= n <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return n

    return parse


def _number(value: str, fits: Callable[[float], bool], expected: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise ValueError("expected a number") from None
    if not fits(n):  # NaN fits nothing
        raise ValueError(expected)
    return n


def positive(value: str) -> float:
    return _number(value, lambda n: 0 < n < float("inf"), "expected a number above 0")


def nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _expanded(value: str) -> Path:
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~nosuchuser
        raise ValueError(f"no such user for {value.split('/', 1)[0]}") from None


def optional_path(value: str) -> Path | None:
    return _expanded(value.strip()) if value.strip() else None


def existing_dir(value: str) -> Path:
    path = _expanded(value)
    try:
        if not path.exists():
            raise ValueError("no such folder")
        if not path.is_dir():
            raise ValueError("not a folder")
        return path.resolve()
    except PermissionError:
        raise ValueError(fixes.denied(path)) from None
    except OSError as err:
        raise ValueError(f"cannot reach it ({err.strerror or err})") from None


def state_dir(value: str) -> Path:
    """STATE_DIR as `run` takes it: judged, then made where missing."""
    path = _expanded(value)
    if (why := judged.refusal(path) or judged.make(path)) is not None:
        raise ValueError(why)
    return path.resolve()


def state_dir_as_is(value: str) -> Path:
    """STATE_DIR as `check` and `run` load it: a folder there refused for what `run` refuses; nothing made."""
    path = _expanded(value)
    if not judged.missing(path) and (why := judged.refusal(path)) is not None:
        raise ValueError(why)
    return path.resolve()


def bounded(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        n = positive(value)
        if not low <= n <= high:
            raise ValueError(f"expected a number of seconds from {low:g} to {high:g}")
        return n

    return parse


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def non_negative(value: str) -> float:
    return _number(value, lambda n: 0 <= n < float("inf"), "expected a number of seconds, 0 or more")


MAX_P2P_TRACKERS = 8  # each viewer holds a WebSocket to every tracker listed


def trackers(value: str) -> tuple[str, ...]:
    """'' (P2P off) or comma-separated ws:// / wss:// WebTorrent tracker URLs."""
    urls = tuple(part.strip() for part in value.split(",") if part.strip())
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"expected comma-separated ws:// or wss:// tracker URLs, got {quoted(url)}")
        if parts.fragment or any(c.isspace() or c in "\"\\" for c in url):
            raise ValueError(f"expected a tracker URL without #fragment, spaces or quotes, got {quoted(url)}")
    if len(urls) > MAX_P2P_TRACKERS:
        raise ValueError(f"expected at most {MAX_P2P_TRACKERS} tracker URLs")
    return tuple(dict.fromkeys(urls))


MAX_STUN_SERVERS = 4
# RFC 7064: stun:host[:port] or stuns:host[:port] (the scheme in any case); an IPv6 host in brackets.
_STUN_URL = re.compile(rf"(?i:stuns?):(\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(:[0-9]{{1,5}})?")


def stun_servers(value: str) -> tuple[str, ...]:
    """'none' or comma-separated stun: URLs."""
    if value.strip().lower() == "none":
        return ()
    urls = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    if not urls:  # blanks or commas alone: say so rather than quietly meaning 'none'
        raise ValueError("expected comma-separated stun:HOST[:PORT] URLs, or 'none'")
    for url in urls:
        match = _STUN_URL.fullmatch(url)
        if match is None or not _port_ok(match[2] and match[2][1:]):
            raise ValueError(f"expected comma-separated stun:HOST[:PORT] URLs, or 'none', got {quoted(url)}")
    if len(urls) > MAX_STUN_SERVERS:
        raise ValueError(f"expected at most {MAX_STUN_SERVERS} STUN URLs")
    return urls


@dataclass(frozen=True)
class Address:
    """Where a listener of its own binds (METRICS_LISTEN=HOST:PORT); an IPv6 host without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _port_ok(port: str | None) -> bool:
    """No port given, or one from 1 to 65535."""
    return port is None or 0 < int(port) < 65536


def listen(value: str) -> str | Address:
    """'' (with the playlists), 'off', or HOST:PORT for a listener of its own."""
    value = value.strip()
    if value.lower() in ("", "off"):
        return value.lower()
    name, sep, port = value.rpartition(":")
    number = whole_number(port, 5)
    if not sep or not name or number is None or not 0 < number < 65536:
        raise ValueError("expected HOST:PORT (e.g. 127.0.0.1:9464), 'off', or empty")
    try:
        return Address(host(name), number)
    except ValueError:
        raise ValueError("expected HOST:PORT with an IP address or host name (e.g. 127.0.0.1:9464)") from None


# A CSP frame-ancestors source: a scheme and host (a leading *. for any subdomain of a registered name:
# two labels at least, so not *.com), an optional port (1-65535).
_FRAME_SOURCE = re.compile(
    rf"https?://(?P<wild>\*\.)?(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?")
MAX_FRAME_ANCESTORS = 16


def _public_suffix(host: str) -> bool:
    """Whether `host` is a public suffix (co.uk, github.io: anyone may have a site under it)."""
    from publicsuffixlist import PublicSuffixList  # only for a wildcard source: it reads its list (~0.1 s)

    return bool(PublicSuffixList().is_public(host.lower()))


def frame_ancestors(value: str) -> str:
    """The sites that may frame the viewer page, as a CSP frame-ancestors value: 'self', 'none', '*' or
    space- or comma-separated origins (https://example.com, https://*.example.com, http://host:8080)."""
    if ";" in value:  # a whole policy pasted in: ';' ends a directive, which only the service writes
        raise ValueError("expected only the sources, space-separated, without ';' (which ends a CSP "
                         "directive) or 'frame-ancestors': e.g. FRAME_ANCESTORS=self https://example.com")
    words = [w for w in re.split(r"[\s,]+", value.strip()) if w]
    if words and words[0].lower() == "frame-ancestors":
        raise ValueError("expected only the sources, without the directive's name 'frame-ancestors': e.g. "
                         "FRAME_ANCESTORS=self https://example.com")
    if not words:
        raise ValueError("expected 'self', 'none', '*' or space-separated origins like https://example.com")
    if "*" in words or "'none'" in words or "none" in words:
        if len(words) > 1:
            raise ValueError("'*' and 'none' stand alone")
        return "*" if words == ["*"] else "'none'"
    sources = []
    for word in words:
        if word.lower() in ("self", "'self'"):
            sources.append("'self'")
        elif (m := _FRAME_SOURCE.fullmatch(word)) is None:
            raise ValueError("expected 'self' or an origin like https://example.com (no path), got "
                             f"{quoted(word)}")
        elif not _port_ok(m["port"]):
            raise ValueError(f"{quoted(word)}: a port is 1 to 65535")
        elif m["wild"] and ("." not in m["host"] or _public_suffix(m["host"])):
            raise ValueError(f"{quoted(word)} would let every site under {m['host']} (a public suffix: "
                             "anyone can register a site there) frame the page: name the site "
                             "(https://*.example.com)")
        else:
            sources.append(word.lower())
    if len(sources) > MAX_FRAME_ANCESTORS:
        raise ValueError(f"expected at most {MAX_FRAME_ANCESTORS} sources")
    return " ".join(dict.fromkeys(sources))


_ORIGIN = re.compile(rf"https?://{_LABEL}(?:\.{_LABEL})*(?::(?P<port>[0-9]{{1,5}}))?")


def viewer_sources(value: str) -> tuple[str, ...]:
    """Other sites whose playlists the viewer page's ?src= may play: origins, '*' for any, or empty."""
    words = tuple(dict.fromkeys(w.lower().rstrip("/") for w in re.split(r"[\s,]+", value.strip()) if w))
    if words == ("*",):
        return words
    for word in words:
        m = _ORIGIN.fullmatch(word)
        if m is None or not _port_ok(m["port"]):
            raise ValueError(f"expected '*' or origins like https://other.example (no path), got "
                             f"{quoted(word)}")
    if len(words) > MAX_FRAME_ANCESTORS:
        raise ValueError(f"expected at most {MAX_FRAME_ANCESTORS} origins")
    return words


MAX_PATHWAYS = 6
# A pathway ID that names settings too (<ID>_BUCKET_NAME): a letter, then letters and digits (7.1 allows
# more, but each must make an environment variable's name).
_PATHWAY = re.compile(r"[a-z][a-z0-9]{0,15}")


def pathways(value: str) -> tuple[str, ...]:
    """The delivery pathways offered, in order: `bucket` first, then `vm` and other buckets' IDs."""
    names = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    if (not names or names[0] != "bucket" or len(set(names)) != len(names)
            or not all(_PATHWAY.fullmatch(n) for n in names) or len(names) > MAX_PATHWAYS):
        raise ValueError("expected 'bucket' alone (the default: no second pathway), or 'bucket' then other "
                         "pathways: 'vm' (the VM serves segments itself while the bucket fails), or a second "
                         "bucket's ID ('backup', set with BACKUP_*), e.g. 'bucket,backup' or 'bucket,backup,vm'; "
                         f"IDs of a lowercase letter and letters or digits, at most {MAX_PATHWAYS}")
    return names


def optional(parse: Callable[[str], str]) -> Callable[[str], str]:
    """A setting that may be left empty (needed only with another one: _check_together says which)."""
    return lambda value: parse(value) if value.strip() else ""


def megabits(value: str) -> float:
    n = positive(value)
    if n > 100_000:
        raise ValueError("expected megabits per second, above 0 and at most 100000")
    return n
MAX_TITLE = 200  # characters of STREAM_TITLE; STREAM_DESCRIPTION takes MAX_DESCRIPTION
MAX_DESCRIPTION = 1000


def page_text(most: int) -> Callable[[str], str]:
    """Words the viewer page shows: one line of at most `most` characters, no control characters."""

    def parse(value: str) -> str:
        text = value.strip()
        if len(text) > most:
            raise ValueError(f"expected at most {most} characters, got {len(text)}")
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ValueError("expected one line of text without control characters")
        return text

    return parse


MAX_PROXIES = 16


def networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses or CIDR networks, comma- or space-separated ('*' refused: a proxy anyone may be is none)."""
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for word in text.replace(",", " ").split():
        if word == "*":
            raise ValueError("'*' would let any client name any address: name the proxies (addresses or "
                             "CIDRs like 10.0.0.0/8)")
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise ValueError("expected addresses or CIDRs like 127.0.0.1 or 10.0.0.0/8, got "
                             f"{quoted(word)}") from None
    if len(networks) > MAX_PROXIES:
        raise ValueError(f"expected at most {MAX_PROXIES} addresses or networks")
    return tuple(dict.fromkeys(networks))


def choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value.lower()

    return parse
