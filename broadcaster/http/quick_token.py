"""The viewer token a private stream's plain playlist GET carries, read from its raw head (quick.py).

As the gate reads it (gate.token_of), so that a request answered before aiohttp is let in only when the
gate would let it in: `?access=<token>` (here only as the whole query: anything else is the gate's), else
the first Authorization field's value after its `Bearer` scheme (named in any case, RFC 9110 11.1). Bytes
as sent, judged by them (access/admitted.py): a token with anything around it that aiohttp would strip
(a trailing space) is not one let in here, and goes to the gate, which strips it.
"""

from __future__ import annotations

import re

ACCESS_QUERY = b"?access="  # gate.ACCESS as a target's whole query starts
# In a head's field lines, each after an LF: the search skips to each LF (a literal first), where the
# names are compared in any case, and takes the value to its CR without a character class (the fast way).
_BEARER = re.compile(rb"\nauthorization:[\t ]*bearer +([^\r]*)\r", re.IGNORECASE)


def bearer(fields: bytes) -> bytes:
    """The token of the first Authorization field in `fields` (a head's field lines, each after an LF and
    ending in CRLF) when it is a Bearer one; else b"" (no token)."""
    found = _BEARER.search(fields)
    return b"" if found is None else found.group(1)
