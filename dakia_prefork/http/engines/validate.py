"""The checks that let the httptools engine trust what llhttp parsed, or send it to h11.

Theory of operation
-------------------
llhttp (strict, no leniency flag set) refuses much of what the gateway refuses: bare CR
and LF, obs-fold, control characters in the request line and in field names and values,
unknown methods. Where it is more lenient than h11 plus the policy, its callbacks still
show enough to notice, and these functions look for exactly those cases:

* request line: llhttp takes ``GET  / HTTP/1.1`` (two spaces) and ``GET /`` (HTTP/0.9
  with no version); h11 wants ``method SP target SP HTTP/d.d``. The line must therefore be
  exactly method, SP, the URL llhttp reported, SP, ``HTTP/1.1`` or ``HTTP/1.0`` — a length
  check and two comparisons, no regex;
* status line: llhttp takes NUL, VT and FF in the reason phrase and status codes below
  100; h11 (and the raw-byte policy) do not;
* field values: llhttp keeps trailing whitespace, h11 strips it — the engine's header
  callback strips it (measured: cheaper than scanning the head for it, which costs two
  passes over every byte);
* header semantics (Host count, Content-Length and Transfer-Encoding syntax and repeats):
  ``policy`` answers None when the list is not in the form h11 would produce.

Each function returns the head, or None when h11 must give the verdict instead (the
caller asks ``h11_engine.reference_*_head``). None is not an error: the reference may well
accept the head (an unusual method, ``Content-Length: 5, 5``), and then its fields are the
ones used. A head that passes here is one h11 accepts with the very same fields; the
differential tests and the mutation fuzz hold the two engines to it.
"""
from __future__ import annotations

from typing import Final

from ..events import Headers, RequestHead, ResponseHead
from . import policy
from .framing import CONTROL_BYTES

_VERSIONS: Final = {b" HTTP/1.1": b"1.1", b" HTTP/1.0": b"1.0"}
_STATUS_VERSIONS: Final = {b"HTTP/1.1 ": b"1.1", b"HTTP/1.0 ": b"1.0"}


def request(head: bytes, url: bytes, headers: Headers) -> RequestHead | None:
    """The RequestHead of a head llhttp accepted, or None if h11 must judge it.

    ``head`` is the raw head (request line to blank line), ``url`` and ``headers`` what
    llhttp reported, names lower-cased and values stripped of trailing SP/HTAB by the
    engine's callback. Raises ProtocolError for gateway policy.
    """
    line_end = head.find(b"\r\n")
    space = head.find(b" ", 0, line_end)
    if space + len(url) + 10 != line_end or not head.startswith(url, space + 1):
        return None
    version = _VERSIONS.get(head[line_end - 9:line_end])
    if version is None:
        return None
    return policy.request_head(head[:space], url, version, headers)


def response(head: bytes, status: int, reason: bytes, headers: Headers,
             request_method: bytes, websocket: bool = False) -> ResponseHead | None:
    """The ResponseHead of a head llhttp accepted, or None if h11 must judge it.

    As ``request``; ``status`` and ``reason`` are llhttp's (reason is b"" when absent).
    """
    version = _STATUS_VERSIONS.get(head[:9])
    if version is None or not head[9:12].isdigit():
        return None
    line_end = head.find(b"\r\n")
    if line_end != (13 + len(reason) if head[12] == 0x20 else 12):
        return None
    if reason and len(reason.translate(None, CONTROL_BYTES)) != len(reason):
        return None
    return policy.response_head(status, reason, version, headers, request_method, websocket)
