"""The request as routing and interceptors see it: decoded lazily from a parsed head.

A ``Request`` implements routing.subject.FilterSubject. Only what every request needs is
decoded up front (method, path, host); headers become a dict and the query string is parsed
only when a filter or an interceptor asks, so a route that looks at the path alone costs no
more than that.

It is the request as the client sent it, in canonical form (the path normalised, see
message/paths.py; absolute-form already origin-form), and stays so: interceptors read it
(``ctx.request``) and change the copy that goes upstream (``ctx.upstream_request``), so
filters, which are decided once per request, and the access log see what arrived.
"""
from __future__ import annotations

from urllib.parse import parse_qs

from .heads import RequestHead


class Request:
    __slots__ = ("head", "method", "path", "query_string", "scheme", "host", "remote_addr",
                 "forwarded_for", "client_subject", "_headers", "_query")

    def __init__(self, head: RequestHead, host: str, scheme: str, remote_addr: str) -> None:
        self.head = head
        self.method = head.method.decode("latin-1")
        target = head.target.decode("latin-1")
        # The engines' policy leaves only origin-form and ``*`` (absolute-form arrives as
        # origin-form, message/target.py). The exchange replaces ``path`` with its canonical
        # form (message/paths.py) before anything reads it.
        path, sep, query = target.partition("?")
        self.path = path
        self.query_string = query
        self.scheme = scheme
        self.host = host
        self.remote_addr = remote_addr
        # The X-Forwarded-For the gateway sends upstream when a gateway's real_ip rebuilt
        # it (routing/realip.py); None: the client's list with the peer appended.
        self.forwarded_for: str | None = None
        # The verified client certificate's subject (RFC 4514) on an mTLS listener; "".
        self.client_subject = ""
        self._headers: dict[str, str] | None = None
        self._query: dict[str, list[str]] | None = None

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower-case), repeats joined with ", "; or None."""
        headers = self._headers
        if headers is None:
            headers = {}
            for raw_name, raw_value in self.head.headers:
                key = raw_name.decode("latin-1")
                value = raw_value.decode("latin-1")
                headers[key] = headers[key] + ", " + value if key in headers else value
            self._headers = headers
        return headers.get(name)

    def query(self, name: str) -> str | None:
        """The first value of query parameter ``name`` (decoded), or None."""
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True)
        values = self._query.get(name)
        return values[0] if values else None

