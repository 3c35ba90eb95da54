"""tools/bench: wrk's output read into numbers, the fallback's response framing (no load)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "bench"))

from bench_load import (LoadResult, Request, duration_ms, parse_wrk,  # noqa: E402
                        percentile, response_end, wrk_command)

WRK_CLEAN = """\
Running 2s test @ http://127.0.0.1:40123/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.31ms    1.02ms  21.33ms   93.12%
    Req/Sec    15.21k     0.91k   16.50k    80.00%
  Latency Distribution
     50%    3.10ms
     75%    3.40ms
     90%    3.90ms
     99%  812.00us
  30421 requests in 2.00s, 3.51MB read
Requests/sec:  15210.47
Transfer/sec:      1.75MB
"""

WRK_FAILING = """\
Running 5s test @ http://127.0.0.1:40123/r999/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   100.12ms   20.00ms   1.99s    90.00%
    Req/Sec   500.00    100.00     0.70k    70.00%
  Latency Distribution
     50%   95.00ms
     75%  110.00ms
     90%  130.00ms
     99%    1.50s
  2500 requests in 5.00s, 300.00KB read
  Socket errors: connect 0, read 3, write 1, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:    499.80
Transfer/sec:     60.00KB
"""


def test_parse_wrk_reads_throughput_and_percentiles() -> None:
    result = parse_wrk(WRK_CLEAN)
    assert result == LoadResult(rps=15210.47, p50_ms=3.10, p99_ms=0.812, requests=30421)
    assert result.errors == 0


def test_parse_wrk_sums_socket_errors_and_counts_non_2xx() -> None:
    result = parse_wrk(WRK_FAILING)
    assert (result.rps, result.p50_ms, result.p99_ms) == (499.80, 95.0, 1500.0)
    assert (result.non_2xx, result.socket_errors, result.errors) == (12, 11, 23)


def test_parse_wrk_rejects_output_without_numbers() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize("text, ms", [("812.00us", 0.812), ("3.41ms", 3.41), ("1.02s", 1020.0),
                                      ("1.50m", 90000.0), (" 7ms ", 7.0)])
def test_duration_ms(text: str, ms: float) -> None:
    assert duration_ms(text) == pytest.approx(ms)


def test_duration_ms_rejects_unknown_units() -> None:
    with pytest.raises(ValueError):
        duration_ms("3.4parsecs")


def test_wrk_command_sets_the_host_only_when_asked() -> None:
    assert wrk_command(8080, Request(), 50, 5.0) == [
        "wrk", "-t1", "-c50", "-d5s", "--latency", "http://127.0.0.1:8080/"]
    assert wrk_command(8080, Request("/r999/", "h999.bench.test"), 50, 2.5)[-3:] == [
        "-H", "Host: h999.bench.test", "http://127.0.0.1:8080/r999/"]


def test_request_wire_defaults_the_host_to_the_address() -> None:
    assert Request().wire(81) == b"GET / HTTP/1.1\r\nHost: 127.0.0.1:81\r\n\r\n"
    assert Request("/r1/", "h1.bench.test").wire(81) == (
        b"GET /r1/ HTTP/1.1\r\nHost: h1.bench.test\r\n\r\n")


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 12\r\n\r\nhello world\n"


def test_response_end_waits_for_the_whole_body() -> None:
    assert response_end(b"") is None
    assert response_end(RESPONSE[:20]) is None
    assert response_end(RESPONSE[:-1]) is None
    assert response_end(RESPONSE) == (200, len(RESPONSE))


def test_response_end_finds_the_first_of_pipelined_responses() -> None:
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    assert response_end(not_found + RESPONSE) == (404, len(not_found))


def test_percentile_nearest_rank() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert percentile(ordered, 0.50) == 51.0
    assert percentile(ordered, 0.99) == 100.0
    assert percentile([], 0.99) == 0.0
    assert percentile([4.0], 0.99) == 4.0
