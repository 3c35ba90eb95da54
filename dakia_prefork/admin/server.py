"""The admin listener's HTTP/1.1 server: one greenlet per connection, every request whole.

Theory of operation
-------------------
Requests are parsed by the reference engine of the parser seam (h11: strict, and the admin
API's traffic is small), read whole (a config is at most the loader's 8 MiB), answered by
:class:`AdminApi`, and written with a Content-Length. What a client controls is bounded:

* connections at once (``MAX_CONNECTIONS``; more wait in the listen backlog);
* the head: its size (16 KiB) and the time from its first byte to its end;
* the body: its size (413 above it, before any byte of it is read) and the time to send it;
* idle keep-alive time between requests.

Every answer carries ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff``:
configs and tokens' results must not sit in caches, and a JSON body must never be taken
for a page. Every answer but the dashboard's files (which send their own) carries
``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'``: nothing renders
or frames it. A request the parser refuses is answered with its status and closes the
connection, as on the gateway's listeners.

The socket operations go through ``http.streams.Stream``, so a test can drive
:meth:`AdminServer.serve_connection` with ``http.memory.MemoryStream``.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..http.engines import H11Engine
from ..http.events import CLOSED, END, ProtocolError, RequestHead
from ..http.streams import Stream, send_all
from .api import JSON, AdminApi, AdminRequest, AdminResponse
from .token import is_loopback

log = logging.getLogger("dakia.admin")

_REASONS = {200: "OK", 301: "Moved Permanently", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
            413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
            422: "Unprocessable Content", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
            505: "HTTP Version Not Supported"}


@dataclass(frozen=True)
class AdminLimits:
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 8 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 30.0


MAX_CONNECTIONS = 64


class _Timeout(Exception):
    pass


class AdminServer:
    """Serves ``api`` on accepted connections; ``clock`` is a monotonic clock."""

    def __init__(self, api: AdminApi, limits: AdminLimits = AdminLimits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._limits = limits
        self._clock = clock
        self._engine = H11Engine()

    def serve_connection(self, stream: Stream, client: str) -> None:
        """Answer requests on ``stream`` until the client closes, errs or idles out."""
        try:
            self._serve(stream, client)
        except (OSError, _Timeout):
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _serve(self, stream: Stream, client: str) -> None:
        limits = self._limits
        parser = self._engine.request_parser(limits.max_header_bytes)
        while True:
            try:
                head = self._read_head(stream, parser)
            except ProtocolError as exc:
                self._refuse(stream, exc.status, str(exc))
                return
            except _Timeout:
                # A head started and not finished in time: closed, as an idle one is.
                return
            if head is None:
                return
            if head.content_length is not None and head.content_length > limits.max_body_bytes:
                self._refuse(stream, 413, f"the body is limited to {limits.max_body_bytes} bytes")
                return
            if head.expect_continue:
                send_all(stream, b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                body = self._read_body(stream, parser)
            except ProtocolError as exc:
                self._refuse(stream, exc.status, str(exc))
                return
            except _Timeout:
                self._refuse(stream, 408, "the body did not arrive in time")
                return
            if body is None:
                self._refuse(stream, 413, f"the body is limited to {limits.max_body_bytes} bytes")
                return
            response = self._answer(head, body, client)
            self._write(stream, response, keep_alive=head.keep_alive,
                        head_only=head.method == b"HEAD")
            if not head.keep_alive:
                return

    def _refuse(self, stream: Stream, status: int, message: str) -> None:
        """Answer an error the connection cannot go on after, and say it closes."""
        self._write(stream, _error(status, message), keep_alive=False, head_only=False)

    def _answer(self, head: RequestHead, body: bytes, client: str) -> AdminResponse:
        headers: dict[bytes, bytes] = {}
        for name, value in head.headers:
            headers[name] = headers[name] + b", " + value if name in headers else value
        forwarded = headers.get(b"x-forwarded-for")
        if forwarded is not None and is_loopback(client.rpartition(":")[0].strip("[]")):
            # Sent on by a gateway worker (the controller interceptor): the audit names the
            # client the gateway saw as well. Only from loopback, where the workers are.
            client = f"{client} for {forwarded.decode('latin-1')[:100]}"
        request = AdminRequest(head.method.decode("ascii", "replace"),
                               head.target.decode("ascii", "replace"), headers, body, client)
        try:
            return self._api.handle(request)
        except Exception:  # noqa: BLE001 - one broken request must not end the server
            log.exception("admin %s %s %s failed", client, request.method,
                          request.target[:200])
            return _error(500, "internal error; see the error log")

    def _read_head(self, stream: Stream, parser: Any) -> RequestHead | None:
        """The next request's head; None when the client closed or idled out between
        requests. Raises _Timeout for a head started and not finished in time."""
        limits = self._limits
        started: float | None = None
        while True:
            event = parser.next_event()
            if isinstance(event, RequestHead):
                return event
            if event is CLOSED:
                return None
            now = self._clock()
            if started is None:
                wait = limits.idle_timeout
            else:
                wait = started + limits.header_timeout - now
                if wait <= 0:
                    raise _Timeout()
            stream.settimeout(wait)
            try:
                data = stream.recv(65536)
            except TimeoutError:
                if started is None:
                    return None
                raise _Timeout() from None
            if started is None:
                started = now
            parser.feed(data)       # b"" (EOF) makes the parser say CLOSED or raise

    def _read_body(self, stream: Stream, parser: Any) -> bytes | None:
        """The whole body (b"" for none); None when it outgrows the limit."""
        limits = self._limits
        deadline = self._clock() + limits.body_timeout
        parts: list[bytes] = []
        size = 0
        while True:
            event = parser.next_event()
            if event is END:
                return b"".join(parts)
            if isinstance(event, bytes):
                size += len(event)
                if size > limits.max_body_bytes:
                    return None
                parts.append(event)
                continue
            wait = deadline - self._clock()
            if wait <= 0:
                raise _Timeout()
            stream.settimeout(wait)
            try:
                data = stream.recv(65536)
            except TimeoutError:
                raise _Timeout() from None
            parser.feed(data)

    def _write(self, stream: Stream, response: AdminResponse, *, keep_alive: bool,
               head_only: bool) -> None:
        reason = _REASONS.get(response.status, "")
        lines = [f"HTTP/1.1 {response.status} {reason}",
                 f"Content-Type: {response.content_type}",
                 f"Content-Length: {len(response.body)}",
                 "Cache-Control: no-store",
                 "X-Content-Type-Options: nosniff"]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        if not any(name == "Content-Security-Policy" for name, _ in response.headers):
            # Nothing but the dashboard's page is meant to render, or to be framed.
            lines.append("Content-Security-Policy: default-src 'none'; frame-ancestors 'none'")
        if not keep_alive:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        stream.settimeout(self._limits.body_timeout)
        send_all(stream, data if head_only else data + response.body)


def _error(status: int, message: str) -> AdminResponse:
    return AdminResponse(status, json.dumps({"error": message[:300]}).encode() + b"\n", JSON)
