"""The admin token: where it comes from, and the one way a request's token is compared.

The token is read once, from ``admin.token_file`` or else ``DAKIA_ADMIN_TOKEN``. A request
carries it as ``Authorization: Bearer <token>``. Both sides are hashed with SHA-256 before
``hmac.compare_digest``: the comparison then takes the same time whatever the token's
length or its first differing byte, so timing tells an attacker nothing about either.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Mapping

ENV_NAME = "DAKIA_ADMIN_TOKEN"
MIN_LENGTH = 16
"""A shorter token is refused: it could be guessed over the network."""
_MAX_FILE_BYTES = 4096


class TokenError(Exception):
    """The token is missing where it must be set, or unusable; the message says why."""


class AdminToken:
    """The expected token, kept only as its digest."""

    def __init__(self, token: str) -> None:
        if len(token) < MIN_LENGTH:
            raise TokenError(f"the admin token must be at least {MIN_LENGTH} characters")
        self._digest = hashlib.sha256(token.encode()).digest()

    def admits(self, authorization: bytes | None) -> bool:
        """True if the ``Authorization`` header value is ``Bearer <the token>``."""
        if authorization is None:
            return False
        scheme, _, given = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(hashlib.sha256(given.strip()).digest(), self._digest)


def read_token(token_file: str | None, environ: Mapping[str, str] = os.environ
               ) -> AdminToken | None:
    """The configured token: the file's first line, else the environment's; None if
    neither is set. Raises :class:`TokenError` for an unreadable or unusable one."""
    if token_file is not None:
        try:
            with open(token_file, "rb") as f:
                data = f.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise TokenError(f"{token_file}: {exc.strerror or exc}") from None
        if len(data) > _MAX_FILE_BYTES:
            raise TokenError(f"{token_file}: longer than {_MAX_FILE_BYTES} bytes; "
                             "a token file holds one line")
        lines = data.decode("utf-8", "replace").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise TokenError(f"{token_file}: the file is empty")
        return AdminToken(token)
    token = environ.get(ENV_NAME, "").strip()
    return AdminToken(token) if token else None


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
