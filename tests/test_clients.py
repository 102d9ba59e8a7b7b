"""broadcaster/http/clients.py: which address a request counts under, behind the tunnel, behind a reverse
proxy the operator names (FORWARDED_ALLOW_IPS), and when a client names itself."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from broadcaster.http.clients import Here, Proxies, client_address, request_here
from broadcaster.settings import SettingsError, load_settings
from tests.support.settings_env import env

NGINX = ipaddress.ip_network("10.0.0.5/32")
LAN = ipaddress.ip_network("10.0.0.0/24")


class _Peer:
    def __init__(self, host: str) -> None:
        self._host = host

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self._host, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def here(proxies: Proxies, peer: str, *headers: tuple[str, str], path: str = "/live/master.m3u8",
         host: str = "live.example.com") -> Here | None:
    request = make_mocked_request("GET", path, headers=CIMultiDict([("Host", host), *headers]),
                                  transport=_Peer(peer))
    return request_here(request, proxies)


def client(proxies: Proxies, peer: str, *headers: tuple[str, str]) -> str | None:
    request = make_mocked_request("GET", "/", headers=CIMultiDict(headers), transport=_Peer(peer))
    return proxies.client(request)


def test_without_a_named_proxy_every_header_is_the_clients_own_word() -> None:
    none = Proxies()
    assert client(none, "198.51.100.7") == "198.51.100.7"
    assert client(none, "198.51.100.7", ("X-Forwarded-For", "203.0.113.9")) == "198.51.100.7"
    assert client(none, "198.51.100.7", ("Forwarded", "for=203.0.113.9")) == "198.51.100.7"
    assert client(none, "198.51.100.7", ("CF-Connecting-IP", "203.0.113.9")) == "198.51.100.7"
    # A loopback peer (the tunnel, a local proxy) speaks for everyone: unknown, not one client.
    assert client(none, "127.0.0.1", ("X-Forwarded-For", "203.0.113.9")) is None
    assert client(none, "::1") is None and client(none, "::ffff:127.0.0.1") is None


def test_a_spoofed_header_from_a_peer_that_is_not_a_named_proxy_is_ignored() -> None:
    proxies = Proxies((NGINX,))
    for name, value in (("X-Forwarded-For", "203.0.113.9"), ("Forwarded", 'for="203.0.113.9"'),
                        ("CF-Connecting-IP", "203.0.113.9"), ("X-Forwarded-For", "10.0.0.5, 203.0.113.9")):
        assert client(proxies, "198.51.100.7", (name, value)) == "198.51.100.7", (name, value)
    # CF-Connecting-IP is believed only with TRUST_CF_CONNECTING_IP, and from the tunnel on this machine.
    assert client(Proxies(cloudflare=True), "198.51.100.7", ("CF-Connecting-IP", "203.0.113.9")) == "198.51.100.7"
    assert client(Proxies((NGINX,)), "10.0.0.5", ("CF-Connecting-IP", "203.0.113.9")) == "10.0.0.5"


def test_behind_a_named_proxy_the_client_is_the_right_most_address_not_a_proxy() -> None:
    proxies = Proxies((LAN,))
    xff = "X-Forwarded-For"
    assert client(proxies, "10.0.0.5", (xff, "203.0.113.9")) == "203.0.113.9"
    # What the client wrote itself is left of what our proxy appended: never believed.
    assert client(proxies, "10.0.0.5", (xff, "1.2.3.4, 5.6.7.8, 203.0.113.9")) == "203.0.113.9"
    # Proxies of ours in a chain are skipped (a CDN-side nginx, then a local one).
    assert client(proxies, "10.0.0.5", (xff, "1.2.3.4, 203.0.113.9, 10.0.0.7, 10.0.0.6")) == "203.0.113.9"
    assert client(proxies, "10.0.0.5", (xff, "1.2.3.4"), (xff, "203.0.113.9")) == "203.0.113.9"  # two lines
    assert client(proxies, "10.0.0.5", (xff, " [2001:db8::1]:4711 ")) == "2001:db8::1"
    assert client(proxies, "10.0.0.5", (xff, "203.0.113.9:51000")) == "203.0.113.9"
    assert client(proxies, "10.0.0.5", (xff, "::ffff:203.0.113.9")) == "203.0.113.9"
    # RFC 7239 Forwarded when there is no X-Forwarded-For.
    assert client(proxies, "10.0.0.5", ("Forwarded", 'for=1.2.3.4, for="[2001:db8:cafe::17]:4711";proto=https'),
                  ) == "2001:db8:cafe::17"
    assert client(proxies, "10.0.0.5", ("Forwarded", "For=203.0.113.9;by=10.0.0.5")) == "203.0.113.9"
    # A proxy of ours naming nobody is the client; one whose header we cannot read: unknown.
    assert client(proxies, "10.0.0.5") == "10.0.0.5"
    assert client(proxies, "10.0.0.5", (xff, "1.2.3.4, unknown")) is None
    assert client(proxies, "10.0.0.5", ("Forwarded", "for=_hidden")) is None
    assert client(proxies, "10.0.0.5", (xff, "10.0.0.9, 10.0.0.8")) == "10.0.0.9"  # all ours: the first
    assert client(proxies, "10.0.0.5", (xff, ", ".join(["10.0.0.9"] * 40))) is None  # too long to judge


def test_the_tunnel_names_the_client_in_cf_connecting_ip_from_loopback() -> None:
    tunnel = Proxies(cloudflare=True)
    assert client(tunnel, "127.0.0.1", ("CF-Connecting-IP", " 203.0.113.9 ")) == "203.0.113.9"
    assert client(tunnel, "::1", ("CF-Connecting-IP", "2001:db8::9")) == "2001:db8::9"
    assert client(tunnel, "127.0.0.1") == "127.0.0.1"  # trusted: the tunnel itself, when it sends no header
    # Without it, X-Forwarded-For as cloudflared passes it on (Cloudflare's edge appends the client).
    assert client(tunnel, "127.0.0.1", ("X-Forwarded-For", "1.2.3.4, 203.0.113.9")) == "203.0.113.9"
    assert client(tunnel, "127.0.0.1", ("X-Forwarded-For", "203.0.113.9"), ("CF-Connecting-IP", "192.0.2.1")
                  ) == "192.0.2.1"


def test_the_key_is_the_address_or_an_ipv6_clients_64() -> None:
    proxies = Proxies((LAN,))

    def key(value: str) -> str | None:
        return client_address(make_mocked_request("GET", "/", headers={"X-Forwarded-For": value},
                                                  transport=_Peer("10.0.0.5")), proxies)

    assert key("203.0.113.9") == "203.0.113.9"
    assert key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert key("junk") is None


@pytest.mark.parametrize(("given", "networks"), [
    ("", ()), ("127.0.0.1", ("127.0.0.1/32",)), ("10.0.0.0/8, fd00::/8 127.0.0.1", ("10.0.0.0/8", "fd00::/8",
                                                                                      "127.0.0.1/32")),
    ("10.1.2.3/8", ("10.0.0.0/8",)),
])
def test_forwarded_allow_ips_setting(tmp_path: Path, given: str, networks: tuple[str, ...]) -> None:
    settings = load_settings(environ=env(tmp_path, FORWARDED_ALLOW_IPS=given))
    assert tuple(map(str, settings.forwarded_allow_ips)) == networks


@pytest.mark.parametrize("bad", ["*", "nginx", "10.0.0.0/33", "10.0.0.1-10.0.0.9", ",".join(["10.0.0.1"] * 1)
                                 + "," + ",".join(f"10.0.{i}.0/24" for i in range(20))])
def test_a_bad_forwarded_allow_ips_is_one_line_naming_it(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SettingsError, match=r"^FORWARDED_ALLOW_IPS=") as raised:
        load_settings(environ=env(tmp_path, FORWARDED_ALLOW_IPS=bad))
    assert "\n" not in str(raised.value)


# -- where a viewer asked: the scheme and host the multivariant playlist and steering manifest name -----

CF_HTTPS = ("CF-Visitor", '{"scheme":"https"}')


def test_the_tunnel_says_the_viewers_scheme_in_cf_visitor() -> None:
    """cloudflared passes the edge's headers on (CF-Visitor, X-Forwarded-Proto, CF-Connecting-IP): the
    viewer used https at Cloudflare's edge, the tunnel reached the service over plain HTTP."""
    tunnel = Proxies(cloudflare=True)
    assert here(tunnel, "127.0.0.1", CF_HTTPS, ("X-Forwarded-Proto", "https")) == Here(
        "https://live.example.com/live/")
    assert here(tunnel, "127.0.0.1", CF_HTTPS, path="/hls/stream.m3u8") == Here("https://live.example.com/hls/")
    assert here(tunnel, "127.0.0.1", ("CF-Visitor", '{"scheme":"HTTPS"}')) == Here("https://live.example.com/live/")
    # Without CF-Visitor (a proxy of the operator's between cloudflared and the service that drops it).
    assert here(tunnel, "127.0.0.1", ("X-Forwarded-Proto", "https")) == Here("https://live.example.com/live/")
    # A viewer over plain http at the edge: its own scheme, never kept by a cache for anyone else.
    assert here(tunnel, "127.0.0.1", ("CF-Visitor", '{"scheme":"http"}')) == Here(
        "http://live.example.com/live/", shared=False)


def test_a_named_reverse_proxy_says_the_scheme_in_x_forwarded_proto() -> None:
    nginx = Proxies((NGINX,))
    assert here(nginx, "10.0.0.5", ("X-Forwarded-Proto", "https")) == Here("https://live.example.com/live/")
    # The nearest proxy's word: the right-most value (what a client wrote is left of it).
    assert here(nginx, "10.0.0.5", ("X-Forwarded-Proto", "http, https")) == Here("https://live.example.com/live/")
    assert here(nginx, "10.0.0.5", ("Forwarded", "for=1.2.3.4;proto=https")) == Here("https://live.example.com/live/")
    # CF-Visitor only from the tunnel (TRUST_CF_CONNECTING_IP, a loopback peer).
    assert here(nginx, "10.0.0.5", CF_HTTPS) == Here("//live.example.com/live/")


def test_a_client_cannot_name_a_scheme_for_itself() -> None:
    """From a peer that is not a named proxy a scheme header is a client's word: its answer leaves the
    scheme to its player (a network-path reference), which every browser resolves to the page's own."""
    for proxies, peer in ((Proxies(), "198.51.100.7"), (Proxies(), "127.0.0.1"), (Proxies((NGINX,)), "198.51.100.7"),
                          (Proxies(cloudflare=True), "198.51.100.7")):
        for header in (CF_HTTPS, ("X-Forwarded-Proto", "https"), ("X-Forwarded-For", "203.0.113.9"),
                       ("CF-Connecting-IP", "203.0.113.9"), ("Forwarded", "proto=https")):
            assert here(proxies, peer, header) == Here("//live.example.com/live/"), (proxies, peer, header)
    # The tunnel trusted but silent about the scheme, or saying something else: the same.
    tunnel = Proxies(cloudflare=True)
    assert here(tunnel, "127.0.0.1", ("CF-Connecting-IP", "203.0.113.9")) == Here("//live.example.com/live/")
    assert here(tunnel, "127.0.0.1", ("CF-Visitor", "{bad json")) == Here("//live.example.com/live/")
    assert here(tunnel, "127.0.0.1", ("X-Forwarded-Proto", "ftp")) == Here("//live.example.com/live/")


def test_a_direct_request_names_its_own_connections_scheme() -> None:
    """No proxy in front (the demo, a player on the VM itself): the connection's scheme, the viewer's."""
    for proxies in (Proxies(), Proxies(cloudflare=True), Proxies((LAN,))):
        assert here(proxies, "127.0.0.1") == Here("http://live.example.com/live/")
        assert here(proxies, "10.0.0.5", host="10.0.0.1:3000") == Here("http://10.0.0.1:3000/live/")


@pytest.mark.parametrize("host", ["", "evil.example/x", 'a"b', "a b", "a\\b", "a:b:c", "x" * 300, "[::1",
                                  "-bad.example", "a..b", "a.example:99999999"])
def test_a_host_that_is_not_plain_names_nothing(host: str) -> None:
    assert here(Proxies(cloudflare=True), "127.0.0.1", CF_HTTPS, host=host) is None
