"""``key_auth``: API keys in a header or a query parameter, stored hashed.

::

    config:
      header: X-API-Key          # null to accept the query parameter only
      query: null                # e.g. api_key
      keys: [{name: ci, key_hash: "sha256:..."}]
      realm: api
      hide_credentials: false    # true: drop the key before the request goes upstream

A key given in plain (``{name, key}``) is hashed when the config loads. No key: 401 with
``WWW-Authenticate: Key realm="..."``; a key that matches none: 403. The header wins when
both places carry one. The key's name is ``ctx.consumer``. See apikeys.py for why SHA-256
and how the comparison stays constant-time.
"""
from __future__ import annotations

from typing import Any

from .apikeys import KeyRing, hash_key, parse_key_hash
from .base import Interceptor, Problem, Problems, register
from .context import Context, Reply
from .headers import header_name


@register
class KeyAuth(Interceptor):
    name = "key_auth"

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        """Hash plaintext keys, then build."""
        problems: list[Problem] = []
        for index, key in enumerate(entry["config"].get("keys", [])):
            if "key" in key and "key_hash" in key:
                problems.append((f"config.keys[{index}]", "give key_hash or key, not both"))
            elif "key" in key:
                key["key_hash"] = hash_key(key.pop("key"))
        return problems or super().check(entry, base_dir)

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        problems = Problems()
        header = config.get("header", "x-api-key")
        self.header: bytes | None = None
        if header is not None:
            try:
                self.header = header_name(header)
            except ValueError as exc:
                problems.add("config.header", str(exc))
        self.query: str | None = config.get("query")
        if header is None and self.query is None:
            problems.add("config", "give header, query or both: where is the key?")
        entries: list[tuple[str, bytes]] = []
        names: set[str] = set()
        for index, key in enumerate(config.get("keys", [])):
            where = f"config.keys[{index}]"
            if key["name"] in names:
                problems.add(f"{where}.name", f"key name {key['name']!r} is used twice")
            names.add(key["name"])
            if "key_hash" not in key:
                problems.add(where, "key_hash is missing")
                continue
            try:
                entries.append((key["name"], parse_key_hash(key["key_hash"])))
            except ValueError as exc:
                problems.add(f"{where}.key_hash", str(exc))
        if not config.get("keys"):
            problems.add("config.keys", "no keys: nobody could get through")
        problems.raise_any()
        self.keys = KeyRing(entries)
        realm = config.get("realm", "dakia")
        self.missing = Reply(401, b"401 Unauthorized: an API key is required\n",
                             [("www-authenticate", f'Key realm="{realm}"')])
        self.invalid = Reply(403, b"403 Forbidden: invalid API key\n")
        self.hide_credentials = bool(config.get("hide_credentials", False))
        self.header_text = self.header.decode("latin-1") if self.header else None

    def request_filter(self, ctx: Context) -> Reply | None:
        request = ctx.request
        key = request.header(self.header_text) if self.header_text else None
        from_query = False
        if not key and self.query is not None:
            key = request.query(self.query)
            from_query = True
        if not key:
            return self.missing
        name = self.keys.match(key)
        if name is None:
            return self.invalid
        ctx.consumer = name
        if self.hide_credentials:
            upstream = ctx.upstream_request
            if from_query:
                upstream.remove_query_param(self.query or "")
            else:
                upstream.headers.remove(self.header or b"")
        return None
