"""One request through the gateway (http/exchange.py), with the client and the upstream
nodes as in-memory streams, under both parser engines.

Every response the client gets is read back by an h11 client (``inmemory.responses``), so
each test also checks that the bytes the gateway wrote are valid HTTP/1.1, and that no
second answer follows the ones expected.
"""
from __future__ import annotations

import pytest

from dakia_prefork.http.exchange import RETRY_BODY_LIMIT
from inmemory import (CONNECT_TIMEOUT, PEER, READ_TIMEOUT, WRITE_TIMEOUT, MakeHarness, engine,
                      get, make_harness, ok, responses)

__all__ = ["engine", "make_harness"]     # fixtures, used by name

POST_HELLO = b"POST /api/x HTTP/1.1\r\nhost: example.com\r\ncontent-length: 5\r\n\r\nhello"


# -- the plain path ---------------------------------------------------------------------------
def test_get_goes_to_the_node_with_forwarded_headers(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ok(b"hello"))
    client = h.serve(get(headers=b"user-agent: t\r\n"))
    [response] = responses(client.written, b"GET")
    assert (response.status, response.body) == (200, b"hello")
    assert response.header(b"via") == b"1.1 dakia"
    assert up.written == (b"GET /api/x HTTP/1.1\r\nhost: example.com\r\nuser-agent: t\r\n"
                          b"x-forwarded-for: " + PEER.encode() + b"\r\n"
                          b"x-forwarded-proto: http\r\nx-forwarded-host: example.com\r\n"
                          b"via: 1.1 dakia\r\n\r\n")
    assert h.log.lines == [(200, 5)]


def test_keep_alive_requests_share_one_upstream_connection(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ok(b"one"), ok(b"two"), ok(b"three"))
    client = h.serve(get(b"/api/1"), get(b"/api/2"), get(b"/api/3"))
    got = responses(client.written, b"GET", b"GET", b"GET")
    assert [r.body for r in got] == [b"one", b"two", b"three"]
    assert h.connects == ["10.0.0.1:80"]
    assert [line.split(b" ")[1] for line in bytes(up.written).split(b"\r\n")
            if line.startswith(b"GET")] == [b"/api/1", b"/api/2", b"/api/3"]


def test_pipelined_requests_are_answered_in_order(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok(b"a"), ok(b"b"), ok(b"c"))
    client = h.serve(get(b"/api/a") + get(b"/api/b") + get(b"/api/c"))
    got = responses(client.written, b"GET", b"GET", b"GET")
    assert [r.body for r in got] == [b"a", b"b", b"c"]


# -- response framing -------------------------------------------------------------------------
LENGTH = ok(b"hello")
CHUNKED = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n",
           b"2;ext=1\r\nlo\r\n0\r\n\r\n")
CLOSE = (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhel", b"lo")


@pytest.mark.parametrize("reads, length, chunked", [
    ((LENGTH,), b"5", False),
    (CHUNKED, None, True),
    (CLOSE, None, True),
], ids=["length", "chunked", "close"])
def test_http11_client_gets_length_kept_or_chunked(make_harness: MakeHarness,
                                                   reads: tuple[bytes, ...],
                                                   length: bytes | None,
                                                   chunked: bool) -> None:
    h = make_harness()
    close_delimited = reads is CLOSE
    if close_delimited:
        h.upstream(*reads)
        h.upstream(ok(b"again"))          # that connection cannot serve another response
    else:
        h.upstream(*reads, ok(b"again"))
    client = h.serve(get(), get())
    first, second = responses(client.written, b"GET", b"GET")
    assert first.body == b"hello" and second.body == b"again"
    assert first.header(b"content-length") == length
    assert first.header(b"transfer-encoding") == (b"chunked" if chunked else None)
    assert first.header(b"connection") is None        # the client's connection stays open
    assert len(h.connects) == (2 if close_delimited else 1)
    if chunked:                           # as it came, chunk extensions dropped
        assert b"\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n" in client.written


@pytest.mark.parametrize("reads", [(LENGTH,), CHUNKED, CLOSE],
                         ids=["length", "chunked", "close"])
def test_http10_client_never_gets_chunked(make_harness: MakeHarness,
                                          reads: tuple[bytes, ...]) -> None:
    h = make_harness()
    h.upstream(*reads)
    client = h.serve(get(version=b"1.0", headers=b"connection: keep-alive\r\n"))
    written = bytes(client.written)
    head, _, body = written.partition(b"\r\n\r\n")
    assert body == b"hello" and b"transfer-encoding" not in head
    if reads == (LENGTH,):
        assert b"\r\ncontent-length: 5\r\n" in head and head.endswith(b"connection: keep-alive")
    else:
        assert head.endswith(b"connection: close")      # close-delimited, all 1.0 knows


def test_http10_client_without_keep_alive_gets_close(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(LENGTH)
    client = h.serve(get(version=b"1.0"), get())
    [response] = responses(client.written, b"GET")
    assert response.header(b"connection") == b"close"
    assert h.connects == ["10.0.0.1:80"]            # the second request was never read


def test_head_response_keeps_content_length(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n", ok(b"body"))
    client = h.serve(get(method=b"HEAD"), get())
    head, following = responses(client.written, b"HEAD", b"GET")
    assert head.header(b"content-length") == b"42" and head.body == b""
    assert following.body == b"body"


def test_304_keeps_content_length(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(b"HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\ncontent-length: 42\r\n\r\n",
               ok(b"body"))
    client = h.serve(get(headers=b"if-none-match: \"x\"\r\n"), get())
    not_modified, following = responses(client.written, b"GET", b"GET")
    assert not_modified.status == 304 and not_modified.header(b"content-length") == b"42"
    assert not_modified.header(b"etag") == b'"x"'
    assert following.body == b"body"


# -- informational responses ------------------------------------------------------------------
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n"


def test_103_goes_to_http11_clients(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(EARLY_HINTS + ok())
    client = h.serve(get())
    [response] = responses(client.written, b"GET")
    assert response.informational == [103] and response.status == 200
    assert client.written.startswith(EARLY_HINTS)


def test_103_is_not_sent_to_http10_clients(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(EARLY_HINTS, ok())
    client = h.serve(get(version=b"1.0"))
    assert client.written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"103" not in client.written


def test_upstream_100_continue_is_never_forwarded(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(b"HTTP/1.1 100 Continue\r\n\r\n", ok())
    client = h.serve(POST_HELLO)
    [response] = responses(client.written, b"POST")
    assert response.informational == [] and response.status == 200


EXPECTING = (b"PUT /api/x HTTP/1.1\r\nhost: example.com\r\nexpect: 100-continue\r\n"
             b"content-length: 5\r\n\r\n")


def test_100_continue_is_sent_once_across_a_retry(make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=1)
    first = h.upstream(ConnectionResetError(), node=0)
    second = h.upstream(ok(), node=1)
    client = h.serve(EXPECTING, b"hello")
    assert client.written.count(b"100 Continue") == 1
    [response] = responses(client.written, b"PUT")
    assert response.informational == [100] and response.status == 200
    assert first.written.endswith(b"\r\n\r\nhello") and second.written.endswith(b"\r\n\r\nhello")
    assert b"expect" not in second.written


def test_100_continue_waits_for_a_connected_node(make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=1)
    h.refuse(node=0)

    def body() -> bytes:
        assert h.connects == ["10.0.0.1:80", "10.0.0.2:80"]
        return b"hello"

    h.upstream(ok(), node=1)
    client = h.serve(EXPECTING, body)
    assert client.written.count(b"100 Continue") == 1


# -- request bodies ---------------------------------------------------------------------------
def test_chunked_request_body_streams_upstream_rechunked(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ok())
    head = b"POST /api/x HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n"

    def rest() -> bytes:
        # The first chunk went upstream before the client sent the rest.
        assert up.written.endswith(b"\r\n\r\n5\r\nhello\r\n")
        return b"6;name=value\r\n world\r\n0\r\n\r\n"

    client = h.serve(head + b"5\r\nhello\r\n", rest)
    assert responses(client.written, b"POST")[0].status == 200
    sent_head, _, sent_body = bytes(up.written).partition(b"\r\n\r\n")
    assert sent_head.endswith(b"\r\ntransfer-encoding: chunked")
    assert b"content-length" not in sent_head
    assert sent_body == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"


def test_length_request_body_streams_upstream_as_it_is(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ok())
    head = b"POST /api/x HTTP/1.1\r\nhost: example.com\r\ncontent-length: 11\r\n\r\n"

    def rest() -> bytes:
        assert up.written.endswith(b"\r\n\r\nhello")
        return b" world"

    h.serve(head + b"hello", rest)
    sent_head, _, sent_body = bytes(up.written).partition(b"\r\n\r\n")
    assert sent_head.endswith(b"\r\ncontent-length: 11") and sent_body == b"hello world"


def test_body_at_max_body_bytes_is_accepted(make_harness: MakeHarness) -> None:
    h = make_harness(max_body_bytes=5)
    h.upstream(ok())
    client = h.serve(POST_HELLO)
    assert responses(client.written, b"POST")[0].status == 200


def test_body_over_max_body_bytes_is_413_and_closes(make_harness: MakeHarness) -> None:
    h = make_harness(max_body_bytes=4)
    up = h.upstream(ok())
    client = h.serve(POST_HELLO, get())
    [response] = responses(client.written, b"POST")
    assert response.status == 413 and response.header(b"connection") == b"close"
    assert up.written == b"" and up.closed and h.pool.returned == []


def test_chunked_body_over_max_body_bytes_cuts_the_upstream(make_harness: MakeHarness) -> None:
    h = make_harness(max_body_bytes=8)
    up = h.upstream(ok())
    head = b"POST /api/x HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n"
    client = h.serve(head + b"5\r\nhello\r\n", b"5\r\nworld\r\n0\r\n\r\n")
    assert responses(client.written, b"POST")[0].status == 413
    assert up.written.endswith(b"5\r\nhello\r\n") and up.closed   # no last chunk: cut


# -- the gateway's own answers ----------------------------------------------------------------
@pytest.mark.parametrize("request_head, status", [
    (get(host=b"example.com:99999"), 400),
    (get(host=b"other.example"), 404),
    (get(target=b"/elsewhere"), 404),
    (get(version=b"1.0", host=b"").replace(b"host: \r\n", b""), 404),
], ids=["bad-host", "unknown-host", "no-route", "no-host"])
def test_request_answered_without_the_upstream(make_harness: MakeHarness, request_head: bytes,
                                               status: int) -> None:
    h = make_harness()
    client = h.serve(request_head)
    [response] = responses(client.written, b"GET")
    assert response.status == status and h.connects == []


def test_early_answer_to_head_has_no_body(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    client = h.serve(get(method=b"HEAD", target=b"/elsewhere"), get())
    not_found, following = responses(client.written, b"HEAD", b"GET")
    assert not_found.status == 404 and int(not_found.header(b"content-length") or 0) > 0
    assert following.status == 200


def test_early_answer_keeps_the_connection(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    client = h.serve(get(host=b"other.example"), get())
    assert [r.status for r in responses(client.written, b"GET", b"GET")] == [404, 200]


@pytest.mark.parametrize("interceptors", [[], [{"name": "server_version"}]],
                         ids=["no-interceptors", "interceptors"])
def test_early_answer_to_http10_keep_alive_says_keep_alive(
        make_harness: MakeHarness, interceptors: list[dict[str, str]]) -> None:
    """The connection stays open for the next request, so the 1.0 client must be told, as
    proxied responses tell it; else it cannot reuse the connection."""
    h = make_harness(interceptors=interceptors)
    h.upstream(ok())
    keep = b"connection: keep-alive\r\n"
    client = h.serve(get(host=b"other.example", version=b"1.0", headers=keep),
                     get(version=b"1.0", headers=keep))
    first, second = bytes(client.written).split(b"\nHTTP/1.1 ")
    assert first.startswith(b"HTTP/1.1 404 ") and b"\r\nconnection: keep-alive\r\n" in first
    assert second.startswith(b"200 OK") and b"\r\nconnection: keep-alive\r\n" in second


def test_short_circuit_interceptor_answers_without_connecting(
        make_harness: MakeHarness) -> None:
    h = make_harness(interceptors=[{"name": "short_circuit",
                                    "response": {"status": 503, "body": "maintenance"}}])
    client = h.serve(get())
    [response] = responses(client.written, b"GET")
    assert (response.status, response.body) == (503, b"maintenance") and h.connects == []


def test_interceptor_changed_head_is_forwarded(make_harness: MakeHarness) -> None:
    h = make_harness(interceptors=[{"name": "request_rewrite", "config": {
        "set_headers": {"x-user": "u1"}, "remove_headers": ["user-agent"]}}])
    up = h.upstream(ok())
    h.serve(get(headers=b"user-agent: t\r\n"))
    sent = bytes(up.written)
    assert b"\r\nx-user: u1\r\n" in sent and b"user-agent" not in sent
    assert b"\r\nx-forwarded-host: example.com\r\n" in sent and sent.count(b"\r\nhost:") == 1


# -- upstream failures ------------------------------------------------------------------------
def test_reset_before_the_head_is_502(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ConnectionResetError())
    client = h.serve(get())
    [response] = responses(client.written, b"GET")
    assert response.status == 502 and up.closed and h.pool.returned == []


def test_timeout_before_the_head_is_504(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(TimeoutError())
    client = h.serve(get())
    [response] = responses(client.written, b"GET")
    assert response.status == 504


def test_connect_timeout_is_504(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.refuse(TimeoutError())
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].status == 504


def test_invalid_response_is_502(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(b"HTTP/1.1 200 OK\r\nbroken header line\r\n\r\n")
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].status == 502


def test_unsolicited_101_is_502(make_harness: MakeHarness) -> None:
    """Only a WebSocket upgrade is forwarded (test_websocket.py), so a 101 to anything else
    (here h2c, dropped as hop-by-hop) is a broken upstream, for both engines."""
    h = make_harness()
    h.upstream(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n")
    client = h.serve(get(headers=b"connection: upgrade\r\nupgrade: h2c\r\n"))
    assert responses(client.written, b"GET")[0].status == 502


def test_502_after_a_complete_body_keeps_the_client_connection(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ConnectionResetError())
    h.upstream(ok())
    client = h.serve(POST_HELLO, get())
    assert [r.status for r in responses(client.written, b"POST", b"GET")] == [502, 200]


def test_failure_after_the_head_cuts_the_client(make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=1)
    up = h.upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
                    ConnectionResetError())
    client = h.serve(get() + get())
    written = bytes(client.written)
    assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(b"\r\n\r\nabc")
    assert written.count(b"HTTP/1.1 ") == 1               # no 502, no second request
    assert h.connects == ["10.0.0.1:80"] and up.closed and h.pool.returned == []
    assert h.log.lines == [(200, 3)]


def test_truncated_chunked_body_cuts_the_client(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(CHUNKED[0])                       # then EOF inside the body
    client = h.serve(get())
    assert not client.written.endswith(b"0\r\n\r\n")     # never a clean end
    assert client.written.count(b"HTTP/1.1 ") == 1


# -- retries ----------------------------------------------------------------------------------
def test_stale_pooled_connection_is_replayed_on_a_fresh_one(make_harness: MakeHarness) -> None:
    h = make_harness()                                   # retries: 0, so not a retry
    stale = h.idle(b"")
    fresh = h.upstream(ok())
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].status == 200
    assert stale.closed and stale.written.startswith(b"GET /api/x ")
    assert fresh.written == stale.written and h.connects == ["10.0.0.1:80"]


def test_stale_pooled_connection_failing_the_send_is_replayed(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    stale = h.idle()
    stale.fail_send = BrokenPipeError()
    h.upstream(ok())
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].status == 200 and stale.closed


def test_stale_replay_happens_once(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.idle(b"")
    h.idle(b"")                           # the pool holds more of the same age: not used
    h.upstream(b"")
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].status == 502
    assert h.connects == ["10.0.0.1:80"]


def test_request_with_a_body_is_not_replayed_on_a_stale_connection(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    h.idle(b"")
    client = h.serve(POST_HELLO)
    assert responses(client.written, b"POST")[0].status == 502 and h.connects == []


def test_connect_failure_goes_to_another_node_whatever_the_method(
        make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=1)
    h.refuse(node=0)
    up = h.upstream(ok(), node=1)
    client = h.serve(POST_HELLO)
    assert responses(client.written, b"POST")[0].status == 200
    assert h.connects == ["10.0.0.1:80", "10.0.0.2:80"] and up.written.endswith(b"hello")


def test_idempotent_request_is_retried_after_it_went_out(make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=1)
    first = h.upstream(ConnectionResetError(), node=0)
    second = h.upstream(ok(b"from 2"), node=1)
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].body == b"from 2"
    assert first.written == second.written and first.closed


def test_non_idempotent_request_is_not_retried_after_it_went_out(
        make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=1)
    h.upstream(ConnectionResetError(), node=0)
    h.upstream(ok(), node=1)
    client = h.serve(POST_HELLO)
    assert responses(client.written, b"POST")[0].status == 502
    assert h.connects == ["10.0.0.1:80"]


def test_no_retry_when_retries_is_zero(make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=0)
    h.refuse(node=0)
    h.upstream(ok(), node=1)
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].status == 502 and h.connects == ["10.0.0.1:80"]


def test_no_retry_once_the_body_outgrew_what_is_kept(make_harness: MakeHarness) -> None:
    h = make_harness(nodes=2, retries=1)
    h.upstream(ConnectionResetError(), node=0)
    h.upstream(ok(), node=1)
    size = RETRY_BODY_LIMIT + 1
    head = b"PUT /api/x HTTP/1.1\r\nhost: example.com\r\ncontent-length: %d\r\n\r\n" % size
    client = h.serve(head, b"x" * size)
    assert responses(client.written, b"PUT")[0].status == 502
    assert h.connects == ["10.0.0.1:80"]


def test_retries_are_bounded(make_harness: MakeHarness) -> None:
    h = make_harness(nodes=3, retries=1)
    h.refuse(node=0)
    h.refuse(node=1)
    h.upstream(ok(), node=2)
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].status == 502
    assert h.connects == ["10.0.0.1:80", "10.0.0.2:80"]


# -- the upstream pool ------------------------------------------------------------------------
def test_keep_alive_upstream_connection_goes_back_to_the_pool(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ok())
    h.serve(get())
    assert [c.sock for c in h.pool.returned] == [up] and not up.closed


@pytest.mark.parametrize("reads", [
    (ok(headers=b"connection: close\r\n"),),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nhello",),
    (ok() + b"HTTP/1.1 200 OK\r\n",),                    # trailing bytes after the response
    CLOSE,
], ids=["connection-close", "http10", "trailing-data", "close-delimited"])
def test_unreusable_upstream_connection_is_closed(make_harness: MakeHarness,
                                                  reads: tuple[bytes, ...]) -> None:
    h = make_harness()
    up = h.upstream(*reads)
    client = h.serve(get())
    assert responses(client.written, b"GET")[0].body == b"hello"
    assert up.closed and h.pool.returned == []


def test_client_gone_mid_response_closes_the_upstream(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", b"defghij")
    conn, client = h.connection(get())
    client.fail_send = BrokenPipeError()
    conn.run()
    assert client.written == b"" and up.closed and h.pool.returned == []


def test_upstream_waits_run_under_the_upstreams_timeouts(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ok(), ok())
    h.serve(get(), get())
    write, read = round(WRITE_TIMEOUT), round(READ_TIMEOUT)
    assert up.waits == [("send", write), ("recv", read), ("send", write), ("recv", read)]


def test_upstream_socket_timeout_is_set_only_when_it_changes(
        make_harness: MakeHarness) -> None:
    """The connect timeout a new connection has is taken off once (waits have deadlines);
    reusing it from the pool sets nothing."""
    h = make_harness()
    up = h.upstream(ok(), ok(), ok())
    h.serve(get(), get(), get())
    assert up.timeouts == [CONNECT_TIMEOUT, None]
