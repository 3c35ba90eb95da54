"""Where a head starts and ends in raw bytes, how big it may be, and which raw bytes it may hold.

Theory of operation
-------------------
Both engines cut heads out of the byte stream with this module before any parser sees them,
so every decision that depends on the raw bytes of a head is taken by the same code:

* ``check_first_byte``: a message must start with a byte above SP. h11 rejects such input
  as soon as it sees the first byte (``is_next_line_obviously_invalid_request_line``); it is
  what makes a TLS handshake sent to a plain port fail at once instead of waiting for a
  blank line that never comes. It also refuses empty lines before a request, as h11 does
  (llhttp skips them; RFC 9112 2.2 only says a server SHOULD ignore one, for clients of
  the 1990s that sent a CRLF after a POST body).
* ``find_head_end``: the head ends at the first ``LF [CR] LF``, h11's rule
  (``ReceiveBuffer.maybe_extract_lines``). Heads that end with a bare LF are cut at the same
  place by both engines and then refused by ``check_raw_head``.
* ``size_error``: over ``limit`` bytes is 414 when the request line alone is too long, else
  431. The rule only looks at the bytes, never at how they were split into reads, so the
  verdict does not depend on the network (h11's own check only runs when it runs out of
  data, which lets a big head through when it arrives in one read).
* ``check_raw_head``: gateway policy on raw bytes, stricter than h11 where h11 is lenient
  in ways that enable request smuggling through a chain of proxies: line endings must be
  CRLF (RFC 9112 2.2 allows a bare LF, but a proxy in front of us may not treat it as a
  line end), no control characters but HTAB (RFC 9110 5.5: CTLs are invalid; h11 keeps
  them, llhttp refuses them), no obsolete line folding (RFC 9112 5.2 lets a server reject
  it; h11 unfolds it, llhttp refuses it).
"""
from __future__ import annotations

import re
from typing import Final

from ..events import ProtocolError

Buffer = bytes | bytearray

# h11's end-of-head rule: a line feed, an optional carriage return, a line feed.
HEAD_END: Final = re.compile(rb"\n\r?\n")

# Every C0 control but HTAB, CR and LF (those three are judged by the line-ending rules),
# and DEL. Used with bytes.translate(None, delete), which scans in C without a regex.
CONTROL_BYTES: Final = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def check_first_byte(buf: Buffer, start: int, status: int) -> None:
    """Refuse a message whose first byte (``buf[start]``) is SP or a control byte.

    Does nothing while ``buf`` holds no byte at ``start``.
    """
    if start < len(buf) and buf[start] < 0x21:
        raise ProtocolError("illegal request line" if status != 502 else "illegal status line",
                            status)


def find_head_end(buf: Buffer, start: int, search_from: int) -> int:
    """Return the offset just past the head that starts at ``buf[start]``, or -1.

    ``search_from`` (>= start) lets a caller that already scanned a prefix skip it; it must
    be at most two bytes before the end of what was scanned, as the terminator spans three.
    """
    match = HEAD_END.search(buf, max(start, search_from))
    return -1 if match is None else match.end()


def _line_length(buf: Buffer, start: int, newline: int) -> int:
    """Length of the line ``buf[start:newline]`` without the CR that may end it."""
    end = newline - 1 if newline > start and buf[newline - 1] == 0x0D else newline
    return end - start


def size_error(buf: Buffer, start: int, end: int, limit: int, at_eof: bool = False) -> int:
    """Return 414 or 431 when the head at ``buf[start:end]`` is over ``limit``, else 0.

    ``end`` is -1 while the head is incomplete; then 0 means "not over the limit yet", and
    -1 means "over the limit, but the next byte decides between 414 and 431": the buffer
    holds limit + 1 bytes, no LF, and ends with a CR that may start the request line's end.
    At EOF (``at_eof``) that CR is taken as the line's end.
    """
    if end == -1:
        end = len(buf)
        if end - start <= limit:
            return 0
        newline = buf.find(b"\n", start)
        if newline == -1:
            # No LF yet: the request line is every byte but a trailing CR.
            line = _line_length(buf, start, end)
            if line > limit:
                return 414
            return 431 if at_eof else -1
    elif end - start <= limit:
        return 0
    else:
        newline = buf.find(b"\n", start)
    return 414 if _line_length(buf, start, newline) > limit else 431


def check_raw_head(head: bytes, status: int) -> None:
    """Apply the raw-byte policy to a complete head (terminator included).

    Raises ProtocolError(status) for control characters, bare CR or LF, or obs-fold.
    """
    if len(head.translate(None, CONTROL_BYTES)) != len(head):
        raise ProtocolError("control character in head", status)
    crlf = head.count(b"\r\n")
    if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
        raise ProtocolError("line ending is not CRLF", status)
    if b"\n " in head or b"\n\t" in head:
        raise ProtocolError("obsolete line folding", status)
