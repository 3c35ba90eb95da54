"""What a filter can see of a request: the narrow view routing/ evaluates against.

routing/ never touches sockets; the worker hands it an object of this shape. Strings are
``str`` (decoded latin-1 from the wire, as HTTP field values are octets), so filter values in
the config compare without encoding games.
"""
from __future__ import annotations

from typing import Protocol


class FilterSubject(Protocol):
    method: str            # "GET", as sent (methods are case-sensitive)
    path: str              # the target's path, without the query string, not percent-decoded
    scheme: str            # "http" or "https"
    host: str              # Host header, lower-cased, port removed, IPv6 without brackets
    remote_addr: str       # client IP address ("127.0.0.1", "::1"); "" for unix sockets
    client_subject: str    # verified client certificate's subject (mTLS), RFC 4514; ""

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower-case); repeated headers joined by ", "."""

    def query(self, name: str) -> str | None:
        """The first value of query parameter ``name``, percent-decoded; None if absent."""
