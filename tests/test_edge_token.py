"""broadcaster/edge_token.py: the segment token Cloudflare's `is_timed_hmac_valid_v0` checks, held to
Cloudflare's worked example, and the rules' text. The Worker is held to the same tokens in
tests/test_edge_worker.py (in workerd)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

from broadcaster import edge_token
from broadcaster.edge_token import SEPARATOR, checked_text, parts, sign, valid

# Cloudflare's worked example: developers.cloudflare.com/waf/custom-rules/use-cases/configure-token-authentication/
# ("Example rule" and "HMAC token generation"): secret `mysecrettoken`, message `/images/cat.jpg`, token
# issued at 1484063787, lifetime 10800 s, checked at 1484071925, separator `?verify=` (length 8).
DOC_URI = "/images/cat.jpg?verify=1484063787-9JQB8vP1z0yc5DEBnH6JGWM3mBmvIeMrnnxFi3WtJLE%3D"
DOC_SECRET, DOC_MESSAGE, DOC_ISSUED, DOC_TTL, DOC_NOW, DOC_SEPARATOR = (
    "mysecrettoken", "/images/cat.jpg", 1484063787, 10800, 1484071925, 8)

KEY = "5f" * 32  # an edge key as `hls-broadcaster edge-rules` prints it (hex)
PREFIX = "/live/"
TTL = 300 + 90
NOW = 1_764_000_000


def test_the_docs_example_uri_reads_as_the_docs_name_its_parts() -> None:
    message, issued, mac = parts(DOC_URI, DOC_SEPARATOR) or ("", 0, b"")
    assert (message, issued) == (DOC_MESSAGE, DOC_ISSUED)
    assert mac == base64.b64decode("9JQB8vP1z0yc5DEBnH6JGWM3mBmvIeMrnnxFi3WtJLE=")  # URL-decoded, then base64
    assert len(SEPARATOR) == DOC_SEPARATOR


def test_sign_writes_what_the_docs_generation_recipe_writes() -> None:
    """The docs' recipe, step by step: HMAC-SHA256(secret, message + timestamp), standard base64,
    URL-encoded (quote_plus), `<timestamp>-<mac>`. The docs' example MAC comes from no secret and message they
    print, so the example is held by its parts, its recipe and its expiry formula."""
    digest = hmac.new(DOC_SECRET.encode("utf8"), f"{DOC_MESSAGE}{DOC_ISSUED}".encode("utf8"), hashlib.sha256)
    recipe = f"{DOC_ISSUED}-{quote_plus(base64.b64encode(digest.digest()))}"
    assert sign(DOC_SECRET, DOC_MESSAGE, DOC_ISSUED) == recipe
    assert recipe.endswith("%3D")  # the `=` padding URL-encoded, as in the docs' URL


def test_the_docs_printed_mac_comes_from_none_of_the_messages_and_secrets_the_docs_print() -> None:
    """Why the example's MAC string is not the test's oracle: every pairing the docs' versions print fails."""
    _, _, printed = parts(DOC_URI, DOC_SEPARATOR) or ("", 0, b"")
    for secret in ("mysecrettoken", "secretKey"):
        for message in ("/images/cat.jpg", "/download/cat.jpg"):
            made = hmac.new(secret.encode(), f"{message}{DOC_ISSUED}".encode(), hashlib.sha256).digest()
            assert made != printed, (secret, message)


def test_the_docs_rule_accepts_a_signed_uri_until_issued_plus_ttl() -> None:
    uri = f"{DOC_MESSAGE}{SEPARATOR}{sign(DOC_SECRET, DOC_MESSAGE, DOC_ISSUED)}"
    assert valid(DOC_SECRET, uri, DOC_TTL, DOC_NOW, DOC_SEPARATOR)
    # `http.request.timestamp.sec < (<TIMESTAMP_ISSUED> + 10800)`: the second it reaches that, refused.
    assert valid(DOC_SECRET, uri, DOC_TTL, DOC_ISSUED + DOC_TTL - 1, DOC_SEPARATOR)
    assert not valid(DOC_SECRET, uri, DOC_TTL, DOC_ISSUED + DOC_TTL, DOC_SEPARATOR)
    assert not valid("othersecret", uri, DOC_TTL, DOC_NOW, DOC_SEPARATOR)


def test_a_prefix_token_covers_every_segment_under_its_prefix_in_its_window() -> None:
    token = sign(KEY, PREFIX, NOW)
    text = checked_text(PREFIX, f"verify={token}")  # what the rule builds, whatever segment was asked for
    assert text == f"/live/?verify={token}"
    assert valid(KEY, text, TTL, NOW + TTL - 1, len(SEPARATOR))


def test_expired_tampered_unsigned_and_other_prefix_tokens_are_refused() -> None:
    token = sign(KEY, PREFIX, NOW)
    ts, mac = token.split("-")
    flipped = ("B" if mac[0] == "A" else "A") + mac[1:]
    refused = {"expired": checked_text(PREFIX, f"verify={token}"),
               "tampered mac": checked_text(PREFIX, f"verify={ts}-{flipped}"),
               "tampered timestamp": checked_text(PREFIX, f"verify={int(ts) + 600}-{mac}"),
               "unsigned": checked_text(PREFIX, ""), "no mac": checked_text(PREFIX, f"verify={ts}-"),
               "other prefix": checked_text(PREFIX, f"verify={sign(KEY, '/other/', NOW)}"),
               "another key": checked_text(PREFIX, f"verify={sign('6a' * 32, PREFIX, NOW)}"),
               "a parameter after it": checked_text(PREFIX, f"verify={token}&x=1"),
               "not base64": checked_text(PREFIX, f"verify={ts}-{'!' * 44}")}
    for what, text in refused.items():
        now = NOW + TTL if what == "expired" else NOW
        assert not valid(KEY, text, TTL, now, len(SEPARATOR)), what
    assert valid(KEY, refused["expired"], TTL, NOW, len(SEPARATOR))  # the same text, in time


def test_the_separator_is_skipped_by_its_length_whatever_it_holds() -> None:
    token = sign(KEY, PREFIX, NOW)
    assert valid(KEY, f"{PREFIX}&token={token}", TTL, NOW, len("&token="))
    assert not valid(KEY, f"{PREFIX}?verify={token}", TTL, NOW, len(SEPARATOR) - 1)  # message read as /live/?
    assert not valid(KEY, f"?verify={token}", TTL, NOW, len(SEPARATOR))  # no message at all
    assert not valid(KEY, f"ify={token}", TTL, NOW, len(SEPARATOR))  # shorter than a separator: none either


def test_the_waf_expression_names_the_prefix_key_ttl_and_separator() -> None:
    rule = edge_token.waf_expression("media.example.com", PREFIX, KEY, TTL)
    assert rule == (
        '(http.host eq "media.example.com" and starts_with(http.request.uri.path, "/live/") and not '
        f'is_timed_hmac_valid_v0("{KEY}", concat("/live/", "?", http.request.uri.query), {TTL}, '
        'http.request.timestamp.sec, 8))')
    assert edge_token.cache_rule_expression("media.example.com", PREFIX) == (
        '(http.host eq "media.example.com" and starts_with(http.request.uri.path, "/live/"))')


def test_only_path_prefixes_can_be_written_into_a_rule() -> None:
    assert edge_token.good_prefix("/") and edge_token.good_prefix("/live/") and edge_token.good_prefix("/a/b-c/")
    for bad in ("live/", "/live", '/li"ve/', "/a\\b/", "/a b/", ""):
        assert not edge_token.good_prefix(bad), bad
