"""The parser corpus and seeded mutants of it, sent to a live gateway: verdicts hold on the
wire, and no input, however malformed, kills a worker."""
from __future__ import annotations

import os
import random
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

from dakia_prefork.http.engines import select_engine
from dakia_prefork.http.events import ProtocolError, RequestHead

from .harness import node, raw_exchange

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "unit"))
import parser_corpus as corpus  # noqa: E402

_SPECIAL = [b"\r", b"\n", b"\r\n", b" ", b"\x00", b":", b"\xff", b"0", b"-", b"chunked"]


def _mutants(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    seeds = [c.raw for c in corpus.REQUESTS if c.raw and len(c.raw) < 2000]
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data) + 1)
            kind = rng.random()
            if kind < 0.4:
                data[at:at] = rng.choice(_SPECIAL)
            elif kind < 0.7 and data:
                del data[at:at + rng.randint(1, 4)]
            elif data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
        out.append(bytes(data))
    return out


def _first_request_closes(raw: bytes) -> bool:
    parser = select_engine("h11").request_parser()
    parser.feed(raw)
    try:
        event = parser.next_event()
    except ProtocolError:
        return False
    return isinstance(event, RequestHead) and not event.keep_alive


def test_corpus_and_mutants_against_a_live_gateway(engine, upstreams, gateways):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine)
    [worker] = gw.workers()

    def send(data: bytes) -> bytes:
        return raw_exchange(gw.port, data, timeout=5, half_close=True)

    cases = [c for c in corpus.REQUESTS if c.limit == 65536]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, [c.raw for c in cases]))
        mutant_answers = list(pool.map(send, _mutants(400, seed=20261126)))

    for case, answer in zip(cases, answers):
        if case.status is None:
            assert b" 400 " not in answer.split(b"\r\n", 1)[0], (case.name, answer[:200])
        elif _first_request_closes(case.raw):
            # The first request ends the connection (Connection: close, HTTP/1.0): the
            # gateway answers it and never reads what follows.
            assert answer.count(b"HTTP/1.1 ") == 1, (case.name, answer[:300])
        else:
            assert b"HTTP/1.1 %d " % case.status in answer, (case.name, answer[:300])
    for answer in mutant_answers:
        assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer[:200]

    assert [w["pid"] for w in gw.workers()] == [worker["pid"]]
    assert "respawning" not in gw.log_text()
    assert requests.get(gw.url + "/", timeout=5).status_code == 200
