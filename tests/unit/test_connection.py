"""The client connection loop (http/connection.py) on in-memory streams, under both
engines: requests in order, errors answered then closed, each wait under its own
deadline, the limits of the version a request runs on."""
from __future__ import annotations

import time

import gevent

from dakia_prefork.http.connection import DISCARD_LIMIT, PARK_AFTER, Parked, expire_waits
from inmemory import (BODY_TIMEOUT, HEADER_TIMEOUT, KEEPALIVE_TIMEOUT, SEND_TIMEOUT,
                      MakeHarness, engine, get, make_harness, ok, responses, runtime_of)

__all__ = ["engine", "make_harness"]     # fixtures, used by name


def _post(target: bytes, size: int, headers: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nhost: example.com\r\ncontent-length: %d\r\n%s\r\n"
            % (target, size, headers))


# -- timeouts ----------------------------------------------------------------------------------
HEADER, KEEPALIVE, BODY, SEND = (round(t) for t in (HEADER_TIMEOUT, KEEPALIVE_TIMEOUT,
                                                     BODY_TIMEOUT, SEND_TIMEOUT))


def test_each_wait_runs_under_its_own_deadline(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok(), ok())
    client = h.serve(get(), get())
    assert client.waits == [("recv", HEADER), ("send", SEND),
                            ("recv", KEEPALIVE), ("send", SEND),
                            ("recv", KEEPALIVE)]


def test_the_client_socket_gets_no_timeout(make_harness: MakeHarness) -> None:
    """Deadlines, not socket timeouts: gevent would arm a timer for every blocking wait."""
    h = make_harness()
    h.upstream(ok(), ok(), ok())
    client = h.serve(get(), get() + get())
    assert client.timeouts == []


def test_pipelined_requests_wait_for_nothing_between_them(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok(), ok(), ok())
    client = h.serve(get() + get() + get())
    assert len(responses(client.written, b"GET", b"GET", b"GET")) == 3
    assert client.waits == [("recv", HEADER), ("send", SEND), ("send", SEND), ("send", SEND),
                            ("recv", KEEPALIVE)]


def test_a_body_is_read_under_the_body_timeout(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    client = h.serve(_post(b"/api/x", 5), b"hello")
    assert client.waits == [("recv", HEADER), ("recv", BODY), ("send", SEND),
                            ("recv", KEEPALIVE)]


def test_no_deadline_outlives_its_wait(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    conn, _client = h.connection(get(), get(host=b"other.example"))
    conn.run()
    assert conn.deadline == 0.0


def test_a_reload_reaches_the_next_request_of_an_open_connection(
        make_harness: MakeHarness) -> None:
    """A request runs on the version current when its head arrived."""
    h = make_harness()
    h.upstream(ok(), ok())

    def reload() -> bytes:
        # What a worker does on HUP: a new runtime, swapped in whole.
        h.ctx.runtime = runtime_of(h.engine, version=2, log=h.log, keepalive_timeout=99)
        return get()

    client = h.serve(get(), reload)
    assert client.waits == [("recv", HEADER), ("send", SEND),
                            ("recv", KEEPALIVE),       # the swap happens in this wait
                            ("send", SEND), ("recv", 99)]


def test_expire_times_out_only_a_wait_past_its_deadline(make_harness: MakeHarness) -> None:
    h = make_harness()
    conn, _client = h.connection()
    thrown: list[BaseException] = []

    class Greenlet:
        def throw(self, error: BaseException) -> None:
            thrown.append(error)

    conn.greenlet = Greenlet()
    conn.deadline = time.monotonic() + 60
    conn.expire()                           # not yet
    conn.deadline = 0.0
    conn.expire()                           # not waiting
    assert thrown == []
    conn.deadline = time.monotonic() - 1
    conn.expire()
    assert [type(e) for e in thrown] == [TimeoutError] and conn.deadline == 0.0


def test_expire_waits_counts_the_waits_past_their_deadline(make_harness: MakeHarness) -> None:
    h = make_harness()
    now = time.monotonic()
    conns = [h.connection()[0] for _ in range(3)]
    conns[0].deadline = now - 1
    conns[1].deadline = now + 60
    for conn in conns:
        conn.greenlet = None                # nothing to throw into: the callbacks do nothing
    assert expire_waits(conns, now) == (1, 0)
    gevent.sleep(0)                         # let the hub run the callback it was given


class _Recorder:
    """Stands in for a connection's greenlet: records what is thrown into it."""

    def __init__(self) -> None:
        self.thrown: list[type[BaseException]] = []

    def throw(self, error: BaseException) -> None:
        self.thrown.append(type(error))


def test_only_a_connection_idle_for_park_after_is_parked(make_harness: MakeHarness) -> None:
    h = make_harness()
    now = time.monotonic()
    conns = [h.connection()[0] for _ in range(5)]
    waiting = now + 60
    states = [  # (idle, idle since, deadline)
        (True, now - PARK_AFTER - 1, waiting),      # idle long enough: parked
        (True, now - PARK_AFTER / 2, waiting),      # idle, not long enough yet
        (False, now - PARK_AFTER - 1, waiting),     # inside a request (e.g. the upstream's)
        (True, now - PARK_AFTER - 1, 0.0),          # not waiting at all
        (True, now - PARK_AFTER - 1, now - 1),      # past its deadline: times out instead
    ]
    greenlets = []
    for conn, (idle, since, deadline) in zip(conns, states):
        conn.idle, conn.idle_since, conn.deadline = idle, since, deadline
        conn.greenlet = _Recorder()
        greenlets.append(conn.greenlet)
    assert expire_waits(conns, now) == (1, 1)
    gevent.sleep(0)                         # the hub runs the callbacks
    assert [g.thrown for g in greenlets] == [[Parked], [], [], [], [TimeoutError]]


def test_park_does_nothing_once_the_wait_is_over(make_harness: MakeHarness) -> None:
    h = make_harness()
    conn = h.connection()[0]
    conn.greenlet = recorder = _Recorder()
    conn.idle, conn.deadline = True, time.monotonic() + 60
    conn.deadline = 0.0                     # the request arrived before the callback ran
    conn.park()
    conn.idle, conn.deadline = False, time.monotonic() + 60
    conn.park()                             # a new request is being served
    assert recorder.thrown == []
    conn.idle = True
    conn.park()
    assert recorder.thrown == [Parked]


def test_a_parked_connection_serves_on_when_run_again(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok(b"one"), ok(b"two"))
    conn, client = h.connection(get(), Parked())     # parked while idle after the first
    conn.run()
    assert conn.parked and conn.greenlet is None and not client.closed
    assert conn.idle and conn.requests == 1
    first = client.take_written()
    assert [r.body for r in responses(first, b"GET")] == [b"one"]
    client.feed(get())                      # the client comes back: the worker runs it again
    conn.run()
    assert not conn.parked and conn.requests == 2
    assert [r.body for r in responses(client.take_written(), b"GET")] == [b"two"]
    assert len(h.connections) == 1          # the same upstream connection, from the pool


# -- order and errors -------------------------------------------------------------------------
def test_requests_are_counted_and_the_loop_ends_at_eof(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok(), ok())
    conn, client = h.connection(get(), get())
    conn.run()
    assert conn.requests == 2 and client.pending_reads == 0 and not conn.linger


def test_malformed_request_is_400_and_closes(make_harness: MakeHarness) -> None:
    h = make_harness()
    conn, client = h.connection(b"GET /api/x HTTP/1.1\r\nno colon here\r\n\r\n", get())
    conn.run()
    [response] = responses(client.written, b"GET")
    assert response.status == 400 and response.header(b"connection") == b"close"
    assert conn.linger and client.pending_reads == 1 and h.connects == []


def test_good_requests_before_a_bad_one_are_answered_first(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok(b"first"))
    client = h.serve(get() + b"GET / HTTP/1.1\r\n\x00\r\n\r\n")
    first, bad = responses(client.written, b"GET", b"GET")
    assert (first.status, first.body, bad.status) == (200, b"first", 400)


def test_oversized_head_is_431(make_harness: MakeHarness) -> None:
    h = make_harness()
    client = h.serve(get(headers=b"x-big: " + b"a" * 70000 + b"\r\n"))
    assert responses(client.written, b"GET")[0].status == 431


def test_broken_request_body_is_400_and_cuts_the_upstream(make_harness: MakeHarness) -> None:
    h = make_harness()
    up = h.upstream(ok())
    head = b"POST /api/x HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n"
    client = h.serve(head, b"5\r\nhello\r\nzz\r\n")
    [response] = responses(client.written, b"POST")
    assert response.status == 400 and up.closed and h.pool.returned == []


def test_broken_request_body_has_its_access_log_line(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    head = b"POST /api/x HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n"
    client = h.serve(head, b"5\r\nhello\r\nzz\r\n")
    [response] = responses(client.written, b"POST")
    assert h.log.lines == [(400, len(response.body))]


def test_body_over_max_body_bytes_has_its_access_log_line(make_harness: MakeHarness) -> None:
    h = make_harness(max_body_bytes=4)
    h.upstream(ok())
    client = h.serve(_post(b"/api/x", 5), b"hello")
    [response] = responses(client.written, b"POST")
    assert h.log.lines == [(413, len(response.body))]


def test_client_too_slow_with_its_head_gets_408(make_harness: MakeHarness) -> None:
    """Issue 9, part 9: a head begun but not finished by the header timeout is answered
    408 and the connection closed (it used to be closed without a word)."""
    h = make_harness()
    conn, client = h.connection(b"GET /api/x HTTP/1.1\r\n", TimeoutError())
    conn.run()
    [response] = responses(client.written, b"GET")
    assert response.status == 408 and response.header(b"connection") == b"close"
    assert h.connects == [] and conn.linger


def test_client_silent_from_the_start_gets_no_answer(make_harness: MakeHarness) -> None:
    h = make_harness()
    client = h.serve(TimeoutError())
    assert client.written == b"" and h.connects == []


def test_client_silent_after_a_response_gets_no_answer(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    client = h.serve(get(), TimeoutError())
    assert len(responses(client.written, b"GET")) == 1


def test_a_body_that_stalls_gets_408(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    conn, client = h.connection(_post(b"/api/x", 10), b"hello", TimeoutError())
    conn.run()
    [response] = responses(client.written, b"POST")
    assert response.status == 408 and response.header(b"connection") == b"close"
    assert h.log.lines == [(408, len(response.body))]


def test_client_closing_mid_head_gets_400(make_harness: MakeHarness) -> None:
    """A half-closed client may still read: it is told its request was cut short."""
    h = make_harness()
    client = h.serve(b"GET /api/x HTTP/1.1\r\nhost: exa")
    assert responses(client.written, b"GET")[0].status == 400 and h.connects == []


def test_client_reset_while_idle_ends_quietly(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    client = h.serve(get(), ConnectionResetError())
    assert len(responses(client.written, b"GET")) == 1


# -- early answers and the request body ---------------------------------------------------------
def test_small_body_of_an_early_answer_is_read_and_the_connection_kept(
        make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    client = h.serve(_post(b"/elsewhere", 5), b"hello", get())
    assert [r.status for r in responses(client.written, b"POST", b"GET")] == [404, 200]


def test_big_body_of_an_early_answer_closes(make_harness: MakeHarness) -> None:
    h = make_harness()
    size = DISCARD_LIMIT + 1
    conn, client = h.connection(_post(b"/elsewhere", size), b"x" * size, get())
    conn.run()
    [response] = responses(client.written, b"POST")
    assert response.status == 404 and response.header(b"connection") == b"close"
    assert conn.linger                      # the rest is drained while closing


def test_early_answer_to_expect_continue_closes_without_100(make_harness: MakeHarness) -> None:
    h = make_harness()
    conn, client = h.connection(_post(b"/elsewhere", 5, b"expect: 100-continue\r\n"))
    conn.run()
    [response] = responses(client.written, b"POST")
    assert response.status == 404 and response.informational == []
    assert response.header(b"connection") == b"close" and conn.linger


def test_draining_worker_closes_after_the_next_response(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok())
    h.ctx.draining = True
    conn, client = h.connection(get(), get())
    conn.run()
    [response] = responses(client.written, b"GET")
    assert response.header(b"connection") == b"close" and client.pending_reads == 1


def test_a_parked_connection_keeps_a_parser_that_holds_bytes(make_harness: MakeHarness) -> None:
    h = make_harness()
    h.upstream(ok(b"one"), ok(b"two"))
    # The first request's read also brought the start of the second: that stays parsed.
    conn, client = h.connection(get() + b"GET /api/x HTTP/1.1\r\n", Parked())
    conn.run()
    assert conn.parked
    client.feed(b"host: example.com\r\n\r\n")
    conn.run()
    assert [r.body for r in responses(client.take_written(), b"GET", b"GET")] == [b"one",
                                                                                  b"two"]
