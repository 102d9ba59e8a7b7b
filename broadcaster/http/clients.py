"""Who a request comes from (the address the per-client caps count by) and where it asked. A header names
the client only through a proxy the operator trusts (`Proxies`): its CF-Connecting-IP, else the right-most
X-Forwarded-For (or Forwarded) address that is not a trusted proxy. None: unknown, only global caps apply."""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from multidict import CIMultiDictProxy, istr

from .late import LateAnswers

CF_CONNECTING_IP = istr("CF-Connecting-IP")  # folded once
X_FORWARDED_FOR = istr("X-Forwarded-For")
FORWARDED = istr("Forwarded")
X_FORWARDED_PROTO = istr("X-Forwarded-Proto")  # the scheme the viewer used, as nginx and Caddy write it
CF_VISITOR = istr("CF-Visitor")  # Cloudflare's {"scheme":"https"}: the scheme the viewer used at its edge
# Headers a proxy writes: a request with one came through a proxy, trusted or not.
_PROXY_HEADERS = (CF_CONNECTING_IP, CF_VISITOR, X_FORWARDED_FOR, X_FORWARDED_PROTO, FORWARDED)
SCHEMES = ("http", "https")
MAX_HOPS = 16  # addresses of a forwarding header looked at, from the right: no proxy chain is longer
# A Host a playlist may name (RFC 9110 7.2): a name, IPv4, or [IPv6], and a port; nothing else is written.
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
MAX_HOST_CHARS = 260

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Proxies:
    """The proxies trusted to name the client: `networks` (FORWARDED_ALLOW_IPS), and with `cloudflare`
    (TRUST_CF_CONNECTING_IP) every loopback peer: cloudflared runs on this machine."""

    networks: tuple[Network, ...] = ()
    cloudflare: bool = False

    def trusts(self, peer: str) -> bool:
        """Whether the connection's peer is a proxy the operator named."""
        return (self.cloudflare and _loopback(peer)) or bool(self.networks and _within(self.networks, peer))

    def scheme_of(self, headers: CIMultiDictProxy[str], remote: Callable[[], str],
                  own: str) -> tuple[str | None, bool]:
        """(the scheme the viewer used, whether a proxy said it): a trusted proxy's word, the connection's
        `own` with no proxy in front; None when one is that does not say."""
        if (self.cloudflare or self.networks) and self.trusts(peer := remote()):
            visitor = headers.get(CF_VISITOR) if self.cloudflare and _loopback(peer) else None
            said = _visitor_scheme(visitor) if visitor is not None else None
            said = said or _forwarded_proto(headers)
            if said is not None:
                return said, True
        for name in _PROXY_HEADERS:  # a loop, not any(genexpr): on every manifest and master request
            if name in headers:
                return None, True
        return own, False

    def client(self, request: web.Request) -> str | None:
        """The client's address as text (not normalised), or None when unknown."""
        peer = request.remote or ""
        if not self.trusts(peer):  # a direct client (or no proxy trusted): its own address, whatever it says
            return None if _loopback(peer) else peer
        headers = request.headers
        if self.cloudflare:
            named = headers.get(CF_CONNECTING_IP)
            if named is not None:
                return named.strip()
        # The addresses the proxy chain names, oldest first: X-Forwarded-For's, else Forwarded's for=.
        forwarded_for = headers.getall(X_FORWARDED_FOR, [])
        hops = ([hop.strip() for line in forwarded_for for hop in line.split(",")] if forwarded_for
                else _forwarded(headers.getall(FORWARDED, []), "for"))
        if not hops:
            return peer  # a trusted proxy that names nobody: itself
        address: Address | None = None
        for hop in reversed(hops[-MAX_HOPS:]):
            address = _address(hop)
            if address is None:
                return None  # a proxy we trust wrote something we cannot read: the client is unknown
            if not (self.networks and _within(self.networks, str(address))):
                return str(address)
        # Every hop a proxy of ours: the first one asked for itself (beyond MAX_HOPS: unknown).
        return str(address) if len(hops) <= MAX_HOPS else None


@dataclass(frozen=True, slots=True)
class Here:
    """Where a request found its answer: `scheme://host/folder/` (or `//host/folder/`); `shared`: a cache
    may keep an answer naming it for every viewer (not an `http://` a proxy reported: mixed content)."""

    base: str
    shared: bool = True


def request_here(request: web.Request, proxies: Proxies) -> Here | None:
    """Where `request` asked, for absolute URIs; None when the Host is not a plain host."""
    return here_at(request.headers.get(hdrs.HOST, ""),
                   lambda: proxies.scheme_of(request.headers, lambda: request.remote or "", request.scheme),
                   request.path.rpartition("/")[0])


def here_at(host: str, scheme: Callable[[], tuple[str | None, bool]], folder: str) -> Here | None:
    """request_here from a request's parts (the scheme asked only for a plain host)."""
    if not _plain_host(host):
        return None
    said, proxied = scheme()
    return _here(said, host, folder, proxied)


@functools.lru_cache(maxsize=256)  # the same few places, request after request (each request made one)
def _here(scheme: str | None, host: str, folder: str, proxied: bool) -> Here:
    if scheme is None:
        return Here(f"//{host}{folder}/")
    return Here(f"{scheme}://{host}{folder}/", shared=not (proxied and scheme == "http"))


@functools.lru_cache(maxsize=256)  # the same few hosts, request after request
def _plain_host(host: str) -> bool:
    return len(host) <= MAX_HOST_CHARS and _HOST.fullmatch(host) is not None


@functools.lru_cache(maxsize=16)  # Cloudflare writes one of two values
def _visitor_scheme(text: str) -> str | None:
    """The scheme in Cloudflare's CF-Visitor (`{"scheme":"https"}`), or None."""
    if len(text) > 100:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    scheme = value.get("scheme") if isinstance(value, dict) else None
    return scheme.lower() if isinstance(scheme, str) and scheme.lower() in SCHEMES else None


def _forwarded_proto(headers: CIMultiDictProxy[str]) -> str | None:
    """X-Forwarded-Proto's last value (the nearest proxy's), else Forwarded's last proto=, if a scheme."""
    values = headers.getall(X_FORWARDED_PROTO, [])
    if values:
        last = values[-1].rsplit(",", 1)[-1].strip().lower()
        return last if last in SCHEMES else None
    protos = _forwarded(headers.getall(FORWARDED, []), "proto")
    return protos[-1].lower() if protos and protos[-1].lower() in SCHEMES else None


def client_address(request: web.Request, proxies: Proxies) -> str | None:
    """The key the per-client caps count by, or None when unknown; an IPv6 client counts by its /64."""
    address = _address(proxies.client(request) or "")
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _forwarded(lines: list[str], name: str) -> list[str]:
    """RFC 7239 Forwarded's `name=` values (`for`, `proto`), oldest first, unquoted."""
    return [value.strip().strip('"') for line in lines for element in line.split(",")
            for pair in element.split(";") for key, _, value in (pair.strip().partition("="),)
            if key.lower() == name]


@functools.lru_cache(maxsize=4096)  # the same few proxies and clients, request after request
def _address(text: str) -> Address | None:
    """An address as a forwarding header writes it (`[v6]:port`, `v4:port`; IPv4-mapped as IPv4), or None."""
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)
def _within(networks: tuple[Network, ...], text: str) -> bool:
    address = _address(text)
    return address is not None and any(address in network for network in networks)


def _loopback(peer: str) -> bool:
    if peer.startswith("127."):
        return True
    address = _address(peer) if ":" in peer else None
    return address is not None and address.is_loopback


@dataclass(frozen=True)
class Clients:
    """Who may name the playlist routes' clients, and what one's late requests may cost (every pathway's)."""

    proxies: Proxies = Proxies()
    late: LateAnswers = field(default_factory=LateAnswers)
