"""The two HTTP/1.1 engines behind the parser seam, and how one is chosen.

``select_engine(config.http_parser)`` returns an ``Engine``; the connection code asks it for
one ``request_parser()`` per client connection and one ``response_parser(method)`` per
upstream response, and never learns which engine it got.

* ``h11``: the reference — strict, pure Python, always installed (``h11_engine``).
* ``httptools``: llhttp through httptools, the ``fast`` extra (``httptools_engine``); takes
  the same decision as ``h11`` on every input, several times faster.

``auto`` picks httptools when it can be imported.
"""
from __future__ import annotations

from typing import Protocol

from ..events import EngineName, RequestParser, ResponseParser
from .h11_engine import H11RequestParser, H11ResponseParser

__all__ = ["Engine", "H11Engine", "HttptoolsEngine", "available_engines", "select_engine"]

_MISSING_HTTPTOOLS = "httptools is not installed: pip install dakia-prefork[fast]"


class Engine(Protocol):
    """A factory of parsers for one engine."""

    name: EngineName

    def request_parser(self, max_header_bytes: int = 65536) -> RequestParser:
        """A parser for the requests of one client connection."""

    def response_parser(self, request_method: bytes, max_header_bytes: int = 65536,
                        websocket: bool = False) -> ResponseParser:
        """A parser for one upstream response to a request with ``request_method``
        (``websocket``: to a WebSocket handshake, which a 101 may answer).

        Raises ValueError for CONNECT, which the gateway never forwards.
        """


class H11Engine:
    """The h11 engine."""

    __slots__ = ()
    name: EngineName = "h11"

    def request_parser(self, max_header_bytes: int = 65536) -> RequestParser:
        """See Engine.request_parser."""
        return H11RequestParser(max_header_bytes)

    def response_parser(self, request_method: bytes, max_header_bytes: int = 65536,
                        websocket: bool = False) -> ResponseParser:
        """See Engine.response_parser."""
        return H11ResponseParser(request_method, max_header_bytes, websocket)

    def __repr__(self) -> str:
        return "H11Engine()"


class HttptoolsEngine:
    """The httptools (llhttp) engine. Constructing it raises ImportError without httptools."""

    __slots__ = ("_request", "_response")
    name: EngineName = "httptools"

    def __init__(self) -> None:
        try:
            from .httptools_engine import HttptoolsRequestParser, HttptoolsResponseParser
        except ImportError as exc:
            if exc.name != "httptools":
                raise
            raise ImportError(_MISSING_HTTPTOOLS, name="httptools") from None
        self._request = HttptoolsRequestParser
        self._response = HttptoolsResponseParser

    def request_parser(self, max_header_bytes: int = 65536) -> RequestParser:
        """See Engine.request_parser."""
        return self._request(max_header_bytes)

    def response_parser(self, request_method: bytes, max_header_bytes: int = 65536,
                        websocket: bool = False) -> ResponseParser:
        """See Engine.response_parser."""
        return self._response(request_method, max_header_bytes, websocket)

    def __repr__(self) -> str:
        return "HttptoolsEngine()"


def available_engines() -> list[str]:
    """The names of the engines that can run here, the reference first."""
    try:
        HttptoolsEngine()
    except ImportError:
        return ["h11"]
    return ["h11", "httptools"]


def select_engine(name: str) -> Engine:
    """The engine called ``name``: ``h11``, ``httptools`` or ``auto`` (httptools if importable).

    Raises ImportError when httptools is asked for and missing, ValueError for other names.
    """
    if name == "auto":
        try:
            return HttptoolsEngine()
        except ImportError:
            return H11Engine()
    if name == "h11":
        return H11Engine()
    if name == "httptools":
        return HttptoolsEngine()
    raise ValueError(f"unknown HTTP parser {name!r}: expected auto, h11 or httptools")
