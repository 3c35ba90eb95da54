"""Gateway policy on parsed heads, and the framing fields derived from their headers.

Theory of operation
-------------------
Both engines end a head's journey here, with the fields h11 would give for it: the method,
target and version bytes, and the header list with lower-cased names and stripped values,
in which h11 has collapsed ``Content-Length: 5, 5`` to ``5``, dropped repeated equal
Content-Length headers and lower-cased Transfer-Encoding. One function per direction then

1. checks that the header list is in that canonical form. The h11 engine always passes it;
   the httptools engine passes what llhttp parsed, and when it is not canonical the answer
   is ``None``: the caller must ask the reference (h11) for the verdict, because llhttp's
   fields alone cannot tell what h11 would have said;
2. applies the gateway's own policy, which runs after h11's checks in both engines so that
   the status of an input that breaks several rules is the same in both;
3. derives content_length, chunked/body, keep_alive and expect_continue from the headers
   with one rule set, so the two engines cannot drift apart on them.

Policy (RFC 9112 unless noted): only HTTP/1.0 and 1.1 (505); CONNECT is not proxied (405);
the target must be origin-form, absolute-form with an http(s) scheme, or ``*`` for OPTIONS
(400), and an absolute-form one leaves here as origin-form with its authority as the Host
(3.2.2; message/target.py), so nothing above ever sees two hosts in one request; Content-Length with Transfer-Encoding is refused (6.1 allows it; it is the classic
smuggling vector), as is Transfer-Encoding in an HTTP/1.0 message (6.1: its framing must be
treated as faulty); a Content-Length over 2**63 - 1 is refused (400), as an upstream that
wraps it around would read the rest of the body as a new request. Responses: the same rules,
all answered with 502, and a 101 is refused unless the request was a WebSocket handshake.

WebSocket (RFC 6455 4.1): a request is a handshake (``RequestHead.upgrade``) when it is an
HTTP/1.1 GET without a body whose Upgrade names ``websocket`` and whose Connection names
``upgrade`` (and not ``close``). Only then does the gateway forward the upgrade; any other
Upgrade (``h2c``, ``TLS/1.0``, a WebSocket over HTTP/1.0 or with a body) is dropped as a
hop-by-hop header, so the request goes on as plain HTTP, which RFC 9110 7.8 allows a server
to do. The answer to a handshake may be a 101 whose Upgrade names ``websocket``: the
parser's last event (``body`` "none", not keep-alive), after which the bytes are not HTTP.
A 101 naming anything else is a broken upstream (502).
"""
from __future__ import annotations

import re
from typing import Final, Literal

from ...message.target import origin_form, split_absolute, with_host
from ..events import Headers, ProtocolError, RequestHead, ResponseHead

MAX_CONTENT_LENGTH: Final = 2**63 - 1

# h11 refuses Content-Length values with more digits (CONTENT_LENGTH_MAX_DIGITS).
_CL_MAX_DIGITS: Final = 20

# Header names whose values this module reads; everything else passes untouched.
_HOST, _LENGTH, _CODING, _CONNECTION, _EXPECT, _UPGRADE = range(6)
_INTEREST: Final = {b"host": _HOST, b"content-length": _LENGTH,
                    b"transfer-encoding": _CODING, b"connection": _CONNECTION,
                    b"expect": _EXPECT, b"upgrade": _UPGRADE}

_ABSOLUTE_FORM: Final = re.compile(rb"[hH][tT][tT][pP][sS]?://[^/?#]")

BodyKind = Literal["none", "length", "chunked", "close"]


def comma_tokens(values: list[bytes]) -> list[bytes]:
    """The lower-cased, stripped, non-empty members of comma-separated header values.

    The same reading as h11's ``get_comma_header``.
    """
    tokens = []
    for value in values:
        for token in value.lower().split(b","):
            token = token.strip()
            if token:
                tokens.append(token)
    return tokens


def is_websocket_handshake(method: bytes, version: bytes, upgrade: list[bytes],
                           connection: list[bytes] | None, has_body: bool) -> bool:
    """Whether a request with these Upgrade values asks for a WebSocket (module docstring).

    Called only when an Upgrade header is present, so a plain request pays nothing for it."""
    if method != b"GET" or version != b"1.1" or has_body or connection is None:
        return False
    tokens = comma_tokens(connection)
    return (b"upgrade" in tokens and b"close" not in tokens
            and b"websocket" in comma_tokens(upgrade))


def keep_alive(version: bytes, connection: list[bytes] | None) -> bool:
    """Whether a message leaves its connection reusable, from its version and Connection.

    HTTP/1.1: unless ``close``. HTTP/1.0: only with ``keep-alive`` (and no ``close``).
    """
    if connection is None:
        return version == b"1.1"
    if len(connection) == 1 and b"," not in connection[0]:
        token = connection[0].lower()  # the common case, one token: skip the splitting
        return token != b"close" and (version == b"1.1" or token == b"keep-alive")
    tokens = comma_tokens(connection)
    if b"close" in tokens:
        return False
    return version == b"1.1" or b"keep-alive" in tokens


def _absolute_form(method: bytes, target: bytes,
                   headers: Headers) -> tuple[bytes, Headers]:
    """(target, headers) for a target that is not origin-form (checked by the caller): ``*``
    for OPTIONS as it is; absolute-form as origin-form, its authority the Host (see
    message/target.py); anything else is refused."""
    if target == b"*":
        if method == b"OPTIONS":
            return target, headers
    elif _ABSOLUTE_FORM.match(target):
        parts = split_absolute(target)
        if parts is not None:
            authority, rest = parts
            return origin_form(rest, method), with_host(headers, authority)
    raise ProtocolError("invalid request target", 400)


def request_head(method: bytes, target: bytes, version: bytes,
                 headers: Headers) -> RequestHead | None:
    """Build the RequestHead of a head whose grammar h11 accepts, or return None.

    None: the headers are not in h11's canonical form (see the module docstring), so the
    verdict must come from the reference. Raises ProtocolError for the gateway policy.
    """
    hosts = 0
    length: bytes | None = None
    chunked = False
    connection: list[bytes] | None = None
    expect: list[bytes] | None = None
    upgrade: list[bytes] | None = None
    for name, value in headers:
        kind = _INTEREST.get(name)
        if kind is None:
            continue
        if kind == _HOST:
            hosts += 1
        elif kind == _UPGRADE:
            if upgrade is None:
                upgrade = [value]
            else:
                upgrade.append(value)
        elif kind == _LENGTH:
            if length is not None or not value.isdigit() or len(value) > _CL_MAX_DIGITS:
                return None
            length = value
        elif kind == _CODING:
            if chunked or value != b"chunked":
                return None
            chunked = True
        elif kind == _CONNECTION:
            if connection is None:
                connection = [value]
            else:
                connection.append(value)
        elif expect is None:
            expect = [value]
        else:
            expect.append(value)
    # h11 requires one Host in HTTP/1.1 and refuses two in any version.
    if hosts > 1 or (hosts == 0 and version == b"1.1"):
        return None

    if version != b"1.1" and version != b"1.0":
        raise ProtocolError("HTTP version not supported", 505)
    if method == b"CONNECT":
        raise ProtocolError("CONNECT is not supported", 405)
    if target[0] != 0x2F:  # not origin-form
        target, headers = _absolute_form(method, target, headers)
    elif b"#" in target:
        # A fragment is never part of a request target (RFC 9112 3.2): the gateway and an
        # upstream could disagree on where the path ends.
        raise ProtocolError("invalid request target", 400)
    content_length = None
    if length is not None:
        if chunked:
            raise ProtocolError("both Content-Length and Transfer-Encoding", 400)
        content_length = int(length)
        if content_length > MAX_CONTENT_LENGTH:
            raise ProtocolError("Content-Length too large", 400)
    elif chunked and version == b"1.0":
        raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400)
    # As h11's has_expect_100_continue: only HTTP/1.1 clients wait for a 100.
    expect_continue = (expect is not None and version == b"1.1"
                       and b"100-continue" in comma_tokens(expect))
    websocket = upgrade is not None and is_websocket_handshake(
        method, version, upgrade, connection, chunked or bool(content_length))
    return RequestHead(method, target, version, headers, content_length, chunked,
                       keep_alive(version, connection), expect_continue, websocket)


def response_head(status: int, reason: bytes, version: bytes, headers: Headers,
                  request_method: bytes, websocket: bool = False) -> ResponseHead | None:
    """Build the ResponseHead of a head whose grammar h11 accepts, or return None.

    None as for ``request_head``; every policy refusal is a ProtocolError(502).
    ``websocket``: the request was a WebSocket handshake, so a 101 may answer it.
    """
    length: bytes | None = None
    chunked = False
    connection: list[bytes] | None = None
    upgrade: list[bytes] | None = None
    for name, value in headers:
        kind = _INTEREST.get(name)
        if kind is None or kind == _HOST or kind == _EXPECT:
            continue
        if kind == _UPGRADE:
            if upgrade is None:
                upgrade = [value]
            else:
                upgrade.append(value)
            continue
        if kind == _LENGTH:
            if length is not None or not value.isdigit() or len(value) > _CL_MAX_DIGITS:
                return None
            length = value
        elif kind == _CODING:
            if chunked or value != b"chunked":
                return None
            chunked = True
        elif connection is None:
            connection = [value]
        else:
            connection.append(value)
    if status < 100:  # h11 refuses status codes below 100; llhttp takes them
        return None

    if version != b"1.1" and version != b"1.0":
        raise ProtocolError("upstream HTTP version not supported", 502)
    if status == 101:
        if not websocket:
            raise ProtocolError("upstream switched protocols unasked", 502)
        if upgrade is None or b"websocket" not in comma_tokens(upgrade):
            raise ProtocolError("upstream switched to another protocol than websocket", 502)
        # The last HTTP on this connection: what follows is the tunnel's.
        return ResponseHead(status, reason, version, headers, None, "none", False)
    content_length = None
    if length is not None:
        if chunked:
            raise ProtocolError("upstream sent Content-Length and Transfer-Encoding", 502)
        content_length = int(length)
        if content_length > MAX_CONTENT_LENGTH:
            raise ProtocolError("upstream Content-Length too large", 502)
    elif chunked and version == b"1.0":
        raise ProtocolError("upstream sent Transfer-Encoding in HTTP/1.0", 502)
    body: BodyKind
    if status < 200 or status == 204 or status == 304 or request_method == b"HEAD":
        body = "none"
    elif chunked:
        body = "chunked"
    elif length is not None:
        body = "length"
    else:
        body = "close"
    return ResponseHead(status, reason, version, headers, content_length, body,
                        body != "close" and keep_alive(version, connection))
