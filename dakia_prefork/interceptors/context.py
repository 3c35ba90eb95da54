"""What an interceptor sees of one request: the context its hooks share, phase after phase.

``Context.request`` is the request as the client sent it (``http.request.Request``: method,
path, query, headers, client address), and stays so: it is what filters matched. What goes
upstream is ``Context.upstream_request``, a copy made the first time an interceptor asks for
it, which interceptors change (method, path, query, headers) in the request-side phases.
What goes back to the client is ``Context.response``, present in the response-side phases:
its status and headers can be changed, and setting its ``body`` replaces the upstream's
(the upstream body is then dropped and the new one sent with its own Content-Length).

An interceptor answers on its own (a short-circuit) by returning a ``Reply`` from a
request-side phase; the upstream is then not called.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import quote, unquote_plus

from ..message.heads import Headers, RequestHead
from ..message.request import Request
from .body import Body, FileBody
from .headers import HeaderList, HeaderValue, header_name, header_value

if TYPE_CHECKING:
    import socket

RATE_LIMITED = "rate_limiter.rejected"
"""The ``Context.vars`` key a rate limiter sets when it refuses a request (429), for the
gateway's count of rejections."""

_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Everything outside visible ASCII is percent-encoded when the target is rebuilt: h11
# accepts nothing else in a request target, and neither do careful upstreams.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7f))


class Reply:
    """A response the gateway sends on its own: ``status``, ``body`` and headers.

    ``headers`` are ``(name, value)`` pairs (str or bytes), validated here. A body without
    a Content-Type header is sent as ``text/plain; charset=utf-8``. The body may be a
    ``FileBody`` (body.py), read from its file as it is sent.
    """

    __slots__ = ("status", "body", "headers")

    def __init__(self, status: int, body: bytes | str | FileBody = b"",
                 headers: Iterable[tuple[str | bytes, HeaderValue]] = ()) -> None:
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise ValueError(f"reply status {status!r} is not in 200..599")
        self.status = status
        self.body: Body = body.encode("utf-8") if isinstance(body, str) else body
        self.headers: Headers = [(header_name(n), header_value(v)) for n, v in headers]

    def __repr__(self) -> str:
        body = self.body if isinstance(self.body, FileBody) else self.body[:40]
        return f"Reply({self.status}, {body!r}, {self.headers!r})"


class Response:
    """The response on its way to the client, in ``post_upstream_response`` and
    ``pre_downstream_response``.

    ``from_upstream`` tells an upstream response from one the gateway made (a reply, an
    error). ``body`` is None while the upstream body streams through untouched; bytes
    (or a FileBody) replace it. Changing ``status`` resets ``reason`` to the standard phrase.
    """

    __slots__ = ("_status", "reason", "headers", "body", "from_upstream")

    def __init__(self, status: int, reason: bytes, headers: HeaderList, body: Body | None,
                 from_upstream: bool) -> None:
        self._status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.from_upstream = from_upstream

    @property
    def status(self) -> int:
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 200 <= value <= 599:
            raise ValueError(f"response status {value!r} is not in 200..599")
        if value != self._status:
            self._status = value
            self.reason = b""


class UpstreamRequest:
    """The request the upstream will get; a copy of the client's, changed by interceptors.

    ``path`` and ``query`` are raw (percent-encoded as on the wire, ``query`` without the
    ``?``). ``method`` may change, except to or from HEAD: how the response is framed
    depends on it, and the client asked what it asked.
    """

    __slots__ = ("_method", "path", "query", "headers", "_original")

    _original: tuple[RequestHead, tuple[str, str, str]] | None

    def __init__(self, method: str, path: str, query: str, headers: Headers,
                 original: RequestHead | None = None) -> None:
        self._method = method
        self.path = path
        self.query = query
        self.headers = HeaderList(headers)
        # The client's head and its (method, path, query) as decoded: while those are
        # unchanged, ``head`` reuses the head's bytes instead of re-encoding them (most
        # interceptors change headers only).
        self._original = None if original is None else (original, (method, path, query))

    @classmethod
    def from_request(cls, request: Request) -> "UpstreamRequest":
        head = request.head
        # Only an origin-form target round-trips through path and query unchanged.
        original = head if head.target[:1] == b"/" else None
        return cls(request.method, request.path, request.query_string, list(head.headers),
                   original)

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        if not _METHOD.match(value) or value == "CONNECT":
            raise ValueError(f"invalid method {value!r}")
        if (value == "HEAD") != (self._method == "HEAD"):
            raise ValueError("the method cannot change to or from HEAD")
        self._method = value

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def query_params(self) -> list[tuple[str, str]]:
        """The query as decoded ``(name, value)`` pairs, in order."""
        pairs = []
        for part in self.query.split("&"):
            if part:
                name, _, value = part.partition("=")
                pairs.append((unquote_plus(name), unquote_plus(value)))
        return pairs

    def set_query_param(self, name: str, value: str) -> None:
        """Replace every ``name`` parameter with one ``name=value`` at the end; the other
        parameters keep their raw form."""
        parts = self._without(name)
        parts.append(quote(name, safe="") + "=" + quote(value, safe=""))
        self.query = "&".join(parts)

    def remove_query_param(self, name: str) -> None:
        self.query = "&".join(self._without(name))

    def _without(self, name: str) -> list[str]:
        return [part for part in self.query.split("&")
                if part and unquote_plus(part.partition("=")[0]) != name]

    def head(self, original: RequestHead) -> RequestHead:
        """A request head with these method, target and headers, framed as ``original``."""
        kept = self._original
        if kept is not None and kept[1] == (self._method, self.path, self.query):
            method, target = kept[0].method, kept[0].target     # unchanged: as received
        else:
            method = self._method.encode("ascii")
            target = quote(self.target, safe=_TARGET_SAFE).encode("ascii")
        return RequestHead(method, target, original.http_version,
                           self.headers.raw, original.content_length, original.chunked,
                           original.keep_alive, original.expect_continue, original.upgrade)


class Context:
    """The state of one request shared by every phase of every interceptor it meets.

    - ``request``: the client's request (read it; change ``upstream_request`` instead);
    - ``route``: the name of the upstream the router picked; a request-side hook before
      the node is chosen may name another upstream of the gateway (``controller`` does);
    - ``node``: the upstream node chosen, from ``pre_upstream_request`` on (``host:port``);
    - ``consumer``: who an auth interceptor authenticated (user or key name), else None;
    - ``vars``: a dict for interceptors to pass values between phases and to each other;
    - ``response``: the response, in the response-side phases.
    """

    __slots__ = ("request", "route", "node", "node_connect", "consumer", "vars", "response",
                 "_upstream")

    def __init__(self, request: Request, route: str) -> None:
        self.request = request
        self.route = route
        self.node: str | None = None
        # Opens a connection to the chosen node with its own settings (resolver, TLS); for
        # interceptors that talk to the node themselves (try_file).
        self.node_connect: Callable[[float], socket.socket] | None = None
        self.consumer: str | None = None
        self.vars: dict[str, Any] = {}
        self.response: Response | None = None
        self._upstream: UpstreamRequest | None = None

    @property
    def upstream_request(self) -> UpstreamRequest:
        """The request as it will go upstream; made on first use."""
        if self._upstream is None:
            self._upstream = UpstreamRequest.from_request(self.request)
        return self._upstream

    @property
    def upstream_request_changed(self) -> bool:
        """Whether any interceptor asked for (and so may have changed) the upstream request."""
        return self._upstream is not None
