"""API keys for key_auth: stored as SHA-256 digests, matched in constant time.

A fast hash is the right one here, unlike for passwords: an API key is a random token of
128 bits or more (``hashpw key`` makes 256), so nobody can guess it from its digest and a
slow KDF would only cost the gateway time on every request. What must not leak is the key
itself: the config holds ``sha256:<hex>`` only, and a request's key is compared against
every stored digest with ``hmac.compare_digest``, without stopping at the first match, so
the time taken does not depend on which key (if any) matched.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_KEY_HASH = re.compile(r"^sha256:([0-9a-f]{64})$")


def parse_key_hash(text: str) -> bytes:
    """The digest in ``sha256:<64 hex digits>``; ValueError otherwise."""
    match = _KEY_HASH.match(text)
    if match is None:
        raise ValueError("a key hash is 'sha256:' and 64 lower-case hex digits "
                         "(python -m dakia_prefork.interceptors.hashpw key)")
    return bytes.fromhex(match[1])


def hash_key(key: str) -> str:
    """``sha256:<hex>`` of ``key`` (UTF-8)."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key: 256 bits, URL-safe text (fits a header or a query string)."""
    return secrets.token_urlsafe(32)


class KeyRing:
    """Named key digests; ``match`` finds the name of a presented key."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[tuple[str, bytes]]) -> None:
        self._entries = tuple(entries)

    def match(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for name, stored in self._entries:
            # Every digest is compared; no early exit (see the module docstring).
            if hmac.compare_digest(digest, stored) and found is None:
                found = name
        return found
