"""HTTP/1.1 message heads as the gateway sees them: what a parser produces and everything
above it (routing, interceptors, logs) reads.

Pure data: no I/O and no parser, so the master, config checks and interceptors can use these
types without loading the HTTP stack (``http/``). The events a parser yields, and their order,
are described in ``http/events.py``.
"""
from __future__ import annotations

from typing import Final, Literal

Headers = list[tuple[bytes, bytes]]


class ProtocolError(Exception):
    """The peer sent something that is not acceptable HTTP/1.1.

    ``status`` is the status a server should answer with (400, 413, 414, 431, 501, 505);
    for a response parser it is 502 (the upstream is broken).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


END: Final = _Sentinel("END")          # the current message is complete
CLOSED: Final = _Sentinel("CLOSED")    # the peer closed cleanly between messages


class RequestHead:
    """A request line and its headers, already validated and framed.

    ``content_length`` is the declared length (``None`` when the body is chunked or absent);
    ``chunked`` is true for ``Transfer-Encoding: chunked``. A request with neither has no body.
    ``keep_alive`` folds the version and the Connection header: HTTP/1.1 unless ``close``,
    HTTP/1.0 only with ``keep-alive``. ``expect_continue`` is true for ``Expect: 100-continue``.
    ``upgrade`` is true for a WebSocket handshake (http/engines/policy.py says exactly when):
    the parser then waits after it (``RequestParser.resume``/``upgraded``) until the
    upstream's answer says whether the connection stays HTTP.
    """

    __slots__ = ("method", "target", "http_version", "headers", "content_length", "chunked",
                 "keep_alive", "expect_continue", "upgrade")

    def __init__(self, method: bytes, target: bytes, http_version: bytes, headers: Headers,
                 content_length: int | None, chunked: bool, keep_alive: bool,
                 expect_continue: bool, upgrade: bool = False) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    def __repr__(self) -> str:
        return f"RequestHead({self.method!r}, {self.target!r}, {self.http_version!r}, {self.headers!r})"


class ResponseHead:
    """A status line and its headers.

    ``body`` says how the body is framed: ``"none"`` (HEAD, 1xx, 204, 304), ``"length"``
    (``content_length`` bytes), ``"chunked"``, or ``"close"`` (until EOF). ``keep_alive`` is
    false when the upstream connection cannot be reused after this response.
    """

    __slots__ = ("status", "reason", "http_version", "headers", "content_length", "body",
                 "keep_alive")

    def __init__(self, status: int, reason: bytes, http_version: bytes, headers: Headers,
                 content_length: int | None,
                 body: Literal["none", "length", "chunked", "close"], keep_alive: bool) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.body = body
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        return f"ResponseHead({self.status}, {self.reason!r}, {self.headers!r}, body={self.body})"


RequestEvent = RequestHead | bytes | _Sentinel | None
ResponseEvent = ResponseHead | bytes | _Sentinel | None
