"""Plugin pieces without a gateway: verdicts, framing, the connection pool, the loader."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time
from typing import Any, Callable

import pytest

from dakia_prefork.http.events import RequestHead
from dakia_prefork.message.request import Request
from dakia_prefork.interceptors import Context, Interceptor
from dakia_prefork.interceptors.headers import HeaderList
from dakia_prefork.interceptors.context import Response
from dakia_prefork.plugins import verdict
from dakia_prefork.plugins.loader import PluginError, check_entry, implementation
from dakia_prefork.plugins.pool import PluginPool
from dakia_prefork.plugins.protocol import ProtocolError, call_message, frame, message_length


def make_ctx(target: str = "/a?x=1", headers: list[tuple[bytes, bytes]] | None = None) -> Context:
    head = RequestHead(b"GET", target.encode(), b"1.1", headers or [(b"host", b"h")], None,
                       False, True, False)
    return Context(Request(head, "h", "http", "10.0.0.1"), "app")


def test_call_message_describes_the_request_as_it_goes_upstream() -> None:
    ctx = make_ctx()
    message = call_message(ctx, "request_filter", 3)
    assert message["request"] == {"method": "GET", "path": "/a", "query": "x=1",
                                  "headers": [["host", "h"]]}
    assert message["client"] == {"address": "10.0.0.1", "scheme": "http", "host": "h"}
    assert "response" not in message and not ctx.upstream_request_changed
    ctx.upstream_request.path = "/b"
    assert call_message(ctx, "pre_upstream_request", 4)["request"]["path"] == "/b"


def test_modify_changes_the_upstream_request_only_when_whole() -> None:
    ctx = make_ctx()
    checked = verdict.parse({"verdict": "modify", "path": "/v2", "query": "y=2",
                             "set_headers": {"X-A": "1"}, "remove_headers": ["host"]},
                            "request_filter")
    assert verdict.apply(checked, ctx) is None
    upstream = ctx.upstream_request
    assert (upstream.path, upstream.query, upstream.headers.raw) == ("/v2", "y=2", [(b"x-a", b"1")])
    assert ctx.request.path == "/a"                  # the client's request is untouched


@pytest.mark.parametrize("message, phase, error", [
    ({"verdict": "maybe"}, "request_filter", "unknown verdict"),
    ({}, "request_filter", "unknown verdict"),
    ({"verdict": "respond", "status": 200}, "post_upstream_response", "not possible"),
    ({"verdict": "respond", "status": 99}, "request_filter", "200..599"),
    ({"verdict": "respond", "status": True}, "request_filter", "200..599"),
    ({"verdict": "respond", "status": 403, "headers": {"x": "a\r\nb: c"}}, "request_filter",
     "control"),
    ({"verdict": "respond", "status": 403, "headers": {"content-length": "9"}},
     "request_filter", "framing"),
    ({"verdict": "respond", "status": 403, "body": "a", "body_base64": "YQ=="},
     "request_filter", "not both"),
    ({"verdict": "respond", "status": 403, "body_base64": "!!"}, "request_filter", "base64"),
    ({"verdict": "modify", "path": "no-slash"}, "request_filter", "not a path"),
    ({"verdict": "modify", "path": "/a b"}, "request_filter", "not a path"),
    ({"verdict": "modify", "query": "a\nb"}, "request_filter", "control"),
    ({"verdict": "modify", "set_headers": {"bad name": "x"}}, "request_filter", "invalid"),
    ({"verdict": "modify", "set_headers": {"x": 1}}, "request_filter", "not a string"),
    ({"verdict": "modify", "remove_headers": "x"}, "request_filter", "list"),
    ({"verdict": "modify", "status": 201}, "request_filter", "unexpected member"),
    ({"verdict": "modify", "path": "/x"}, "post_upstream_response", "unexpected member"),
])
def test_bad_verdicts_are_refused(message: dict, phase: str, error: str) -> None:
    with pytest.raises(verdict.VerdictError, match=error):
        verdict.parse(message, phase)


def test_respond_and_response_side_modify() -> None:
    reply = verdict.apply(verdict.parse({"verdict": "respond", "status": 418,
                                         "body_base64": "dGVh", "headers": {"x-k": "v"}},
                                        "request_filter"), make_ctx())
    assert reply is not None and (reply.status, reply.body) == (418, b"tea")
    ctx = make_ctx()
    ctx.response = Response(200, b"", HeaderList([(b"server", b"up")]), None, True)
    verdict.apply(verdict.parse({"verdict": "modify", "status": 299,
                                 "remove_headers": ["server"], "add_headers": {"x": "1"}},
                                "post_upstream_response"), ctx)
    assert ctx.response.status == 299 and ctx.response.headers.raw == [(b"x", b"1")]


def test_framing_limits() -> None:
    assert frame({"a": 1}, 100)[:4] == struct.pack(">I", 7)
    with pytest.raises(ProtocolError, match="limit"):
        frame({"a": "x" * 200}, 100)
    for header in (struct.pack(">I", 0), struct.pack(">I", 101)):
        with pytest.raises(ProtocolError):
            message_length(header, 100)


class FakePlugin:
    """A unix-socket plugin in a thread, answering with ``answer(call)`` (None: hang up)."""

    def __init__(self, path: str, answer: Callable[[dict], Any]) -> None:
        self.path = path
        self.answer = answer
        self.calls: list[dict] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):     # the pool may hang up first
            while True:
                header = conn.recv(4, socket.MSG_WAITALL)
                if len(header) < 4:
                    return
                body = conn.recv(struct.unpack(">I", header)[0], socket.MSG_WAITALL)
                call = json.loads(body)
                self.calls.append(call)
                out = self.answer(call)
                if out is None:
                    return
                conn.sendall(out if isinstance(out, bytes) else frame(out, 1 << 20))

    def close(self) -> None:
        self.server.close()


def test_pool_reuses_connections_and_survives_a_restart(tmp_path) -> None:
    path = str(tmp_path / "p.sock")
    plugin = FakePlugin(path, lambda call: {"id": call["id"], "verdict": "continue"})
    pool = PluginPool(path, max_idle=4)
    for call_id in (1, 2, 3):
        assert pool.call(frame({"id": call_id}, 1000), 2, 1000)["id"] == call_id
    assert len(pool._idle) == 1
    plugin.close()
    os.unlink(path)
    # The pooled connection's server thread is still alive: make it hang up on the next
    # call, as a restarted plugin's old connections do.
    plugin.answer = lambda call: None
    FakePlugin(path, lambda call: {"id": call["id"], "verdict": "continue", "fresh": True})
    assert pool.call(frame({"id": 4}, 1000), 2, 1000) == {"id": 4, "verdict": "continue",
                                                          "fresh": True}


def test_pool_timeouts_and_oversized_answers(tmp_path) -> None:
    slow = FakePlugin(str(tmp_path / "slow.sock"),
                      lambda call: time.sleep(1) or {"verdict": "continue"})
    pool = PluginPool(slow.path, max_idle=4)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.call(frame({"id": 1}, 1000), 0.2, 1000)
    assert time.monotonic() - started < 0.8 and not pool._idle     # a timed-out one is closed
    big = FakePlugin(str(tmp_path / "big.sock"), lambda call: struct.pack(">I", 5000) + b"x")
    with pytest.raises(ProtocolError, match="5000-byte"):
        PluginPool(big.path, 4).call(frame({"id": 1}, 1000), 1, 1000)
    bad = FakePlugin(str(tmp_path / "bad.sock"), lambda call: struct.pack(">I", 3) + b"[1]")
    with pytest.raises(ProtocolError, match="not a JSON object"):
        PluginPool(bad.path, 4).call(frame({"id": 1}, 1000), 1, 1000)
    with pytest.raises(OSError):
        PluginPool(str(tmp_path / "none.sock"), 4).call(frame({"id": 1}, 1000), 1, 1000)


class WithSchema(Interceptor):
    config_schema = {"type": "object", "required": ["n"],
                     "properties": {"n": {"type": "integer", "maximum": 3}}}


def test_loader_resolves_classes_and_checks_their_schema() -> None:
    here = f"{__name__}:WithSchema"
    assert implementation({"name": "mine", "class": here}) is WithSchema
    assert implementation({"name": "server_version"}).name == "server_version"
    assert implementation({"name": "controller"}).name == "controller"
    assert implementation({"name": "no_plugin_has_this_name"}) is None
    with pytest.raises(PluginError, match="built-in"):
        implementation({"name": "cors", "class": here})
    with pytest.raises(PluginError, match="has no 'Nope'"):
        implementation({"name": "mine", "class": f"{__name__}:Nope"})
    assert check_entry(WithSchema, {"name": "mine", "config": {"n": 9}}, "/") == [
        ("config.n", "9 is greater than the maximum of 3")]
    assert check_entry(WithSchema, {"name": "mine", "config": {}}, "/") == [
        ("config.n", "required key is missing")]
    assert check_entry(WithSchema, {"name": "mine", "config": {"n": 1}}, "/") == []
