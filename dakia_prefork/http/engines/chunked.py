"""Chunked transfer coding, decoded strictly, for both engines and both directions.

Theory of operation
-------------------
A chunked body is where a gateway and the server behind it most easily read one stream as
two different sets of messages (request smuggling, response desync): every leniency one
side has and the other lacks is a way in. So neither h11's chunk reader nor llhttp's is
used; both engines decode every chunked body, requests from clients and responses from
upstreams, with this one decoder, to RFC 9112 section 7.1 and nothing looser:

* chunk-size line: up to the first CRLF, matched whole against ``_SIZE_LINE``:
  ``chunk-size *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF``.
  The size is 1 to 16 hex digits, so always below 2**64 (h11 allows 20 digits, llhttp any
  number of leading zeros); whitespace may stand only around ``;`` and ``=`` of an
  extension, never after the size alone nor before the CRLF (h11 takes ``5 \r\n``);
  extensions are checked, then ignored. A bare CR or LF fails as soon as it arrives, not
  when some later CRLF ends the line (``5;a=b\r\r...``, the desync h2o was known for);
* chunk data, handed out as it arrives, then exactly CRLF, compared byte by byte (a wrong
  byte fails even before the pair is complete);
* after the ``0`` chunk, the trailer section, which ends like a head (``LF [CR] LF``, or
  at once on an empty line). A non-empty section is judged by h11 itself (a synthetic
  chunked request carrying it) so its statuses (400, or 501 for a Transfer-Encoding
  trailer) are h11's; the trailers are then dropped.

A framing error is a ProtocolError: 400 on a request (the connection answers it and
closes), 502 on a response (the exchange closes the upstream connection and, once the
response head went out, cuts the client's).

Limits follow h11's ``max_incomplete_event_size`` check, which runs whenever more bytes are
needed: a chunk-size line or trailer section still incomplete with more than ``limit``
bytes pending is refused (431 on a request). Like h11's, this check depends on how the
bytes were split into reads; both engines see the same reads, so they agree.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import h11

from ..events import ProtocolError
from .framing import Buffer, find_head_end

# RFC 9110 5.6.2 token, 5.6.4 quoted-string (qdtext and quoted-pair, obs-text included),
# RFC 9112 7.1.1 chunk-ext with its BWS. Each repetition starts at a ';' and tokens hold
# no SP, HTAB, ';' or '=', so the match never backtracks far: linear in the line.
_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED: Final = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_EXT: Final = (rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED
               + rb"))?)*")
# 16 hex digits at most: every size fits in 64 bits, and no padding hides a bigger one.
_SIZE_LINE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})" + _EXT + rb"\r\n")

# What precedes a trailer section when it is handed to h11 for its verdict.
_TRAILER_PROBE: Final = (b"POST / HTTP/1.1\r\nhost: probe\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"0\r\n")

_SIZE: Final = 0     # reading a chunk-size line
_DATA: Final = 1     # inside chunk data
_CRLF: Final = 2     # expecting the CRLF after chunk data
_TRAILER: Final = 3  # reading the trailer section


def check_trailer_section(section: bytes, status: int | None) -> None:
    """Raise ProtocolError if h11 refuses ``section`` (lines and blank line) as trailers.

    ``status`` replaces h11's status hint when given (502 for a response).
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=len(section) + 1)
    conn.receive_data(_TRAILER_PROBE + section)
    try:
        conn.next_event()  # the probe's Request
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise ProtocolError(str(exc), exc.error_status_hint if status is None else status) \
            from None
    assert type(event) is h11.EndOfMessage, event


class ChunkedDecoder:
    """Decodes one chunked body; see the module docstring.

    ``status`` is None on the request side (h11's statuses) and 502 on the response side.
    """

    __slots__ = ("_state", "_remaining", "_scan", "_limit", "_status", "done")

    def __init__(self, limit: int, status: int | None) -> None:
        self._state = _SIZE
        self._remaining = 0       # bytes left in the current chunk, or of its CRLF
        # How far into an incomplete chunk-size line or trailer section the search for its
        # end got: the caller hands the unit back from its start with more bytes, and a
        # line trickled in a byte at a time must not be rescanned each time (h11 does the
        # same), which would make it quadratic.
        self._scan = 0
        self._limit = limit
        self._status = status
        self.done = False         # the trailer section has ended: the body is complete

    def _error(self, message: str, status: int) -> ProtocolError:
        return ProtocolError(message, status if self._status is None else self._status)

    def decode(self, buf: Buffer, pos: int, emit: Callable[[bytes], object]) -> int:
        """Consume ``buf[pos:]``, passing body bytes to ``emit``; return the new position.

        Stops at the end of the body (``done``) or when more bytes are needed; then the
        next call must start where this one stopped, with more bytes after it.
        """
        end = len(buf)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                chunk = buf[pos:pos + take]
                emit(chunk if type(chunk) is bytes else bytes(chunk))
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _CRLF
                    self._remaining = 2
            elif state == _CRLF:
                expected = b"\r\n"[2 - self._remaining:]
                got = buf[pos:pos + len(expected)]
                if got != expected[:len(got)]:
                    raise self._error("malformed chunk footer", 400)
                pos += len(got)
                self._remaining -= len(got)
                if not self._remaining:
                    self._state = _SIZE
            elif state == _SIZE:
                scan = pos + self._scan
                eol = buf.find(b"\r\n", scan)
                if eol == -1:
                    # No CRLF yet: an LF, or a CR with a byte after it, is bare. Refuse it
                    # now rather than wait for a CRLF the peer may never send.
                    if buf.find(b"\n", scan) != -1 or buf.find(b"\r", scan, end - 1) != -1:
                        raise self._error("bare CR or LF in a chunk-size line", 400)
                    self._scan = max(0, end - pos - 1)
                    break
                self._scan = 0
                match = _SIZE_LINE.fullmatch(buf, pos, eol + 2)
                if match is None:
                    raise self._error("illegal chunk header", 400)
                size = int(match.group(1), 16)
                pos = eol + 2
                if size:
                    self._state = _DATA
                    self._remaining = size
                else:
                    self._state = _TRAILER
            else:
                # h11's maybe_extract_lines: an empty line at once, or up to LF [CR] LF.
                if buf[pos] == 0x0A:
                    self.done = True
                    return pos + 1
                if buf[pos] == 0x0D and pos + 1 < end and buf[pos + 1] == 0x0A:
                    self.done = True
                    return pos + 2
                section_end = find_head_end(buf, pos, pos + self._scan)
                if section_end == -1:
                    self._scan = max(0, end - pos - 2)
                    break
                check_trailer_section(bytes(buf[pos:section_end]), self._status)
                self.done = True
                return section_end
        if self._state == _SIZE or self._state == _TRAILER:
            if end - pos > self._limit:
                raise self._error("chunk header or trailers too large", 431)
        return pos

    def eof(self, pending: int) -> ProtocolError:
        """The error for EOF inside the body, with ``pending`` undecoded bytes left over."""
        if pending > self._limit:
            return self._error("chunk header or trailers too large", 431)
        if pending:
            return self._error("peer unexpectedly closed connection", 400)
        return self._error("peer closed connection without sending complete message body "
                           "(incomplete chunked read)", 400)
