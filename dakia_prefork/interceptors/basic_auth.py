"""``basic_auth``: HTTP Basic authentication (RFC 7617) against hashed passwords.

::

    config:
      realm: api
      users: [{username: alice, password_hash: "$scrypt$ln=15,r=8,p=1$..."}]
      htpasswd_file: /etc/dakia/htpasswd      # bcrypt, {SHA} and $apr1$ entries
      hide_credentials: false                 # true: drop Authorization before upstream

Dakia's ``config: {username, password}`` and a user's plaintext ``password`` are accepted
and hashed (scrypt) when the config loads: the normalised config that is stored, served by
the controller and read by the workers never holds the plaintext.

A missing, malformed or wrong credential gets 401 with ``WWW-Authenticate: Basic
realm="..."``. Verification runs the hash's KDF on gevent's thread pool (offload.py), so a
slow hash does not stall other connections; an unknown user costs the same KDF run as a
known one, so response times do not tell which users exist. A credential that verified
once is remembered by an HMAC of it under a key made at start (never the password), for a
bounded number of entries, so an authenticated client pays the KDF once, not per request.
The authenticated user is ``ctx.consumer``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from typing import Any

from .base import Interceptor, Problem, Problems, register
from .context import Context, Reply
from .htpasswd import HtpasswdError, read_htpasswd
from .offload import run_blocking
from .passwords import Verifier, make_hash, parse_hash

_CACHE_ENTRIES = 1024
_UNAUTHORIZED = b"401 Unauthorized\n"

User = tuple[str, Verifier]        # (hash text, verifier)


@register
class BasicAuth(Interceptor):
    name = "basic_auth"

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        """Hash plaintext passwords, make ``htpasswd_file`` absolute, then build."""
        config = entry["config"]
        problems: list[Problem] = []
        if "username" in config or "password" in config:
            if "username" in config and "password" in config:
                user = {"username": config.pop("username"), "password": config.pop("password")}
                config["users"] = [*config.get("users", []), user]
            else:
                missing = "password" if "username" in config else "username"
                problems.append((f"config.{missing}",
                                 "Dakia's single user needs both username and password"))
        for index, user in enumerate(config.get("users", [])):
            if "password" in user and "password_hash" in user:
                problems.append((f"config.users[{index}]",
                                 "give password_hash or password, not both"))
            elif "password" in user:
                user["password_hash"] = make_hash(user.pop("password"))
        if config.get("htpasswd_file"):
            config["htpasswd_file"] = os.path.join(base_dir, config["htpasswd_file"])
        return problems or super().check(entry, base_dir)

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        problems = Problems()
        realm = config.get("realm", "dakia")
        self.challenge = Reply(401, _UNAUTHORIZED, [
            ("www-authenticate", f'Basic realm="{realm}", charset="UTF-8"')])
        self.hide_credentials = bool(config.get("hide_credentials", False))
        self.users: dict[str, User] = {}
        for index, user in enumerate(config.get("users", [])):
            where = f"config.users[{index}]"
            if "password_hash" not in user:
                problems.add(where, "password_hash is missing (a plaintext password is "
                                    "hashed when the config loads, not here)")
                continue
            try:
                verifier = parse_hash(user["password_hash"])
            except ValueError as exc:
                problems.add(f"{where}.password_hash", str(exc))
                continue
            self._add_user(user["username"], user["password_hash"], verifier,
                           f"{where}.username", problems)
        if config.get("htpasswd_file"):
            try:
                for name, hashed, verifier in read_htpasswd(config["htpasswd_file"]):
                    self._add_user(name, hashed, verifier, "config.htpasswd_file", problems)
            except HtpasswdError as exc:
                problems.add("config.htpasswd_file", str(exc))
        elif not config.get("users"):
            problems.add("config", "no users: give users, htpasswd_file, or Dakia's "
                                   "username and password")
        problems.raise_any()
        self._cache_key = os.urandom(32)
        self._verified: OrderedDict[bytes, User] = OrderedDict()
        self._decoy: Verifier | None = None

    def _add_user(self, name: str, hashed: str, verifier: Verifier, where: str,
                  problems: Problems) -> None:
        if name in self.users:
            problems.add(where, f"user {name!r} is defined twice")
        else:
            self.users[name] = (hashed, verifier)

    def request_filter(self, ctx: Context) -> Reply | None:
        credentials = _parse_authorization(ctx.request.header("authorization"))
        if credentials is None or not self._verify(*credentials):
            return self.challenge
        ctx.consumer = credentials[0].decode("utf-8")
        if self.hide_credentials:
            ctx.upstream_request.headers.remove(b"authorization")
        return None

    def _verify(self, username: bytes, password: bytes) -> bool:
        try:
            user = self.users.get(username.decode("utf-8"))
        except UnicodeDecodeError:
            user = None
        # The cache key binds user and password unambiguously (length-prefixed user).
        key = hmac.new(self._cache_key, len(username).to_bytes(4, "big") + username + password,
                       hashlib.sha256).digest()
        if user is not None and self._verified.get(key) is user:
            self._verified.move_to_end(key)
            return True
        if user is None:
            run_blocking(self._decoy_verifier(), password)
            return False
        if not run_blocking(user[1], password):
            return False
        self._verified[key] = user
        if len(self._verified) > _CACHE_ENTRIES:
            self._verified.popitem(last=False)
        return True

    def _decoy_verifier(self) -> Verifier:
        """A verifier as costly as a real one, for unknown users (made once, lazily)."""
        if self._decoy is None:
            self._decoy = parse_hash(run_blocking(make_hash, base64.b64encode(
                os.urandom(18)).decode("ascii")))
        return self._decoy


def _parse_authorization(value: str | None) -> tuple[bytes, bytes] | None:
    """``(user, password)`` from ``Basic <base64(user:password)>``, or None."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return username, password
