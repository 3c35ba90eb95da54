"""Config regexes meet hostile client bytes in a running gateway, both engines: a pattern
that backtracks exponentially on Python's re (``^(a+)+$`` against ``aaa…a-``) answers at
once on RE2, and the worker keeps serving.

"At once" is bounded by the client's timeout (10 s), never by a timed assertion: on a
backtracking engine any of these requests would hold the worker for longer than the
universe has existed, so it could not finish in time.
"""
from __future__ import annotations

import requests

from .harness import node, raw_exchange

_CLIENT_TIMEOUT = 10.0
_EVIL = "a" * 50_000
# A Host is one DNS could hold (labels of at most 63 octets), so the Host regexes get one
# label: 60 a's are 2^60 paths for a backtracking engine, as hopeless as 50,000.
_EVIL_HOST = "a" * 60


def _request(port: int, target: str, host: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", *headers, "Connection: close"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    answer = raw_exchange(port, raw, timeout=_CLIENT_TIMEOUT)
    assert answer, "no answer within the client's timeout"
    return answer


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_catastrophic_regexes_answer_promptly(engine, upstreams, gateways):
    matched = upstreams(name="matched")
    other = upstreams(name="other")
    gw = gateways(
        [{"name": "matched", "upstream_nodes": [node(matched.port)]},
         {"name": "other", "default": True, "upstream_nodes": [node(other.port)]}],
        engine=engine,
        gateway={
            "downstreams": [{"host": "ok.example"}, {"host": "~^(a+)+$"},
                            {"host": "~^(x|xx)+y$"}],
            "filters": [
                {"name": "probe", "$or": [{"header.x-probe": {"$matches": "^(a|aa)+$"}},
                                          {"path": {"$matches": "^/p/(a+)+$"}}]}],
            "routers": [{"upstream": "matched", "filter": "probe"}, {"upstream": "default"}],
            "interceptors": [{"name": "request_rewrite", "config": {
                "path_regex": {"pattern": "^/r/(a+)+b$", "replacement": "/rewritten"}}}],
        })
    [worker] = gw.workers()

    # Host regexes: 60 a's and a '-' match neither; 404, promptly.
    assert _status(_request(gw.port, "/", _EVIL_HOST + "-")) == 404
    assert _status(_request(gw.port, "/", "x" * 60 + "z")) == 404
    # A Host longer than DNS allows never reaches a regex at all.
    assert _status(_request(gw.port, "/", _EVIL + "-")) == 400
    # $matches on a header and on the path: no match, so the default route.
    answer = _request(gw.port, "/", "ok.example", f"X-Probe: {_EVIL}!")
    assert _status(answer) == 200 and answer.endswith(b"other"), answer[-200:]
    answer = _request(gw.port, f"/p/{_EVIL}!", "ok.example")
    assert _status(answer) == 200 and answer.endswith(b"other"), answer[-200:]
    # A rewrite pattern: no match, the path goes upstream unchanged.
    answer = _request(gw.port, f"/r/{_EVIL}!", "ok.example")
    assert _status(answer) == 200
    assert other.received[-1].target == f"/r/{_EVIL}!"

    # The same patterns still match what they should.
    assert _status(_request(gw.port, "/", "aaaa")) == 200
    answer = _request(gw.port, "/", "ok.example", "X-Probe: aaa")
    assert answer.endswith(b"matched"), answer[-200:]
    assert _status(_request(gw.port, "/r/aab", "ok.example")) == 200
    assert other.received[-1].target == "/rewritten"

    # The worker that ran them all is the one that started, and it still serves.
    assert [w["pid"] for w in gw.workers()] == [worker["pid"]]
    response = requests.get(gw.url + "/", headers={"Host": "ok.example"},
                            timeout=_CLIENT_TIMEOUT)
    assert response.status_code == 200


def test_check_refuses_what_re2_cannot_run(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  start=False,
                  gateway={"downstreams": [{"host": r"~^(a)\1$"}],
                           "filters": [{"name": "f", "path": {"$matches": "^/(?!admin)"}}],
                           "routers": [{"upstream": "app", "filter": "f"}]})
    gw.write_config()
    result = gw.cli("check")
    assert result.returncode == 1, result
    assert "gateways[0].downstreams[0].host: invalid regex: invalid escape sequence" \
        in result.stderr + result.stdout, result
    assert "gateways[0].filters[0].path.$matches: invalid regex: invalid perl operator" \
        in result.stderr + result.stdout, result
