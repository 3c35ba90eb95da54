"""The built-in interceptors implemented so far: short_circuit, server_version, request_id."""
from __future__ import annotations

import re
import uuid
from typing import Any

from .. import __version__
from ..http.events import Headers
from ..http.request import Request
from .base import Interceptor, Reply, register

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")


def _header(name: str, value: Any, where: str) -> tuple[bytes, bytes]:
    text = "true" if value is True else "false" if value is False else str(value)
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{where}: invalid header name {name!r}")
    if not _HEADER_VALUE.match(text):
        raise ValueError(f"{where}: invalid header value {text!r}")
    return name.lower().encode("latin-1"), text.strip().encode("latin-1")


@register
class ShortCircuit(Interceptor):
    """Answer with a fixed response: ``response: {status, body, header.<name>: value}``."""

    name = "short_circuit"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        response = {**spec.get("config", {}), **spec.get("response", {})}
        status = response.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            raise ValueError(f"response.status: {status!r} is not a status code in 200..599")
        body = response.get("body", "")
        if not isinstance(body, str):
            raise ValueError("response.body: must be a string")
        headers: Headers = []
        for key, value in response.items():
            if key.startswith("header."):
                headers.append(_header(key[7:], value, f"response.{key}"))
            elif key not in ("status", "body"):
                raise ValueError(f"response.{key}: unknown key (status, body, header.<name>)")
        self.reply: Reply = (status, headers, body.encode("utf-8"))

    def request_filter(self, request: Request) -> Reply | None:
        status, headers, body = self.reply
        return status, list(headers), body


@register
class ServerVersion(Interceptor):
    """Set the Server header of every response (``config.server`` overrides the default)."""

    name = "server_version"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        value = spec.get("config", {}).get("server", f"dakia-prefork/{__version__}")
        self.header = _header("server", value, "config.server")

    def response_headers(self, request: Request, status: int, headers: Headers) -> None:
        headers[:] = [h for h in headers if h[0] != b"server"]
        headers.append(self.header)


_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


@register
class RequestId(Interceptor):
    """Give each request an id (UUID4) in a request header to the upstream and in the response.

    ``config: {header: X-Request-Id, keep_incoming: false}``; with ``keep_incoming`` a
    well-formed id sent by the client is kept instead of replaced.
    """

    name = "request_id"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        config = spec.get("config", {})
        self.header_name = _header(config.get("header", "x-request-id"), "x", "config.header")[0]
        self.keep_incoming = bool(config.get("keep_incoming", False))

    def request_filter(self, request: Request) -> Reply | None:
        headers = request.head.headers
        current = None
        for name, value in headers:
            if name == self.header_name:
                current = value
                break
        if current is None or not self.keep_incoming or not _VALID_ID.match(current):
            current = str(uuid.uuid4()).encode()
            headers[:] = [h for h in headers if h[0] != self.header_name]
            headers.append((self.header_name, current))
        request.set_note("request_id", current)
        return None

    def response_headers(self, request: Request, status: int, headers: Headers) -> None:
        value = request.note("request_id")
        if value is not None:
            headers.append((self.header_name, value))
