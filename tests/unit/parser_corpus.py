"""Raw HTTP/1.1 messages for the parser engines, each with the verdict the gateway gives.

Every case is a byte stream as a peer would send it, followed by EOF. ``status`` is None
when the stream parses to the end without error, else the status of the ProtocolError the
stream ends with (a pipelined stream may parse good requests before it). Both engines must
reach that verdict through the very same events (test_parser_differential.py); ``replay``
turns a parser run into the comparable outcome.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from dakia_prefork.http.events import CLOSED, ProtocolError, RequestHead, RequestParser, \
    ResponseHead, ResponseParser

Outcome = list[object]


class RequestCase(NamedTuple):
    name: str
    raw: bytes
    status: int | None
    limit: int = 65536


class ResponseCase(NamedTuple):
    name: str
    method: bytes
    raw: bytes
    status: int | None       # None or 502
    limit: int = 65536


def _req(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    """A request from its line, header lines and body, with CRLF line ends."""
    return b"\r\n".join((line, *headers)) + b"\r\n\r\n" + body


_TYPICAL = _req(b"GET /api/v1/items?id=42&sort=desc HTTP/1.1", b"Host: api.example.com",
                b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101",
                b"Accept: application/json, text/plain, */*",
                b"Accept-Language: en-US,en;q=0.5", b"Accept-Encoding: gzip, deflate, br",
                b"Connection: keep-alive", b"Cookie: session=abc123; theme=dark",
                b"X-Request-Id: 7f9c2ba4-e88f-11ee-9d3b-0242ac120002")
_CHUNKED_HEAD = _req(b"POST /upload HTTP/1.1", b"Host: a", b"Transfer-Encoding: chunked")
_GET = _req(b"GET / HTTP/1.1", b"Host: a")

REQUESTS: list[RequestCase] = [
    # --- accepted -------------------------------------------------------------------------
    RequestCase("simple GET", _GET, None),
    RequestCase("typical browser GET", _TYPICAL, None),
    RequestCase("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n", None),
    RequestCase("HTTP/1.0 keep-alive", _req(b"GET / HTTP/1.0", b"Connection: keep-alive"),
                None),
    RequestCase("HTTP/1.1 Connection: close", _req(b"GET / HTTP/1.1", b"Host: a",
                                                   b"Connection: close"), None),
    RequestCase("HEAD", _req(b"HEAD /x HTTP/1.1", b"Host: a"), None),
    RequestCase("POST with Content-Length",
                _req(b"POST /form HTTP/1.1", b"Host: a", b"Content-Type: text/plain",
                     b"Content-Length: 11", body=b"hello world"), None),
    RequestCase("POST with Content-Length 0",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 0"), None),
    RequestCase("Content-Length with leading zeros",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 0005", body=b"abcde"),
                None),
    RequestCase("Content-Length list of equal values (h11 collapses it)",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 5, 5", body=b"abcde"),
                None),
    RequestCase("repeated equal Content-Length",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 3",
                     b"Content-Length: 3", body=b"abc"), None),
    RequestCase("HTTP/1.0 POST", _req(b"POST / HTTP/1.0", b"Content-Length: 2", body=b"ok"),
                None),
    RequestCase("DELETE with a body",
                _req(b"DELETE /r/1 HTTP/1.1", b"Host: a", b"Content-Length: 2", body=b"{}"),
                None),
    RequestCase("chunked", _CHUNKED_HEAD + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", None),
    RequestCase("chunked with extensions",
                _CHUNKED_HEAD + b"5;name=value\r\nhello\r\n3;a;b=\"q s\"\r\nabc\r\n0;z\r\n\r\n",
                None),
    RequestCase("chunked with trailers",
                _CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-Checksum: 123\r\nX-Other: a b\r\n\r\n",
                None),
    RequestCase("chunked, upper-case hex and 16 digits",
                _CHUNKED_HEAD + b"A\r\n0123456789\r\n000000000000000B\r\nabcdefghijk\r\n"
                b"0\r\n\r\n", None),
    RequestCase("chunked, lower-case hex", _CHUNKED_HEAD + b"a\r\n0123456789\r\n0\r\n\r\n",
                None),
    RequestCase("chunk extensions with BWS around ; and = (RFC 9112 7.1.1)",
                _CHUNKED_HEAD + b"3 ;x\r\nabc\r\n2\t; a = b ;c\r\nde\r\n0;z = \"q\"\r\n\r\n",
                None),
    RequestCase("chunk extension with a quoted-pair and obs-text",
                _CHUNKED_HEAD + b'3;a="x\\"y\xe9 z"\r\nabc\r\n0\r\n\r\n', None),
    RequestCase("chunk extension with every tchar",
                _CHUNKED_HEAD + b"3;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~\r\nabc\r\n0\r\n\r\n",
                None),
    RequestCase("Transfer-Encoding: Chunked in upper case",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Transfer-Encoding: CHUNKED",
                     body=b"1\r\nx\r\n0\r\n\r\n"), None),
    RequestCase("Expect: 100-continue",
                _req(b"PUT /big HTTP/1.1", b"Host: a", b"Expect: 100-continue",
                     b"Content-Length: 4", body=b"data"), None),
    RequestCase("Upgrade: websocket (a handshake: the parser pauses after it)",
                _req(b"GET /ws HTTP/1.1", b"Host: a", b"Upgrade: websocket",
                     b"Connection: Upgrade", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                     b"Sec-WebSocket-Version: 13"), None),
    RequestCase("WebSocket handshake, then frame bytes (kept, never parsed)",
                _req(b"GET /ws HTTP/1.1", b"Host: a", b"Upgrade: websocket",
                     b"Connection: keep-alive, Upgrade") + b"\x81\x85\x00\x00\x00\x00hello",
                None),
    RequestCase("Upgrade with a body, then a pipelined request",
                _req(b"POST /u HTTP/1.1", b"Host: a", b"Upgrade: h2c", b"Connection: upgrade",
                     b"Content-Length: 3", body=b"abc") + _GET, None),
    RequestCase("absolute-form target",
                _req(b"GET http://example.com/a?b=c HTTP/1.1", b"Host: example.com"), None),
    RequestCase("absolute-form https target",
                _req(b"GET HTTPS://example.com:8443/ HTTP/1.1", b"Host: example.com"), None),
    RequestCase("asterisk-form OPTIONS", _req(b"OPTIONS * HTTP/1.1", b"Host: a"), None),
    RequestCase("target with percent-encoding and query",
                _req(b"GET /a%20b/c;p=1?q=%7E&r=[x] HTTP/1.1", b"Host: a"), None),
    RequestCase("target with a fragment (never part of a request target)",
                _req(b"GET /a%20b/c;p=1?q=%7E&r=[x]#frag HTTP/1.1", b"Host: a"), 400),
    RequestCase("extension method", _req(b"PURGE /cache HTTP/1.1", b"Host: a"), None),
    RequestCase("unknown token method (llhttp refuses, h11 takes it)",
                _req(b"FOO-BAR_1 / HTTP/1.1", b"Host: a"), None),
    RequestCase("lower-case method (a different token)", _req(b"get / HTTP/1.1", b"Host: a"),
                None),
    RequestCase("obs-text in a value", _req(b"GET / HTTP/1.1", b"Host: a",
                                            b"X-Name: caf\xc3\xa9 \xff"), None),
    RequestCase("HTAB inside and around a value",
                _req(b"GET / HTTP/1.1", b"Host: a", b"X-Tab:\ta\tb \t"), None),
    RequestCase("empty and blank values",
                _req(b"GET / HTTP/1.1", b"Host: a", b"X-Empty:", b"X-Blank:    "), None),
    RequestCase("trailing whitespace stripped from values",
                _req(b"GET / HTTP/1.1", b"Host: a  ", b"Accept: */*\t"), None),
    RequestCase("header names of every token character",
                _req(b"GET / HTTP/1.1", b"Host: a", b"!#$%&'*+-.^_`|~09azAZ: v"), None),
    RequestCase("Transfer_Encoding is just another header",
                _req(b"GET / HTTP/1.1", b"Host: a", b"Transfer_Encoding: chunked"), None),
    RequestCase("one hundred headers",
                _req(b"GET / HTTP/1.1", b"Host: a",
                     *(b"X-H%d: value-%d" % (i, i) for i in range(100))), None),
    RequestCase("head exactly at the limit",
                _req(b"GET / HTTP/1.1", b"Host: a", b"X: " + b"v" * 992), None, limit=1024),
    RequestCase("pipelined GETs", _GET + _req(b"GET /2 HTTP/1.1", b"Host: b") + _GET, None),
    RequestCase("pipelined GET, POST, chunked",
                _GET + _req(b"POST /p HTTP/1.1", b"Host: a", b"Content-Length: 4", body=b"abcd")
                + _CHUNKED_HEAD + b"2\r\nxy\r\n0\r\n\r\n" + _GET, None),
    RequestCase("empty stream", b"", None),
    # --- request smuggling classics -------------------------------------------------------
    RequestCase("CL.TE", _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 6",
                              b"Transfer-Encoding: chunked", body=b"0\r\n\r\nG"), 400),
    RequestCase("TE.CL", _req(b"POST / HTTP/1.1", b"Host: a", b"Transfer-Encoding: chunked",
                              b"Content-Length: 3", body=b"8\r\nSMUGGLED\r\n0\r\n\r\n"), 400),
    RequestCase("TE: xchunked", _req(b"POST / HTTP/1.1", b"Host: a",
                                     b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), 501),
    RequestCase("TE: chunked, identity",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Transfer-Encoding: chunked, identity",
                     body=b"0\r\n\r\n"), 501),
    RequestCase("TE: gzip, chunked", _req(b"POST / HTTP/1.1", b"Host: a",
                                          b"Transfer-Encoding: gzip, chunked",
                                          body=b"0\r\n\r\n"), 501),
    RequestCase("TE: identity", _req(b"POST / HTTP/1.1", b"Host: a",
                                     b"Transfer-Encoding: identity"), 501),
    RequestCase("two TE headers", _req(b"POST / HTTP/1.1", b"Host: a",
                                       b"Transfer-Encoding: chunked",
                                       b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 501),
    RequestCase("TE with space before the colon",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Transfer-Encoding : chunked",
                     body=b"0\r\n\r\n"), 400),
    RequestCase("TE folded onto the next line",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Transfer-Encoding:", b" chunked",
                     body=b"0\r\n\r\n"), 400),
    RequestCase("TE with a vertical tab", _req(b"POST / HTTP/1.1", b"Host: a",
                                               b"Transfer-Encoding:\x0bchunked",
                                               body=b"0\r\n\r\n"), 400),
    RequestCase("TE in an HTTP/1.0 request",
                _req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
                400),
    RequestCase("two different Content-Lengths",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 3",
                     b"Content-Length: 4", body=b"abcd"), 400),
    RequestCase("Content-Length list of different values",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 3, 4", body=b"abcd"),
                400),
    RequestCase("negative Content-Length",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: -1"), 400),
    RequestCase("Content-Length with a sign",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: +3", body=b"abc"), 400),
    RequestCase("Content-Length over 2**63 - 1",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 99999999999999999999"),
                400),
    RequestCase("Content-Length of 21 digits",
                _req(b"POST / HTTP/1.1", b"Host: a",
                     b"Content-Length: 000000000000000000003", body=b"abc"), 400),
    RequestCase("Content-Length in hex",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 0x3", body=b"abc"), 400),
    RequestCase("empty Content-Length", _req(b"POST / HTTP/1.1", b"Host: a",
                                             b"Content-Length:"), 400),
    RequestCase("Content-Length with inner space",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 1 0"), 400),
    # --- malformed heads ------------------------------------------------------------------
    RequestCase("obs-fold", _req(b"GET / HTTP/1.1", b"Host: a", b"X-A: one", b"\ttwo"), 400),
    RequestCase("continuation line first",
                _req(b"GET / HTTP/1.1", b" Host: a"), 400),
    RequestCase("space before colon", _req(b"GET / HTTP/1.1", b"Host : a"), 400),
    RequestCase("empty header name", _req(b"GET / HTTP/1.1", b"Host: a", b": nameless"), 400),
    RequestCase("header line without a colon", _req(b"GET / HTTP/1.1", b"Host: a", b"Bad"),
                400),
    RequestCase("bare LF line ends", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    RequestCase("bare LF ending the head", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    RequestCase("bare CR in a value", _req(b"GET / HTTP/1.1", b"Host: a", b"X: a\rb"), 400),
    RequestCase("bare CR ending a line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    RequestCase("NUL in a value", _req(b"GET / HTTP/1.1", b"Host: a", b"X: a\x00b"), 400),
    RequestCase("NUL in the target", _req(b"GET /a\x00b HTTP/1.1", b"Host: a"), 400),
    RequestCase("SOH in a value (h11 would keep it)",
                _req(b"GET / HTTP/1.1", b"Host: a", b"Cookie: _ga=\x01x"), 400),
    RequestCase("DEL in a value", _req(b"GET / HTTP/1.1", b"Host: a", b"X: a\x7f"), 400),
    RequestCase("ESC in a header name", _req(b"GET / HTTP/1.1", b"Host: a", b"X\x1bY: v"), 400),
    RequestCase("control character in the method", _req(b"G\x01T / HTTP/1.1", b"Host: a"),
                400),
    RequestCase("non-token method", _req(b"GE(T / HTTP/1.1", b"Host: a"), 400),
    RequestCase("method with a slash", _req(b"GET/ / HTTP/1.1", b"Host: a"), 400),
    RequestCase("two spaces after the method", _req(b"GET  / HTTP/1.1", b"Host: a"), 400),
    RequestCase("tab after the method", _req(b"GET\t/ HTTP/1.1", b"Host: a"), 400),
    RequestCase("space at the end of the request line",
                _req(b"GET / HTTP/1.1 ", b"Host: a"), 400),
    RequestCase("space in the target", _req(b"GET /a b HTTP/1.1", b"Host: a"), 400),
    RequestCase("non-ASCII target", _req(b"GET /caf\xc3\xa9 HTTP/1.1", b"Host: a"), 400),
    RequestCase("HTTP/0.9 simple request", b"GET /\r\n\r\n", 400),
    RequestCase("HTTP/0.9 as a version", _req(b"GET / HTTP/0.9", b"Host: a"), 505),
    RequestCase("HTTP/1.2", _req(b"GET / HTTP/1.2", b"Host: a"), 505),
    RequestCase("HTTP/2.0", _req(b"GET / HTTP/2.0", b"Host: a"), 505),
    RequestCase("HTTP/2 connection preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    RequestCase("lower-case http/1.1", _req(b"GET / http/1.1", b"Host: a"), 400),
    RequestCase("HTTP/1.10", _req(b"GET / HTTP/1.10", b"Host: a"), 400),
    RequestCase("HTTP/11", _req(b"GET / HTTP/11", b"Host: a"), 400),
    RequestCase("missing version name", _req(b"GET / 1.1", b"Host: a"), 400),
    RequestCase("missing Host", _req(b"GET / HTTP/1.1", b"Accept: */*"), 400),
    RequestCase("two Hosts", _req(b"GET / HTTP/1.1", b"Host: a", b"Host: b"), 400),
    RequestCase("two equal Hosts", _req(b"GET / HTTP/1.1", b"Host: a", b"host: a"), 400),
    RequestCase("two Hosts in HTTP/1.0", _req(b"GET / HTTP/1.0", b"Host: a", b"Host: b"), 400),
    RequestCase("head over the limit",
                _req(b"GET / HTTP/1.1", b"Host: a", b"X: " + b"v" * 993), 431, limit=1024),
    RequestCase("huge header (64 KiB limit)",
                _req(b"GET / HTTP/1.1", b"Host: a", b"X-Big: " + b"x" * 70000), 431),
    RequestCase("request line over the limit", _req(b"GET /" + b"a" * 1100 + b" HTTP/1.1",
                                                    b"Host: a"), 414, limit=1024),
    RequestCase("endless request line", b"GET /" + b"a" * 1100, 414, limit=1024),
    RequestCase("endless headers", b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 200, 431,
                limit=1024),
    RequestCase("empty line before the request", b"\r\n" + _GET, 400),
    RequestCase("bare LF before the request", b"\n" + _GET, 400),
    RequestCase("space before the request", b" " + _GET, 400),
    RequestCase("TLS ClientHello on a plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03",
                400),
    RequestCase("binary garbage", b"\xff\xfe\xfd GET / HTTP/1.1\r\n\r\n", 400),
    RequestCase("truncated head", b"GET / HTTP/1.1\r\nHost: a\r\n", 400),
    # --- gateway policy --------------------------------------------------------------------
    RequestCase("CONNECT", _req(b"CONNECT example.com:443 HTTP/1.1", b"Host: example.com:443"),
                405),
    RequestCase("authority-form outside CONNECT",
                _req(b"GET example.com:443 HTTP/1.1", b"Host: a"), 400),
    RequestCase("relative target", _req(b"GET a/b HTTP/1.1", b"Host: a"), 400),
    RequestCase("asterisk-form outside OPTIONS", _req(b"GET * HTTP/1.1", b"Host: a"), 400),
    RequestCase("absolute-form with another scheme",
                _req(b"GET ftp://example.com/ HTTP/1.1", b"Host: a"), 400),
    # --- bodies -------------------------------------------------------------------------------
    RequestCase("bad chunk size", _CHUNKED_HEAD + b"xyz\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("hex prefix in chunk size", _CHUNKED_HEAD + b"0x3\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("negative chunk size", _CHUNKED_HEAD + b"-3\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("chunk size of 21 digits",
                _CHUNKED_HEAD + b"000000000000000000003\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("chunk size of 17 digits (leading zeros)",
                _CHUNKED_HEAD + b"00000000000000003\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("chunk size of 2**64", _CHUNKED_HEAD + b"10000000000000000\r\nabc\r\n", 400),
    RequestCase("chunk size of 20 digits (h11 takes it)",
                _CHUNKED_HEAD + b"00000000000000000003\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("chunk size of 2**64 - 1 (valid, the body is cut)",
                _CHUNKED_HEAD + b"ffffffffffffffff\r\nabc", 400),
    RequestCase("whitespace after the size (h11 takes it)",
                _CHUNKED_HEAD + b"3 \t\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("space after the size", _CHUNKED_HEAD + b"3 \r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("space before the size", _CHUNKED_HEAD + b" 3\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("whitespace after an extension",
                _CHUNKED_HEAD + b"3;a=b \r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("bare CR in an extension (h2o's desync)",
                _CHUNKED_HEAD + b"5;a=b\r\r\nhello\r\n0\r\n\r\n", 400),
    RequestCase("bare CR ending the size line", _CHUNKED_HEAD + b"3\rabc\r\n0\r\n\r\n", 400),
    RequestCase("bare CR inside the size", _CHUNKED_HEAD + b"1\r3\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("bare LF in an extension",
                _CHUNKED_HEAD + b"3;a\nb\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("LF CR ending the size line", _CHUNKED_HEAD + b"3\n\rabc\r\n0\r\n\r\n", 400),
    RequestCase("extension without a name", _CHUNKED_HEAD + b"3;\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("extension with an empty value",
                _CHUNKED_HEAD + b"3;a=\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("extension name not a token",
                _CHUNKED_HEAD + b"3;a@b\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("extension value not a token",
                _CHUNKED_HEAD + b"3;a=b,c\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("extension value with a space",
                _CHUNKED_HEAD + b"3;a=b c\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("unterminated quoted extension value",
                _CHUNKED_HEAD + b'3;a="bc\r\nabc\r\n0\r\n\r\n', 400),
    RequestCase("control byte in a quoted extension value",
                _CHUNKED_HEAD + b'3;a="b\x01c"\r\nabc\r\n0\r\n\r\n', 400),
    RequestCase("NUL in an extension", _CHUNKED_HEAD + b"3;a\x00\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("extension without ';'", _CHUNKED_HEAD + b"3a=b\r\nab\r\n0\r\n\r\n", 400),
    RequestCase("missing CRLF after chunk data",
                _CHUNKED_HEAD + b"3\r\nabc0\r\n\r\n", 400),
    RequestCase("CR only after chunk data", _CHUNKED_HEAD + b"3\r\nabc\r0\r\n\r\n", 400),
    RequestCase("chunk data shorter than its size",
                _CHUNKED_HEAD + b"5\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("TE.CL: a smuggled request in a chunk the CL side would see",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 4",
                     b"Transfer-Encoding: chunked",
                     body=b"5c\r\nGPOST / HTTP/1.1\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n"),
                400),
    RequestCase("TE.TE: chunked obfuscated by a second Transfer-Encoding",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Transfer-Encoding: chunked",
                     b"Transfer-encoding: cow", body=b"0\r\n\r\n"), 501),
    RequestCase("chunked, then a smuggled request hidden by a 17-digit size",
                _CHUNKED_HEAD + b"00000000000000000\r\n\r\n" + _GET, 400),
    RequestCase("chunked, then a smuggled request behind an ext with bare CR",
                _CHUNKED_HEAD + b"0;a\r\r\n\r\n" + _GET, 400),
    RequestCase("empty chunk-size line", _CHUNKED_HEAD + b"\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    RequestCase("bare LF after the chunk size", _CHUNKED_HEAD + b"3\nabc\r\n0\r\n\r\n", 400),
    RequestCase("bare LF after chunk data", _CHUNKED_HEAD + b"3\r\nabc\n0\r\n\r\n", 400),
    RequestCase("chunk data longer than its size",
                _CHUNKED_HEAD + b"3\r\nabcdef\r\n0\r\n\r\n", 400),
    RequestCase("trailer with space before colon",
                _CHUNKED_HEAD + b"0\r\nX-T : 1\r\n\r\n", 400),
    RequestCase("Transfer-Encoding trailer", _CHUNKED_HEAD + b"0\r\nTransfer-Encoding: gzip"
                b"\r\n\r\n", 501),
    RequestCase("conflicting Content-Length trailers",
                _CHUNKED_HEAD + b"0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    RequestCase("Content-Length body cut by EOF",
                _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 10", body=b"abc"), 400),
    RequestCase("chunked body cut by EOF", _CHUNKED_HEAD + b"5\r\nhel", 400),
    RequestCase("chunked body cut before its last chunk", _CHUNKED_HEAD + b"5\r\nhello\r\n",
                400),
    RequestCase("chunked body cut inside the trailers", _CHUNKED_HEAD + b"0\r\nX: y\r\n", 400),
    RequestCase("chunk-size line over the limit",
                _CHUNKED_HEAD + b"1;" + b"e" * 2000, 431, limit=1024),
    # --- pipelines ---------------------------------------------------------------------------
    RequestCase("good request, then a bad one", _GET + _req(b"GET / HTTP/1.1"), 400),
    RequestCase("good request, then CL.TE", _GET + _req(b"POST / HTTP/1.1", b"Host: a",
                                                        b"Content-Length: 4",
                                                        b"Transfer-Encoding: chunked",
                                                        body=b"0\r\n\r\n"), 400),
    RequestCase("data after Connection: close",
                _req(b"GET / HTTP/1.1", b"Host: a", b"Connection: close") + _GET, 400),
    RequestCase("CRLF after Connection: close",
                _req(b"GET / HTTP/1.1", b"Host: a", b"Connection: close") + b"\r\n", 400),
    RequestCase("data after an HTTP/1.0 request", b"GET / HTTP/1.0\r\n\r\n" + _GET, 400),
    RequestCase("CRLF after a body", _req(b"POST / HTTP/1.1", b"Host: a", b"Content-Length: 2",
                                          body=b"ok\r\n"), 400),
]


_OK = b"HTTP/1.1 200 OK\r\n"

RESPONSES: list[ResponseCase] = [
    # --- accepted -------------------------------------------------------------------------
    ResponseCase("Content-Length", b"GET",
                 _OK + b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", None),
    ResponseCase("typical response", b"GET",
                 _OK + b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: upstream/1.0\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 2\r\nCache-Control: "
                 b"no-store\r\nVary: Accept-Encoding\r\nX-Request-Id: 42\r\n\r\n{}", None),
    ResponseCase("chunked", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n"
                 b"0\r\n\r\n", None),
    ResponseCase("chunked with trailers", b"POST",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nServer-Timing: "
                 b"db;dur=53\r\n\r\n", None),
    ResponseCase("close-delimited", b"GET", _OK + b"Content-Type: text/html\r\n\r\n<html>",
                 None),
    ResponseCase("close-delimited HTTP/1.0", b"GET", b"HTTP/1.0 200 OK\r\n\r\nold school",
                 None),
    ResponseCase("HTTP/1.0 keep-alive", b"GET",
                 b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                 None),
    ResponseCase("Connection: close", b"GET",
                 _OK + b"Connection: close\r\nContent-Length: 2\r\n\r\nok", None),
    ResponseCase("204", b"DELETE", b"HTTP/1.1 204 No Content\r\n\r\n", None),
    ResponseCase("304 with a Content-Length", b"GET",
                 b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"x\"\r\n\r\n",
                 None),
    ResponseCase("HEAD with a Content-Length", b"HEAD",
                 _OK + b"Content-Length: 100\r\n\r\n", None),
    ResponseCase("HEAD answered with a body (trailing data)", b"HEAD",
                 _OK + b"Content-Length: 5\r\n\r\nhello", None),
    ResponseCase("100 Continue, then 200", b"PUT",
                 b"HTTP/1.1 100 Continue\r\n\r\n" + _OK + b"Content-Length: 0\r\n\r\n", None),
    ResponseCase("103 Early Hints, then 200", b"GET",
                 b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                 + _OK + b"Content-Length: 1\r\n\r\nx", None),
    ResponseCase("no reason phrase", b"GET", b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
                 None),
    ResponseCase("empty reason phrase", b"GET",
                 b"HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", None),
    ResponseCase("reason with spaces, HTAB and obs-text", b"GET",
                 b"HTTP/1.1 200  Tr\xe8s\tbien \r\nContent-Length: 0\r\n\r\n", None),
    ResponseCase("status 599", b"GET", b"HTTP/1.1 599 Custom\r\nContent-Length: 0\r\n\r\n",
                 None),
    ResponseCase("repeated equal Content-Length", b"GET",
                 _OK + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok", None),
    ResponseCase("Content-Length 0 then trailing bytes", b"GET",
                 _OK + b"Content-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n", None),
    # --- refused (502) --------------------------------------------------------------------
    ResponseCase("101 Switching Protocols", b"GET",
                 b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n\r\n", 502),
    ResponseCase("CL and TE", b"GET",
                 _OK + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 502),
    ResponseCase("TE: gzip", b"GET", _OK + b"Transfer-Encoding: gzip\r\n\r\nabc", 502),
    ResponseCase("TE in HTTP/1.0", b"GET",
                 b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 502),
    ResponseCase("two different Content-Lengths", b"GET",
                 _OK + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 502),
    ResponseCase("HTTP/2.0", b"GET", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", 502),
    ResponseCase("HTTP/1.2", b"GET", b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", 502),
    ResponseCase("status 099", b"GET", b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n", 502),
    ResponseCase("status 1000", b"GET", b"HTTP/1.1 1000 High\r\nContent-Length: 0\r\n\r\n",
                 502),
    ResponseCase("two-digit status", b"GET", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
                 502),
    ResponseCase("NUL in the reason", b"GET",
                 b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n", 502),
    ResponseCase("form feed in the reason", b"GET",
                 b"HTTP/1.1 200 O\x0cK\r\nContent-Length: 0\r\n\r\n", 502),
    ResponseCase("bare LF line ends", b"GET", b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", 502),
    ResponseCase("obs-fold", b"GET", _OK + b"X: a\r\n b\r\nContent-Length: 0\r\n\r\n", 502),
    ResponseCase("control character in a value", b"GET",
                 _OK + b"X: \x01\r\nContent-Length: 0\r\n\r\n", 502),
    ResponseCase("lower-case http", b"GET", b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                 502),
    ResponseCase("not HTTP at all", b"GET", b"SSH-2.0-OpenSSH_9.6\r\n", 502),
    ResponseCase("empty line before the status line", b"GET",
                 b"\r\n" + _OK + b"Content-Length: 0\r\n\r\n", 502),
    ResponseCase("Content-Length body cut by EOF", b"GET",
                 _OK + b"Content-Length: 10\r\n\r\nabc", 502),
    ResponseCase("chunked body cut by EOF", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab", 502),
    ResponseCase("bad chunk size", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 502),
    ResponseCase("chunk size of 17 digits", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n00000000000000002\r\nab\r\n0\r\n\r\n",
                 502),
    ResponseCase("whitespace after the chunk size", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n2 \r\nab\r\n0\r\n\r\n", 502),
    ResponseCase("bare CR in a chunk extension", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n2;a=b\r\r\nab\r\n0\r\n\r\n", 502),
    ResponseCase("bare LF after the chunk size", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n2\nab\r\n0\r\n\r\n", 502),
    ResponseCase("bad chunk extension token", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n2;a(b)\r\nab\r\n0\r\n\r\n", 502),
    ResponseCase("missing CRLF after chunk data", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n0\r\n\r\n", 502),
    ResponseCase("chunked with extensions and BWS", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n2 ; a = \"b\"\r\nab\r\n0\r\n\r\n",
                 None),
    ResponseCase("chunk-size line over the limit", b"GET",
                 _OK + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"e" * 2000, 502, limit=1024),
    ResponseCase("head cut by EOF", b"GET", b"HTTP/1.1 200 OK\r\nContent-Le", 502),
    ResponseCase("EOF before any byte", b"GET", b"", 502),
    ResponseCase("EOF after a 100 Continue", b"GET", b"HTTP/1.1 100 Continue\r\n\r\n", 502),
    ResponseCase("head over the limit", b"GET",
                 _OK + b"X: " + b"v" * 2000 + b"\r\nContent-Length: 0\r\n\r\n", 502, limit=1024),
    ResponseCase("Content-Length over 2**63 - 1", b"GET",
                 _OK + b"Content-Length: 10000000000000000000\r\n\r\n", 502),
]


def fields(head: RequestHead | ResponseHead) -> tuple[object, ...]:
    """Every field of a head, for comparison."""
    return (type(head).__name__,
            *((name, getattr(head, name)) for name in type(head).__slots__))


def verdict(outcome: Outcome) -> int | None:
    """The status an outcome ends with, or None when it ends without error."""
    for item in reversed(outcome):
        if isinstance(item, tuple) and item[0] == "error":
            status: int = item[1]
            return status
    return None


def replay(parser: RequestParser | ResponseParser, chunks: Iterable[bytes]) -> Outcome:
    """Feed ``chunks`` and then EOF, taking every event after each feed.

    The outcome lists heads field by field, each run of body bytes joined into one bytes,
    END and CLOSED, and ("error", status) if a ProtocolError ends the stream; for a response
    parser, ("trailing", trailing_data) comes last. Empty or non-bytes body data fails.
    """
    out: Outcome = []

    def drain() -> None:
        while (event := parser.next_event()) is not None:
            if isinstance(event, (bytes, bytearray)):
                assert type(event) is bytes and event, f"bad body data {event!r}"
                if out and type(out[-1]) is bytes:
                    out[-1] += event
                else:
                    out.append(event)
            elif isinstance(event, (RequestHead, ResponseHead)):
                out.append(fields(event))
            else:
                out.append(repr(event))
                if event is CLOSED:
                    return

    try:
        for chunk in chunks:
            parser.feed(chunk)
            drain()
        parser.feed(b"")
        drain()
    except ProtocolError as exc:
        out.append(("error", exc.status))
    if hasattr(parser, "trailing_data"):
        out.append(("trailing", parser.trailing_data))
    return out
