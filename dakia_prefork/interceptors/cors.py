"""``cors``: Cross-Origin Resource Sharing, preflight and actual requests (Fetch standard).

::

    config:
      allow_origins: ["https://app.example"]    # or ["*"]
      allow_methods: [GET, HEAD, POST, PUT, PATCH, DELETE]   # the default
      allow_headers: ["*"]          # the default: allow what the preflight asks for
      expose_headers: []
      max_age: 600                  # seconds a browser may cache a preflight; null: unset
      allow_credentials: false      # true is refused with allow_origins ["*"]

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
answered here, 204 with the ``Access-Control-Allow-*`` headers when origin, method and
headers are allowed, 403 otherwise; the upstream never sees it. Put ``cors`` before auth
interceptors: browsers send preflights without credentials.

On every other response to a request with an allowed ``Origin``, the gateway sets
``Access-Control-Allow-Origin`` (and ``-Credentials``, ``-Expose-Headers``); for an origin
not allowed it removes any the upstream set, so the gateway's policy is the one in force.
``Vary: Origin`` is added whenever the answer depends on the origin.
"""
from __future__ import annotations

import re
from typing import Any

from .base import Interceptor, Problems, register
from .context import Context, Reply

_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#\s]+$")
_DEFAULT_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_ALLOW_ORIGIN = b"access-control-allow-origin"
_ALLOW_CREDENTIALS = b"access-control-allow-credentials"
_EXPOSE = b"access-control-expose-headers"
_PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"


@register
class Cors(Interceptor):
    name = "cors"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        problems = Problems()
        origins = config["allow_origins"]
        self.any_origin = "*" in origins
        self.origins = frozenset(o.lower() for o in origins if o != "*")
        for index, origin in enumerate(origins):
            if origin not in ("*", "null") and not _ORIGIN.match(origin.lower()):
                hint = " (an origin has no path: drop the trailing '/')" \
                    if origin.endswith("/") else " (scheme://host[:port])"
                problems.add(f"config.allow_origins[{index}]",
                             f"{origin!r} is not an origin{hint}")
        self.credentials = bool(config.get("allow_credentials", False))
        if self.credentials and self.any_origin:
            problems.add("config.allow_credentials",
                         "browsers refuse credentials with a '*' origin; list the origins")
        self.methods = list(config.get("allow_methods", _DEFAULT_METHODS))
        self.method_set = frozenset(self.methods)
        headers = config.get("allow_headers", ["*"])
        self.reflect_headers = "*" in headers
        self.header_set = frozenset(h.lower() for h in headers if h != "*")
        self.allow_headers = ", ".join(h for h in headers if h != "*")
        self.expose = ", ".join(config.get("expose_headers", []))
        max_age = config.get("max_age")
        self.max_age = str(max_age) if max_age is not None else None
        problems.raise_any()
        self.refused = Reply(403, b"403 Forbidden: CORS preflight refused\n")

    def _allowed(self, origin: str) -> bool:
        return self.any_origin or origin.lower() in self.origins

    def _allow_origin_value(self, origin: str) -> str:
        # Echo the origin unless any origin is fine and no credentials are involved.
        return "*" if self.any_origin and not self.credentials else origin

    def request_filter(self, ctx: Context) -> Reply | None:
        request = ctx.request
        if request.method != "OPTIONS":
            return None
        origin = request.header("origin")
        method = request.header("access-control-request-method")
        if origin is None or method is None:
            return None                  # a plain OPTIONS: the upstream answers it
        ctx.vars["cors.preflight"] = True
        asked = request.header("access-control-request-headers") or ""
        asked_headers = [h.strip() for h in asked.split(",") if h.strip()]
        if (not self._allowed(origin) or method not in self.method_set
                or (not self.reflect_headers
                    and any(h.lower() not in self.header_set for h in asked_headers))):
            return self.refused
        headers = [("access-control-allow-origin", self._allow_origin_value(origin)),
                   ("access-control-allow-methods", ", ".join(self.methods))]
        allow_headers = ", ".join(asked_headers) if self.reflect_headers else self.allow_headers
        if allow_headers:
            headers.append(("access-control-allow-headers", allow_headers))
        if self.max_age is not None:
            headers.append(("access-control-max-age", self.max_age))
        if self.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        headers.append(("vary", _PREFLIGHT_VARY))
        return Reply(204, b"", headers)

    def pre_downstream_response(self, ctx: Context) -> None:
        if "cors.preflight" in ctx.vars:
            return                       # our own preflight answer, complete already
        response = ctx.response
        assert response is not None
        headers = response.headers
        origin = ctx.request.header("origin")
        if not (self.any_origin and not self.credentials):
            _add_vary(headers.raw)
        if origin is None:
            return
        if not self._allowed(origin):
            headers.remove(_ALLOW_ORIGIN)
            headers.remove(_ALLOW_CREDENTIALS)
            return
        headers.set(_ALLOW_ORIGIN, self._allow_origin_value(origin))
        if self.credentials:
            headers.set(_ALLOW_CREDENTIALS, "true")
        if self.expose:
            headers.set(_EXPOSE, self.expose)


def _add_vary(raw: list[tuple[bytes, bytes]]) -> None:
    """Add ``Origin`` to Vary unless it is there (or Vary is ``*``)."""
    for name, value in raw:
        if name == b"vary":
            tokens = {t.strip().lower() for t in value.split(b",")}
            if b"origin" in tokens or b"*" in tokens:
                return
    raw.append((b"vary", b"Origin"))
