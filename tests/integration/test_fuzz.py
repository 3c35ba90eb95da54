"""Generated requests against a running gateway, under both engines (hypothesis).

Four kinds of input, each sent over a fresh connection in reads split at generated points,
then the sending side is shut (EOF, so an incomplete head is answered at once instead of
at the header timeout):

* valid: one to three pipelined requests, Content-Length or chunked bodies;
* mutated: a valid stream with bytes flipped, inserted (the bytes that matter to framing)
  or deleted;
* smuggling-shaped: a valid stream with a second framing header or a hostile chunk line;
* random bytes.

Properties: every response the gateway writes has a well-formed status line with a
4xx/5xx (or the upstream's 200); each valid request is answered 200, in order, in
responses h11 reads without a framing error; the connection ends (a response, or a close); a well-formed request on a
new connection right after is answered 200; and the worker is the one that started (no
crash, no respawn). Derandomized with a bounded number of examples, so CI runs the same
inputs each time in a few seconds.
"""
from __future__ import annotations

import importlib.util
import re
import socket
from collections.abc import Iterator
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import Gateway, Upstream, free_port, gateway_config, node

_TIMEOUT = 10.0
_SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [^\r\n]*\r\n")
_STATUS_LINE_ANYWHERE = re.compile(rb"(?:^|\r\n)HTTP/1\.1 ([0-9]{3}) ")


@pytest.fixture(scope="module", params=["h11", "httptools"])
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, int, Upstream]]:
    """One gateway per engine for the whole module, with its worker's pid and upstream."""
    if request.param == "httptools" and importlib.util.find_spec("httptools") is None:
        pytest.fail("httptools is not installed: pip install -e '.[fast,test]'")
    up = Upstream(name="fuzz")
    directory = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    config = gateway_config(str(directory), free_port(),
                            [{"name": "app", "upstream_nodes": [node(up.port)]}],
                            engine=request.param)
    gw = Gateway(str(directory), config)
    try:
        gw.start()
        [worker] = gw.workers()
        yield gw, worker["pid"], up
    finally:
        gw.stop()
        up.close()


# --- generated inputs --------------------------------------------------------------------

_tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_values = st.text(alphabet="".join(map(chr, range(0x21, 0x7f))) + " ", max_size=24) \
    .map(str.strip)
# Valid paths: escapes only whole (%XX), and no dot segment that could climb above the root
# (both are 400s of path normalisation; the mutated and random inputs still send them).
_paths = st.lists(st.sampled_from(["a", "b", "c", "/", "-", "_", "~", "%20", "%41", "a.b"]),
                  max_size=12).map(lambda parts: "/" + "".join(parts))


@st.composite
def valid_request(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]))
    headers = [("Host", "fuzz.example")]
    names = draw(st.lists(_tokens.filter(lambda n: n not in (
        "host", "content-length", "transfer-encoding", "connection", "expect", "upgrade",
        "te", "keep-alive", "trailer", "proxy-connection")).map(lambda n: "x-" + n),
        max_size=4, unique=True))
    headers += [(name, draw(_values)) for name in names]
    body = b""
    framing = draw(st.sampled_from(["none", "length", "chunked"])) if method != "HEAD" \
        else "none"
    if framing == "length":
        data = draw(st.binary(max_size=64))
        headers.append(("Content-Length", str(len(data))))
        body = data
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3)):
            ext = draw(st.sampled_from(["", ";a", ";a=b", ' ; n = "q s"']))
            body += b"%x%s\r\n%s\r\n" % (len(chunk), ext.encode(), chunk)
        body += b"0\r\n\r\n"
    head = f"{method} {draw(_paths)} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers) + "\r\n"
    return head.encode("latin-1") + body


valid_streams = st.lists(valid_request(), min_size=1, max_size=3).map(b"".join)

_SPECIAL = [b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x00", b":", b";", b"0", b"f" * 17,
            b"\x7f", b"\xff", b"\r\r", b"Transfer-Encoding: chunked\r\n",
            b"Content-Length: 3\r\n", b"\r\n\r\n"]


@st.composite
def mutated_stream(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_streams))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "flip"]))
        if op == "insert" or not data:
            data[at:at] = draw(st.sampled_from(_SPECIAL))
        elif op == "delete":
            del data[min(at, len(data) - 1):at + draw(st.integers(1, 4))]
        else:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
    return bytes(data)


_SMUGGLING_BODIES = [b"5;a=b\r\r\nhello\r\n0\r\n\r\n", b"00000000000000005\r\nhello\r\n0\r\n\r\n",
                     b"5 \r\nhello\r\n0\r\n\r\n", b"5\nhello\r\n0\r\n\r\n",
                     b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"]


_REFUSED_HEADS = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n",
]
_CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"


@st.composite
def smuggling_stream(draw: st.DrawFn) -> bytes:
    """A head that frames its body two ways, or a chunked body a lenient reader would take:
    each is refused (400, or 501 for a coding it does not know) before anything is sent
    upstream after it."""
    if draw(st.booleans()):
        return draw(st.sampled_from(_REFUSED_HEADS)) + b"\r\n" + \
            draw(st.sampled_from(_SMUGGLING_BODIES))
    return _CHUNKED + b"\r\n" + draw(st.sampled_from(_SMUGGLING_BODIES[:-1]))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:]) if b > a] or [data]


def _send(port: int, parts: list[bytes]) -> tuple[bytes, bool]:
    """Send ``parts`` as separate writes, shut our side, read to the end: (bytes, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for part in parts:
                sock.sendall(part)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass          # the gateway may answer and close before reading it all
        out = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return bytes(out), True
            except socket.timeout:
                return bytes(out), False
            if not chunk:
                return bytes(out), True
            out += chunk


def _strict_statuses(answer: bytes, methods: list[bytes]) -> list[int]:
    """The statuses of the responses to ``methods``, read by h11 (framing errors fail)."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(answer)
    client.receive_data(b"")
    statuses = []
    for method in methods:
        client.send(h11.Request(method=method, target="/", headers=[("host", "a")]))
        client.send(h11.EndOfMessage())
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                statuses.append(event.status_code)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return statuses
            assert event is not h11.NEED_DATA, answer
        if client.our_state is h11.MUST_CLOSE:
            break
        client.start_next_cycle()
    return statuses


def _statuses(answer: bytes) -> list[int]:
    """Every status line in ``answer``, which must start with one (or be empty)."""
    if not answer:
        return []
    assert _STATUS_LINE.match(answer), answer[:200]
    return [int(m.group(1)) for m in _STATUS_LINE_ANYWHERE.finditer(answer)]


def _check(live: tuple[Gateway, int, Upstream], parts: list[bytes],
           methods: list[bytes] | None = None) -> None:
    gw, pid, _ = live
    answer, closed = _send(gw.port, parts)
    assert closed, f"the gateway neither answered to the end nor closed: {answer[:200]!r}"
    if methods:
        assert _strict_statuses(answer, methods) == [200] * len(methods), answer[:300]
    else:
        statuses = _statuses(answer)
        assert all(s == 200 or 400 <= s < 600 for s in statuses), statuses
    after, _ = _send(gw.port, [b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"])
    assert after.startswith(b"HTTP/1.1 200 "), after[:200]
    assert [w["pid"] for w in gw.workers()] == [pid], "the worker was replaced"


_cuts = st.lists(st.integers(0, 4096), max_size=6)


@_SETTINGS
@given(st.lists(valid_request(), min_size=1, max_size=3), _cuts)
def test_valid_requests_are_all_answered(live: Any, requests: list[bytes],
                                         cuts: list[int]) -> None:
    _check(live, _split(b"".join(requests), cuts), [r.split(b" ", 1)[0] for r in requests])


@_SETTINGS
@given(mutated_stream(), _cuts)
def test_mutated_requests_never_hurt_the_worker(live: Any, data: bytes, cuts: list[int]) -> None:
    _check(live, _split(data, cuts))


@_SETTINGS
@given(smuggling_stream(), _cuts)
def test_smuggling_shapes_are_refused(live: Any, data: bytes, cuts: list[int]) -> None:
    gw, _, up = live
    _check(live, _split(data, cuts))
    answer, _ = _send(gw.port, [data])
    assert _statuses(answer)[:1] in ([400], [501]), answer[:200]
    assert all(r.target != "/smuggled" for r in up.received)


@_SETTINGS
@given(st.binary(max_size=600), _cuts)
def test_random_bytes_never_hurt_the_worker(live: Any, data: bytes, cuts: list[int]) -> None:
    _check(live, _split(data, cuts) if data else [b""])
