"""The heads a proxy forwards: the request head sent upstream, the response head sent back.

Pure functions of parsed heads (no I/O), on the hot path of every proxied request, so each
is one pass over the headers that writes the bytes as it goes. Each has a plain
counterpart (``*_reference``) that says the same thing the obvious way, by
``wire.end_to_end``'s rule: the fast one hands over to it whenever a ``Connection`` header
names something beyond the standard hop-by-hop set and ``close`` (a header it would
otherwise have written already), and tests/unit/test_forwarding.py holds the two equal on
generated heads. A Connection header never removes the ``PROTECTED`` headers, nor any an
interceptor added or changed.

Request side (RFC 9110 7.6): hop-by-hop headers go; ``X-Forwarded-For`` gets the client's
address appended, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are ours (the client's are
dropped), ``Via`` gets our hop appended, ``Expect`` is answered by the gateway and not
forwarded, and a Host is added for HTTP/1.0 clients that sent none. The body framing is
the client's (Content-Length, or chunked re-chunked). Upgrade and Connection are hop-by-hop
like the rest, but a WebSocket handshake (``RequestHead.upgrade``, engines/policy.py) asks
the next hop for the same upgrade: ``Connection: upgrade`` and ``Upgrade: websocket`` are
written for it after the client's end-to-end headers.
"""
from __future__ import annotations

from ..message.heads import Headers, RequestHead
from ..message.wire import CRLF, HOP_BY_HOP, REASONS, connection_tokens, end_to_end, \
    request_head, response_head

VIA = b"1.1 dakia"
_VIA_APPENDED = b", " + VIA
_REQUEST_OWNED = HOP_BY_HOP | {b"x-forwarded-for", b"via", b"x-forwarded-proto",
                               b"x-forwarded-host", b"expect"}
_SEP = b": "
_CHUNKED = b"transfer-encoding: chunked\r\n"
_WEBSOCKET = b"connection: upgrade\r\nupgrade: websocket\r\n"
WEBSOCKET_HEADERS: Headers = [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]


def _joined(first: bytes, more: bytes) -> bytes:
    """Two comma-separated lists as one (``first`` is not empty)."""
    return first + b", " + more if more else first


# Connection values that need no second look: the fixed hop-by-hop names and ``close``
# (an option, not a header name), as sent, so the common ``Connection: keep-alive`` and
# ``Connection: close`` cost one set lookup and the fast path keeps them.
_PLAIN_CONNECTION = HOP_BY_HOP | {b"close", b"Close", b"Keep-Alive", b"Upgrade", b"TE"}
_IGNORED_TOKENS = HOP_BY_HOP | {b"close"}

# What a Connection header may not nominate away (RFC 9110 7.6.1 lets a client name any
# header as hop-by-hop; a proxy that obeyed for these would let the client take from the
# upstream what it relies on): the framing and the Host (written by us in any case), the
# headers of the content itself, and the hop records proxies keep (a client that names
# X-Forwarded-For would erase what a trusted proxy in front of us added). Headers an
# interceptor added or changed are never dropped either (see upstream_head_reference).
PROTECTED = frozenset((
    b"host", b"content-length", b"transfer-encoding", b"content-type", b"content-encoding",
    b"content-range", b"forwarded", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-forwarded-host", b"x-real-ip", b"via",
))


def _named_beyond_hop_by_hop(headers: Headers) -> bool:
    """Whether a Connection header names anything the fixed hop-by-hop set misses."""
    return not connection_tokens(headers) <= _IGNORED_TOKENS


def upstream_head(head: RequestHead, client: RequestHead, peer: bytes, scheme: bytes,
                  node_host: bytes) -> bytes:
    """The head sent upstream for ``head``: the client's own, or the one interceptors made
    of it (``client`` is then still the client's, for X-Forwarded-Host). ``peer`` is the
    client address (empty for a unix socket), ``node_host`` the Host for a client that
    sent none."""
    out = [head.method, b" ", head.target, b" HTTP/1.1\r\n"]
    append = out.append
    forwarded_for: bytes | None = None
    via: bytes | None = None
    raw_host: bytes | None = None
    for name, value in head.headers:
        if name in _REQUEST_OWNED:
            # Repeated lines are one list (RFC 9110 5.3); no empty elements.
            if name == b"x-forwarded-for":
                forwarded_for = value if not forwarded_for else _joined(forwarded_for, value)
            elif name == b"via":
                via = value if not via else _joined(via, value)
            elif (name == b"connection" and value not in _PLAIN_CONNECTION
                  and _named_beyond_hop_by_hop(head.headers)):
                return upstream_head_reference(head, client, peer, scheme, node_host)
            continue
        if name == b"host" and raw_host is None:
            raw_host = value
        append(name)
        append(_SEP)
        append(value)
        append(CRLF)
    has_host = raw_host is not None
    if head is not client:
        raw_host = next((v for n, v in client.headers if n == b"host"), None)
    if forwarded_for:
        append(b"x-forwarded-for: " + (forwarded_for + b", " + peer if peer else forwarded_for)
               + CRLF)
    elif peer:
        append(b"x-forwarded-for: " + peer + CRLF)
    append(b"x-forwarded-proto: " + scheme + CRLF)
    if raw_host is not None:
        append(b"x-forwarded-host: " + raw_host + CRLF)
    if not has_host if head is not client else raw_host is None:
        append(b"host: " + node_host + CRLF)
    append(b"via: " + (via + _VIA_APPENDED if via else VIA) + CRLF)
    if head.chunked:
        append(_CHUNKED)
    elif head.content_length is not None:
        append(b"content-length: %d\r\n" % head.content_length)
    if client.upgrade:
        append(_WEBSOCKET)
    append(CRLF)
    return b"".join(out)


def upstream_head_reference(head: RequestHead, client: RequestHead, peer: bytes,
                            scheme: bytes, node_host: bytes) -> bytes:
    """``upstream_head`` written plainly: what it must equal on every input."""
    forwarded: list[bytes] = []
    vias: list[bytes] = []
    kept: Headers = []
    named = connection_tokens(head.headers) - PROTECTED - _IGNORED_TOKENS
    # Connection is the client's: it drops only what the client sent. A header an
    # interceptor added or set (the pair is not the client's) stays whatever it names.
    theirs = None if head is client else frozenset(client.headers)
    for name, value in head.headers:
        if name in HOP_BY_HOP or (name in named and (theirs is None
                                                     or (name, value) in theirs)):
            continue
        if name == b"x-forwarded-for":
            forwarded.append(value)
        elif name == b"via":
            vias.append(value)
        elif name in (b"x-forwarded-proto", b"x-forwarded-host", b"expect"):
            continue
        else:
            kept.append((name, value))
    # Each name's lines are one list, ours last; no empty elements (a unix peer is empty).
    forwarded_for = b", ".join(part for part in (*forwarded, peer) if part)
    if forwarded_for:
        kept.append((b"x-forwarded-for", forwarded_for))
    kept.append((b"x-forwarded-proto", scheme))
    raw_host = next((v for n, v in client.headers if n == b"host"), None)
    if raw_host is not None:
        kept.append((b"x-forwarded-host", raw_host))
    if raw_host is None if head is client else all(n != b"host" for n, _ in kept):
        kept.append((b"host", node_host))
    kept.append((b"via", b", ".join(part for part in (*vias, VIA) if part)))
    if head.chunked:
        kept.append((b"transfer-encoding", b"chunked"))
    elif head.content_length is not None:
        kept.append((b"content-length", b"%d" % head.content_length))
    if client.upgrade:
        kept.extend(WEBSOCKET_HEADERS)
    return request_head(head.method, head.target, kept)


def status_line(status: int, reason: bytes) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, reason or REASONS.get(status, b"Unknown"))


def downstream_head(status: int, reason: bytes, headers: Headers, tail: Headers) -> bytes:
    """A response head with the upstream's end-to-end ``headers`` and then ``tail`` (the
    framing and connection headers the gateway writes itself)."""
    out = [status_line(status, reason)]
    append = out.append
    for name, value in headers:
        if name in HOP_BY_HOP:
            if (name == b"connection" and value not in _PLAIN_CONNECTION
                    and _named_beyond_hop_by_hop(headers)):
                return response_head(status, reason, end_to_end(headers) + tail)
            continue
        append(name)
        append(_SEP)
        append(value)
        append(CRLF)
    for name, value in tail:
        append(name)
        append(_SEP)
        append(value)
        append(CRLF)
    append(CRLF)
    return b"".join(out)
