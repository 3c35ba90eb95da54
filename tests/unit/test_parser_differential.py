"""The two engines take the same decision, through the same events, on every input.

Each corpus case is fed to both engines whole, a byte at a time, and in random splits (fixed
seeds); the outcomes (heads field by field, body bytes joined, END/CLOSED, the final
ProtocolError status, trailing_data) must be equal, and end with the case's verdict. Then
a seeded mutation fuzz does the same on thousands of damaged valid messages, and a cross
check holds the httptools fast path to the reference on every head it vouches for.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from dakia_prefork.http.engines import H11Engine, HttptoolsEngine, h11_engine, validate
from dakia_prefork.http.events import Headers, ProtocolError, RequestHead, ResponseHead

try:  # tests/unit is a rootdir-relative directory today; keep working if it becomes a package
    from . import parser_corpus as corpus
except ImportError:
    import parser_corpus as corpus  # type: ignore[no-redef]

H11 = H11Engine()
FAST = HttptoolsEngine()

# Byte-at-a-time feeding is quadratic in test time only through the h11 engine's per-feed
# overhead; past this size the random splits cover the same ground.
_BYTEWISE_MAX = 4096


def _random_split(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` cut into two to seven reads at random places."""
    if len(data) < 2:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def _splits(data: bytes, rng: random.Random) -> Iterator[list[bytes]]:
    """The ways a stream is cut into reads: whole, bytewise, and three random cuttings."""
    yield [data]
    if len(data) <= _BYTEWISE_MAX:
        yield [data[i:i + 1] for i in range(len(data))]
    for _ in range(3):
        yield _random_split(data, rng)


Comparison = tuple[list[bytes], corpus.Outcome, corpus.Outcome]


def _request_outcomes(raw: bytes, limit: int, rng: random.Random) -> Iterator[Comparison]:
    """Each split of ``raw`` with the outcomes of the h11 and the httptools engine."""
    for parts in _splits(raw, rng):
        yield (parts, corpus.replay(H11.request_parser(limit), parts),
               corpus.replay(FAST.request_parser(limit), parts))


def _response_outcomes(method: bytes, raw: bytes, limit: int,
                       rng: random.Random) -> Iterator[Comparison]:
    """As _request_outcomes, for a response to ``method``."""
    for parts in _splits(raw, rng):
        yield (parts, corpus.replay(H11.response_parser(method, limit), parts),
               corpus.replay(FAST.response_parser(method, limit), parts))


@pytest.mark.parametrize("case", corpus.REQUESTS, ids=[c.name for c in corpus.REQUESTS])
def test_request_corpus(case: corpus.RequestCase) -> None:
    rng = random.Random(case.name)
    for parts, reference, fast in _request_outcomes(case.raw, case.limit, rng):
        assert fast == reference, f"split into {len(parts)} reads"
        assert corpus.verdict(reference) == case.status, reference


@pytest.mark.parametrize("case", corpus.RESPONSES, ids=[c.name for c in corpus.RESPONSES])
def test_response_corpus(case: corpus.ResponseCase) -> None:
    rng = random.Random(case.name)
    for parts, reference, fast in _response_outcomes(case.method, case.raw, case.limit, rng):
        assert fast == reference, f"split into {len(parts)} reads"
        assert corpus.verdict(reference) == case.status, reference


# --- mutation fuzz ---------------------------------------------------------------------------

# What is inserted or written over: the bytes that matter to HTTP/1.1 framing.
_SPECIAL = [b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x00", b":", b",", b";", b"0", b"a", b"\x7f",
            b"\xff", b"\x0b"]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits: flip a byte, insert a special byte, delete, overwrite."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(4)
        at = rng.randrange(len(out) + 1)
        if op == 1 or not out:
            out[at:at] = rng.choice(_SPECIAL)
            continue
        at = min(at, len(out) - 1)
        if op == 0:
            out[at] = rng.randrange(256)
        elif op == 2:
            del out[at]
        else:
            out[at:at + 1] = rng.choice(_SPECIAL)
    return bytes(out)


# Every corpus message is a seed, the refused ones too: a mutation can repair them, and the
# edge they sit on is where the engines would part.
_REQUEST_SEEDS = [c for c in corpus.REQUESTS if c.raw and len(c.raw) < 2000]
_RESPONSE_SEEDS = [c for c in corpus.RESPONSES if c.raw]


@pytest.mark.parametrize("seed", range(4))
def test_request_mutations(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1000):
        case = rng.choice(_REQUEST_SEEDS)
        raw = _mutate(case.raw, rng)
        reference = corpus.replay(H11.request_parser(case.limit), [raw])
        assert corpus.replay(FAST.request_parser(case.limit), [raw]) == reference, raw
        parts = _random_split(raw, rng)
        assert (corpus.replay(FAST.request_parser(case.limit), parts)
                == corpus.replay(H11.request_parser(case.limit), parts)), (raw, parts)


@pytest.mark.parametrize("seed", range(2))
def test_response_mutations(seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(1000):
        case = rng.choice(_RESPONSE_SEEDS)
        raw = _mutate(case.raw, rng)
        reference = corpus.replay(H11.response_parser(case.method, case.limit), [raw])
        assert corpus.replay(FAST.response_parser(case.method, case.limit), [raw]) == reference, \
            raw
        parts = _random_split(raw, rng)
        assert (corpus.replay(FAST.response_parser(case.method, case.limit), parts)
                == corpus.replay(H11.response_parser(case.method, case.limit), parts)), \
            (raw, parts)


# --- the fast path on its own ----------------------------------------------------------------

def _reference_request(head: bytes) -> object:
    try:
        return corpus.fields(h11_engine.reference_request_head(head, 65536)[0])
    except ProtocolError as exc:
        return ("error", exc.status)


def _reference_response(head: bytes, method: bytes) -> object:
    conn = h11_engine.client_connection(method, 65536)
    try:
        return corpus.fields(h11_engine.reference_response_head(conn, head, method))
    except ProtocolError as exc:
        return ("error", exc.status)


def test_fast_path_agrees_with_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whenever validate vouches for llhttp's result, h11 gives that very result.

    The differential tests cannot tell a right fast path from a fallback to the reference;
    this one judges every head the fast path decided on by itself, and checks that the
    fast path does decide on most well-formed heads.
    """
    decided: list[bool] = []
    plain_request, plain_response = validate.request, validate.response

    def request(head: bytes, url: bytes, headers: Headers) -> RequestHead | None:
        try:
            result = plain_request(head, url, headers)
        except ProtocolError as exc:
            assert _reference_request(head) == ("error", exc.status), head
            raise
        decided.append(result is not None)
        if result is not None:
            assert _reference_request(head) == corpus.fields(result), head
        return result

    def response(head: bytes, status: int, reason: bytes, headers: Headers,
                 method: bytes, websocket: bool = False) -> ResponseHead | None:
        try:
            result = plain_response(head, status, reason, headers, method, websocket)
        except ProtocolError as exc:
            assert _reference_response(head, method) == ("error", exc.status), head
            raise
        decided.append(result is not None)
        if result is not None:
            assert _reference_response(head, method) == corpus.fields(result), head
        return result

    monkeypatch.setattr(validate, "request", request)
    monkeypatch.setattr(validate, "response", response)
    rng = random.Random(7)
    for case in corpus.REQUESTS:
        corpus.replay(FAST.request_parser(case.limit), [case.raw])
    for rcase in corpus.RESPONSES:
        corpus.replay(FAST.response_parser(rcase.method, rcase.limit), [rcase.raw])
    assert decided.count(True) > 0.8 * len(decided)
    for _ in range(2000):
        case = rng.choice(_REQUEST_SEEDS)
        corpus.replay(FAST.request_parser(case.limit), [_mutate(case.raw, rng)])
        rcase = rng.choice(_RESPONSE_SEEDS)
        corpus.replay(FAST.response_parser(rcase.method, rcase.limit), [_mutate(rcase.raw, rng)])
