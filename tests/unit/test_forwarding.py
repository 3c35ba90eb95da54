"""The forwarded heads (http/forwarding.py): the one-pass builders say exactly what their
plain twins say, on thousands of seeded random heads, and h11 (the strict reference)
accepts every head they write.

The generated heads mix what makes the fast path branch: hop-by-hop headers, Connection
headers naming standard hop-by-hop ones, other headers or the ones the gateway owns,
X-Forwarded-For / Via / Host present or not (Host at most once: both parsers reject
more), a head changed by interceptors next to the client's, and every body framing.
"""
from __future__ import annotations

import random

import h11
import pytest

from dakia_prefork.http import forwarding
from dakia_prefork.http.engines import select_engine
from dakia_prefork.message import wire
from dakia_prefork.message.heads import END, Headers, ProtocolError, RequestHead, \
    ResponseHead
from inmemory import ENGINES

SEEDS = range(4)
PER_SEED = 1000

_TCHAR = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
_VCHAR = bytes(range(0x21, 0x7f)) + b"\x80\xe9\xff"
_STANDARD = [b"accept", b"user-agent", b"cookie", b"x-a", b"x-b", b"x-c", b"content-type",
             b"authorization", b"x-user"]
_HOP_BY_HOP = sorted(wire.HOP_BY_HOP)
_OWNED = [b"x-forwarded-for", b"via", b"x-forwarded-proto", b"x-forwarded-host", b"expect"]
_TOKENS = [b"close", b"keep-alive", b"upgrade", b"te", b"trailer", b"x-a", b"X-B", b"via",
           b"x-forwarded-for", b"expect", b"Accept", b"x-nothing", b"Host"]


def _name(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.25:
        return rng.choice(_HOP_BY_HOP)
    if pick < 0.45:
        return rng.choice(_OWNED)
    if pick < 0.75:
        return rng.choice(_STANDARD)
    return "".join(rng.choice(_TCHAR) for _ in range(rng.randint(1, 12))).encode()


def _value(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return b""
    words = [bytes(rng.choice(_VCHAR) for _ in range(rng.randint(1, 8)))
             for _ in range(rng.randint(1, 3))]
    return b" ".join(words)


def _connection_value(rng: random.Random) -> bytes:
    tokens = rng.sample(_TOKENS, rng.randint(0, 3))
    if rng.random() < 0.2:
        tokens.append(b"")                    # "close, , x-a": empty list elements
    return b", ".join(tokens) if tokens else b"close"


def _headers(rng: random.Random, host: bool) -> Headers:
    headers: Headers = []
    for _ in range(rng.randint(0, 10)):
        name = _name(rng)
        value = _connection_value(rng) if name == b"connection" else _value(rng)
        headers.append((name, value))
    if host:
        host_line = (b"host", b"example.com:%d" % rng.randint(1, 65535))
        headers.insert(rng.randint(0, len(headers)), host_line)
    return headers


def _client_head(rng: random.Random) -> RequestHead:
    framing = rng.choice(["none", "length", "chunked"])
    version = rng.choice([b"1.1", b"1.0"])
    headers = _headers(rng, host=version == b"1.1" or rng.random() < 0.5)
    if framing == "length":
        headers.append((b"content-length", b"%d" % rng.randint(0, 99999)))
    elif framing == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
    return RequestHead(rng.choice([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS"]),
                       b"/p/%d?q=%d" % (rng.randint(0, 999), rng.randint(0, 9)), version,
                       headers, int(headers[-1][1]) if framing == "length" else None,
                       framing == "chunked", rng.random() < 0.8, rng.random() < 0.2)


def _changed_head(rng: random.Random, client: RequestHead) -> RequestHead:
    """What an interceptor may make of ``client``: headers removed (Host too), set, added;
    another target. The framing is the client's."""
    headers = [h for h in client.headers if rng.random() < 0.8]
    has_host = any(n == b"host" for n, _ in headers)
    for _ in range(rng.randint(0, 3)):
        name = _name(rng)
        if name != b"host":
            headers.append((name, _connection_value(rng) if name == b"connection"
                            else _value(rng)))
    if not has_host and rng.random() < 0.3:
        headers.append((b"host", b"rewritten.example"))
    return RequestHead(client.method, rng.choice([client.target, b"/rewritten"]),
                       client.http_version, headers, client.content_length, client.chunked,
                       client.keep_alive, client.expect_continue)


def _heads(seed: int) -> list[tuple[RequestHead, RequestHead, bytes, bytes]]:
    """(head to send, client's head, peer, scheme) cases for one seed."""
    rng = random.Random(seed)
    cases = []
    for _ in range(PER_SEED):
        client = _client_head(rng)
        head = client if rng.random() < 0.5 else _changed_head(rng, client)
        peer = rng.choice([b"192.0.2.7", b"2001:db8::1", b""])
        cases.append((head, client, peer, rng.choice([b"http", b"https"])))
    return cases


NODE_HOST = b"10.0.0.1:80"


# -- request heads ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_upstream_head_equals_its_reference(seed: int) -> None:
    for head, client, peer, scheme in _heads(seed):
        fast = forwarding.upstream_head(head, client, peer, scheme, NODE_HOST)
        reference = forwarding.upstream_head_reference(head, client, peer, scheme, NODE_HOST)
        assert fast == reference, (head, client, peer)


def _h11_request(data: bytes, head: RequestHead) -> h11.Request:
    """The request h11 reads off ``data``, body and all (h11 raises on anything invalid)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    request = conn.next_event()
    assert isinstance(request, h11.Request), request
    if head.chunked:
        conn.receive_data(wire.chunk(b"body") + wire.LAST_CHUNK)
        assert isinstance(conn.next_event(), h11.Data)
    elif head.content_length:
        conn.receive_data(b"x" * head.content_length)
        assert isinstance(conn.next_event(), h11.Data)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    return request


@pytest.mark.parametrize("seed", SEEDS)
def test_h11_accepts_every_upstream_head(seed: int) -> None:
    for head, client, peer, scheme in _heads(seed):
        data = forwarding.upstream_head(head, client, peer, scheme, NODE_HOST)
        request = _h11_request(data, head)
        names = [name for name, _ in request.headers]
        assert names.count(b"host") == 1, data
        assert not set(names) & (wire.HOP_BY_HOP - {b"content-length", b"transfer-encoding"})
        assert b"expect" not in names and names.count(b"via") == 1, data
        assert (request.method, request.target) == (head.method, head.target)


@pytest.mark.parametrize("engine", ENGINES)
def test_heads_as_the_engines_parse_them_forward_the_same(engine: str) -> None:
    """Client heads written out and parsed by the engine (repeated headers, case, framing as
    the parser reports them), then forwarded both ways."""
    rng = random.Random(99)
    parsed = 0
    for _ in range(PER_SEED):
        client = _client_head(rng)
        if client.chunked or client.content_length is not None:
            # Exactly one framing header, last: the parsers reject conflicting ones.
            kept = [h for h in client.headers if h[0] not in (b"content-length",
                                                              b"transfer-encoding")]
            kept.append(client.headers[-1])
            client.headers = kept
        raw = wire.request_head(client.method, client.target, client.headers)
        raw = raw.replace(b" HTTP/1.1\r\n", b" HTTP/%s\r\n" % client.http_version, 1)
        parser = select_engine(engine).request_parser()
        parser.feed(raw)
        try:
            head = parser.next_event()
        except ProtocolError:
            continue                # refused alike by both (TE in 1.0, a bad length...)
        assert isinstance(head, RequestHead)
        parsed += 1
        fast = forwarding.upstream_head(head, head, b"192.0.2.7", b"http", NODE_HOST)
        assert fast == forwarding.upstream_head_reference(head, head, b"192.0.2.7", b"http",
                                                          NODE_HOST)
        _h11_request(fast, head)
    assert parsed > PER_SEED // 2


def test_forwarded_for_and_via_are_appended_to() -> None:
    client = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"x-forwarded-for", b"1.1.1.1"),
                                               (b"via", b"1.0 fred")], None, False, True, False)
    data = forwarding.upstream_head(client, client, b"192.0.2.7", b"https", NODE_HOST)
    assert b"\r\nx-forwarded-for: 1.1.1.1, 192.0.2.7\r\n" in data
    assert b"\r\nvia: 1.0 fred, 1.1 dakia\r\n" in data
    assert b"\r\nx-forwarded-proto: https\r\nx-forwarded-host: a\r\n" in data


def test_repeated_forwarded_for_and_via_lines_are_one_list() -> None:
    """Field lines of one name are one comma-separated list (RFC 9110 5.3): what earlier
    proxies wrote on a line of their own is kept, in order."""
    client = RequestHead(b"GET", b"/", b"1.1", [
        (b"host", b"a"), (b"x-forwarded-for", b"1.1.1.1"), (b"via", b"1.0 fred"),
        (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3"), (b"via", b"1.1 nora")],
        None, False, True, False)
    for build in (forwarding.upstream_head, forwarding.upstream_head_reference):
        data = build(client, client, b"192.0.2.7", b"http", NODE_HOST)
        assert b"\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 3.3.3.3, 192.0.2.7\r\n" in data
        assert b"\r\nvia: 1.0 fred, 1.1 nora, 1.1 dakia\r\n" in data
        empty = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"via", b"")], None,
                            False, True, False)
        assert b"\r\nvia: 1.1 dakia\r\n" in build(empty, empty, b"", b"http", NODE_HOST)


def test_x_forwarded_for_gets_no_empty_element() -> None:
    """No address to append (a unix socket's peer is empty): the list goes on unchanged,
    not as "1.1.1.1, "; an empty list sent by the client is no element either."""
    client = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"x-forwarded-for", b"1.1.1.1")],
                         None, False, True, False)
    for build in (forwarding.upstream_head, forwarding.upstream_head_reference):
        assert b"\r\nx-forwarded-for: 1.1.1.1\r\n" in build(client, client, b"", b"http",
                                                            NODE_HOST)
        empty = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"x-forwarded-for", b"")],
                            None, False, True, False)
        assert b"\r\nx-forwarded-for: 192.0.2.7\r\n" in build(empty, empty, b"192.0.2.7",
                                                              b"http", NODE_HOST)
        assert b"x-forwarded-for" not in build(empty, empty, b"", b"http", NODE_HOST)


def test_http10_client_without_host_gets_the_nodes() -> None:
    client = RequestHead(b"GET", b"/", b"1.0", [], None, False, False, False)
    data = forwarding.upstream_head(client, client, b"192.0.2.7", b"http", NODE_HOST)
    assert b"\r\nhost: 10.0.0.1:80\r\n" in data and b"x-forwarded-host" not in data


def test_connection_named_headers_are_not_forwarded() -> None:
    client = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"connection", b"x-a, close"),
                                               (b"x-a", b"1"), (b"x-b", b"2")],
                         None, False, False, False)
    data = forwarding.upstream_head(client, client, b"", b"http", NODE_HOST)
    assert b"x-a" not in data and b"\r\nx-b: 2\r\n" in data and b"connection" not in data


def test_host_named_in_connection_is_still_forwarded() -> None:
    """Host is never hop-by-hop: a request without one is invalid (RFC 9112 3.2), so a
    client's ``Connection: host`` must not make the gateway send one."""
    client = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"connection", b"Host")],
                         None, False, True, False)
    for build in (forwarding.upstream_head, forwarding.upstream_head_reference):
        data = build(client, client, b"", b"http", NODE_HOST)
        assert data.startswith(b"GET / HTTP/1.1\r\nhost: a\r\n"), data


# X-Forwarded-Proto and -Host are the gateway's own: the client's are replaced anyway.
@pytest.mark.parametrize("name", sorted(forwarding.PROTECTED - wire.HOP_BY_HOP
                                        - {b"x-forwarded-proto", b"x-forwarded-host"}))
def test_connection_cannot_name_a_protected_header_away(name: bytes) -> None:
    client = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (name, b"v"),
                                               (b"connection", name.upper() + b", x-a")],
                         None, False, True, False)
    for build in (forwarding.upstream_head, forwarding.upstream_head_reference):
        data = build(client, client, b"", b"http", NODE_HOST)
        assert b"\r\n" + name + b": v" in data, (build, data)


def test_connection_cannot_name_an_interceptors_header_away() -> None:
    """Connection removes the client's own headers only: an interceptor's pair stays."""
    client = RequestHead(b"GET", b"/", b"1.1",
                         [(b"host", b"a"), (b"x-user", b"forged"), (b"x-own", b"1"),
                          (b"connection", b"x-user, x-own, x-tag")], None, False, True, False)
    changed = RequestHead(b"GET", b"/", b"1.1",
                          [(b"host", b"a"), (b"x-user", b"checked"), (b"x-own", b"1"),
                           (b"x-tag", b"t"), (b"connection", b"x-user, x-own, x-tag")],
                          None, False, True, False)
    for build in (forwarding.upstream_head, forwarding.upstream_head_reference):
        data = build(changed, client, b"", b"http", NODE_HOST)
        assert b"\r\nx-user: checked\r\n" in data and b"\r\nx-tag: t\r\n" in data
        assert b"x-own" not in data


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive", b"Keep-Alive"])
def test_plain_connection_options_are_not_header_names(value: bytes) -> None:
    client = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"a"), (b"connection", value),
                                               (b"close", b"1"), (b"x-a", b"2")],
                         None, False, True, False)
    fast = forwarding.upstream_head(client, client, b"", b"http", NODE_HOST)
    assert fast == forwarding.upstream_head_reference(client, client, b"", b"http", NODE_HOST)
    assert b"\r\nx-a: 2\r\n" in fast and b"connection" not in fast


def test_interceptor_head_forwards_the_clients_host_as_x_forwarded_host() -> None:
    client = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"client.example")], None, False,
                         True, False)
    changed = RequestHead(b"GET", b"/new", b"1.1", [(b"x-user", b"u")], None, False, True,
                          False)
    data = forwarding.upstream_head(changed, client, b"", b"http", NODE_HOST)
    assert data.startswith(b"GET /new HTTP/1.1\r\nx-user: u\r\n")
    assert b"\r\nx-forwarded-host: client.example\r\nhost: 10.0.0.1:80\r\n" in data


# -- response heads ---------------------------------------------------------------------------
def downstream_head_reference(status: int, reason: bytes, headers: Headers,
                              tail: Headers) -> bytes:
    """``downstream_head`` said plainly (its fallback for Connection-named headers)."""
    return wire.response_head(status, reason, wire.end_to_end(headers) + tail)


def _responses(seed: int) -> list[tuple[int, bytes, Headers, Headers, bytes]]:
    """(status, reason, upstream headers, tail, request method) cases for one seed."""
    rng = random.Random(1000 + seed)
    cases = []
    for _ in range(PER_SEED):
        status = rng.choice([103, 200, 201, 204, 206, 301, 304, 404, 500, 503, 599])
        reason = rng.choice([b"", b"OK", b"Some Reason", b"caf\xe9 \tx"])
        headers = _headers(rng, host=False)
        method = rng.choice([b"GET", b"HEAD"])
        tail: Headers = []
        if status >= 200:
            framing = rng.choice(["length", "chunked", "close"])
            if status in (204, 304) or method == b"HEAD":
                framing = rng.choice(["length", "none"])
            if framing == "length":
                tail.append((b"content-length", b"%d" % rng.randint(0, 50)))
            elif framing == "chunked":
                tail.append((b"transfer-encoding", b"chunked"))
            tail.append((b"via", forwarding.VIA))
            tail += rng.choice([[], [(b"connection", b"close")],
                                [(b"connection", b"keep-alive")]])
        cases.append((status, reason, headers, tail, method))
    return cases


@pytest.mark.parametrize("seed", SEEDS)
def test_downstream_head_equals_its_reference(seed: int) -> None:
    for status, reason, headers, tail, _method in _responses(seed):
        assert forwarding.downstream_head(status, reason, headers, tail) == \
            downstream_head_reference(status, reason, headers, tail), headers


@pytest.mark.parametrize("seed", SEEDS)
def test_h11_accepts_every_downstream_head(seed: int) -> None:
    for status, reason, headers, tail, method in _responses(seed):
        data = forwarding.downstream_head(status, reason, headers, tail)
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method=method, target="/", headers=[("host", "a")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(data)
        event = conn.next_event()
        expected = h11.InformationalResponse if status < 200 else h11.Response
        assert isinstance(event, expected), (data, event)
        assert event.status_code == status
        assert event.reason == (reason or wire.REASONS.get(status, b"Unknown")).strip()
        assert list(event.headers) == [(n, v.strip()) for n, v in wire.end_to_end(headers)] + \
            tail


def test_response_head_drops_hop_by_hop_and_named() -> None:
    headers = [(b"connection", b"x-a"), (b"x-a", b"1"), (b"keep-alive", b"timeout=5"),
               (b"transfer-encoding", b"chunked"), (b"x-b", b"2")]
    assert forwarding.downstream_head(200, b"OK", headers, [(b"content-length", b"0")]) == \
        b"HTTP/1.1 200 OK\r\nx-b: 2\r\ncontent-length: 0\r\n\r\n"


def test_response_parser_output_forwards_the_same() -> None:
    """A response as the h11 engine parses it goes back with its end-to-end headers."""
    parser = select_engine("h11").response_parser(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nETag: e\r\n"
                b"Content-Length: 0\r\n\r\n")
    head = parser.next_event()
    assert isinstance(head, ResponseHead) and parser.next_event() is END
    assert forwarding.downstream_head(head.status, head.reason, head.headers, []) == \
        b"HTTP/1.1 200 OK\r\netag: e\r\n\r\n"
