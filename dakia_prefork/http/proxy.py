"""One client connection: parse requests, route them, proxy them, answer in order.

Theory of operation
-------------------
A ``ClientConnection`` runs in its own greenlet and handles the requests of one downstream
connection strictly one after the other: a pipelined request is not even parsed until the
previous response has been written, so responses go out in request order by construction.

For each request:

1. the head is parsed by the engine (h11 or httptools, behind ``events.RequestParser``);
2. the Host is normalised and matched against the gateway's downstreams (404 if none);
3. the routers pick an upstream (404 if none); the gateway's interceptors, if it has any,
   run ``init``, ``request_filter`` and ``upstream_proxy_filter``, and may answer on their
   own (see ``interceptors/``);
4. a node is chosen (round robin in shared memory), ``pre_upstream_request`` runs, and a
   connection is taken from the pool;
5. the request head is written with hop-by-hop headers removed and X-Forwarded-* and Via
   set, then the body is streamed chunk by chunk as it arrives (re-framed: a chunked body
   is re-chunked, a Content-Length body forwarded as is);
6. the response is parsed as it arrives; ``post_upstream_response`` and
   ``pre_downstream_response`` see its head; it is streamed back, re-framed for the client
   (Content-Length kept, chunked or close-delimited bodies chunked for HTTP/1.1 clients,
   close-delimited for HTTP/1.0 ones), unless an interceptor replaced the body.

Writes to the client are coalesced: every event the parser can produce from one ``recv`` is
serialised into one buffer and written with one ``sendall``, so a small response costs one
write however many events it parses into, and a large one streams with bounded memory.

Errors before the response head has gone out become a short error response (400, 404, 413,
502, 504); after that, the only honest signal left is to close the connection.

A request keeps the ``Runtime`` (config version) it started with even if a reload swaps a
new one in mid-flight: it reads ``ctx.runtime`` once.

A gateway with no interceptors has no chain, and every phase is skipped by one ``is None``
test: the request path costs what it cost before interceptors existed.
"""
from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import gevent

from ..interceptors.body import Body
from ..interceptors.respond import response_parts
from ..routing.hosts import normalise_host
from ..message import wire
from .events import CLOSED, END, ProtocolError, RequestHead, ResponseHead, Headers
from ..message.request import Request
from .upstream import Node, UpstreamConnection, open_connection

if TYPE_CHECKING:
    from ..interceptors import Run
    from ..worker.context import ListenerInfo, WorkerContext
    from ..worker.runtime import UpstreamRuntime

log = logging.getLogger("dakia.proxy")

_RECV = 65536
# A body this small is read and dropped after an early answer, so the connection stays
# usable; a bigger one makes us close instead of reading what nobody wants.
_DISCARD_LIMIT = 65536
_VIA = b"1.1 dakia"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


# A request body up to this size is kept while it streams upstream, so that the request
# can be retried on another node after it went out (idempotent methods only).
RETRY_BODY_LIMIT = 65536
# Methods whose request may be sent twice (RFC 9110 9.2.2): a retry after the request
# went out is only for these.
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"))
_NO_NODE = b"503 Service Unavailable: no upstream node is available\n"


class _UpstreamFailed(Exception):
    """The upstream could not give a response head: answer ``status`` to the client, or
    retry on another node.

    ``message`` goes to the error log (it may name addresses); ``client_message`` is all
    the client is told. ``sent`` is False when nothing of the request reached the node
    (the connection could not be made): such a failure may be retried whatever the method.
    """

    def __init__(self, status: int, message: str,
                 client_message: bytes = b"the upstream broke the connection",
                 sent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.client_message = client_message
        self.sent = sent


class _LookupTimeout(Exception):
    """The connect timeout expired during a name lookup (not an OSError, so that the
    resolver does not take it for the name's failure)."""


class _StaleConnection(Exception):
    """A reused pooled connection was found closed before the request could be replayed."""


class _ClientGone(Exception):
    """The client closed, timed out or broke the framing mid-request: just close."""


class _UpstreamBroke(_ClientGone):
    """The upstream failed once the response head was on its way: the client's connection
    is cut (the only signal left), and the node counts a failure."""


class _Body:
    """A request body as it streams upstream, kept up to ``RETRY_BODY_LIMIT`` bytes so that
    a retry can send it again (and go on reading the client's rest, if any)."""

    __slots__ = ("chunks", "size", "complete", "kept", "continued")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False      # the client's END was read
        self.kept = True           # every byte read so far is in ``chunks``
        self.continued = False     # "100 Continue" went to the client

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.kept:
            if self.size <= RETRY_BODY_LIMIT:
                self.chunks.append(data)
            else:
                self.kept = False
                self.chunks = []


def send_all(sock: socket.socket, data: bytes) -> None:
    """``sendall`` without its fixed cost: gevent's sendall asks the kernel for SO_SNDBUF
    (a syscall) on every call. Most writes here are small and go out in one ``send``."""
    sent = sock.send(data)
    if sent != len(data):
        sock.sendall(memoryview(data)[sent:])


class ClientConnection:
    __slots__ = ("ctx", "sock", "peer", "listener", "parser", "requests", "idle", "linger",
                 "head_at", "_eof")

    def __init__(self, ctx: WorkerContext, sock: socket.socket, peer: str,
                 listener: ListenerInfo) -> None:
        self.ctx = ctx
        self.sock = sock
        self.peer = peer
        self.listener = listener
        self.parser = ctx.engine.request_parser(ctx.limits.max_header_bytes)
        self.requests = 0
        self.idle = False       # waiting for the next request with nothing of it received
        self.linger = False     # answered an error: drain what the client still sends
        self.head_at = 0.0      # when the current exchange's response head arrived
        self._eof = False

    # -- the connection loop -------------------------------------------------------------
    def run(self) -> None:
        ctx = self.ctx
        limits = ctx.limits
        while True:
            self.idle = self.requests > 0
            try:
                event = self._next_event(limits.keepalive_timeout if self.requests
                                         else limits.client_header_timeout)
                if event is END:
                    # The end of a body-less request answered before: body readers consume
                    # their own END, so only these reach the connection loop.
                    event = self._next_event(limits.keepalive_timeout)
            except ProtocolError as exc:
                self._send_error(exc.status, str(exc))
                return
            except _ClientGone:
                return
            if event is CLOSED or not isinstance(event, RequestHead):
                return
            self.requests += 1
            try:
                keep_alive = self._handle(event)
            except _ClientGone:
                return
            except ProtocolError as exc:
                # The request body broke its framing. Every path that reads a body does so
                # before writing a response head, so the client can still get the error.
                self._send_error(exc.status, str(exc))
                return
            if not keep_alive:
                # Not `or ctx.draining`: a response that went out without Connection: close
                # promised the client this connection. Its next request gets the close;
                # closing now would race that request, already on its way.
                return

    def _next_event(self, timeout: float):
        """The next request-side event, reading from the socket as needed."""
        parser = self.parser
        event = parser.next_event()
        while event is None:
            if self._eof:
                raise _ClientGone()
            try:
                self.sock.settimeout(timeout)
                data = self.sock.recv(_RECV)
            except OSError:       # includes timeouts and resets
                raise _ClientGone() from None
            self.idle = False
            if not data:
                self._eof = True
            parser.feed(data)
            event = parser.next_event()
        return event

    # -- one request ---------------------------------------------------------------------
    def _handle(self, head: RequestHead) -> bool:
        """Answer one request; return whether the connection may serve another."""
        started = time.monotonic()
        ctx = self.ctx
        runtime = ctx.runtime
        gateway = runtime.gateways[self.listener.gateway]

        raw_host = b""
        for name, value in head.headers:
            if name == b"host":
                raw_host = value
                break
        host = normalise_host(raw_host.decode("latin-1")) if raw_host else ""
        if host is None:
            return self._answer_early(head, 400, b"400 Bad Request: invalid Host header\n",
                                      started)
        if gateway.hosts.match(host) is None:
            return self._answer_early(head, 404, b"404 Not Found: no such host\n", started)

        request = Request(head, host, self.listener.scheme, self.peer)
        upstream_name = gateway.router.route(request)
        if upstream_name is None:
            return self._answer_early(head, 404, b"404 Not Found: no route\n", started, request)

        chain = gateway.interceptors
        run = None
        if chain is not None:
            run = chain.start(request, upstream_name)
            reply = run.request_phases()
            if reply is not None:
                return self._answer_early(head, reply.status, reply.body, started, request,
                                          run, reply.headers)

        upstream = gateway.upstreams[upstream_name]
        return self._proxy(head, request, upstream, started, run)

    def _answer_early(self, head: RequestHead, status: int, body: bytes, started: float,
                      request: Request | None = None, run: Run | None = None,
                      headers: Headers | None = None) -> bool:
        """Answer without the upstream, consuming a small body so the connection survives."""
        keep_alive = head.keep_alive and not self.ctx.draining
        if head.content_length or head.chunked:
            if head.expect_continue:
                keep_alive = False       # the client may or may not send the body now
            elif keep_alive:
                keep_alive = self._discard_body()
            if not keep_alive:
                # Part of the body may still be coming: drain it while closing, so that
                # closing with unread bytes does not reset the answer away.
                self.linger = True
        return self._send_answer(head, status, body, started, request, run, headers,
                                 keep_alive)

    def _send_answer(self, head: RequestHead, status: int, body: bytes, started: float,
                     request: Request | None, run: Run | None, headers: Headers | None,
                     keep_alive: bool) -> bool:
        """Write the gateway's own answer (after ``pre_downstream_response`` when there are
        interceptors) and log it; the request body, if any, is dealt with already."""
        if run is not None:
            status, body, payload, chunks = self._local_payload(head, run, status, body,
                                                                headers, keep_alive)
            self._write_body(payload, chunks)
        else:
            payload = wire.simple_response(status, body, close=not keep_alive)
            if head.method == b"HEAD":
                payload = payload[:len(payload) - len(body)]
            self._write(payload)
        self.ctx.access(self.peer, head, request, status, len(body), started)
        return keep_alive

    def _write_body(self, payload: bytes, chunks: Iterable[bytes]) -> None:
        """Write a head and its body chunks: an in-memory body in the same write, a file
        chunk by chunk (never held whole). A file that fails mid-body (it shrank) leaves
        only one honest signal, since the head promised its length: closing."""
        if isinstance(chunks, tuple):
            self._write(payload + b"".join(chunks))
            return
        self._write(payload)
        try:
            for chunk in chunks:
                self._write(chunk)
        except OSError as exc:
            log.error("client %s: body cut short: %s", self.peer or "unix socket", exc)
            raise _ClientGone() from None

    @staticmethod
    def _local_payload(head: RequestHead, run: Run, status: int, body: bytes,
                       headers: Headers | None,
                       keep_alive: bool) -> tuple[int, Body, bytes, Iterable[bytes]]:
        """(status, body, head bytes, body chunks) of a gateway answer after
        ``pre_downstream_response``."""
        response = run.local_response(status, body, headers)
        body = response.body or b""
        trailing: Headers = []
        if not keep_alive:
            trailing.append((b"connection", b"close"))
        elif head.http_version == b"1.0":
            trailing.append((b"connection", b"keep-alive"))
        payload, chunks = response_parts(response.status, response.reason,
                                         response.headers.raw, body,
                                         head_only=head.method == b"HEAD", trailing=trailing)
        return response.status, body, payload, chunks

    def _discard_body(self) -> bool:
        """Read and drop a request body up to the discard limit; False if it was bigger."""
        seen = 0
        timeout = self.ctx.limits.client_body_timeout
        while True:
            event = self._next_event(timeout)
            if event is END:
                return True
            if isinstance(event, bytes):
                seen += len(event)
                if seen > _DISCARD_LIMIT:
                    return False

    def _send_error(self, status: int, message: str) -> None:
        body = b"%d %s\n" % (status, wire.REASONS.get(status, b"Error"))
        log.info("client %s: %d %s", self.peer, status, message)
        self.linger = True
        try:
            self._write(wire.simple_response(status, body, close=True))
        except _ClientGone:
            pass

    def _write(self, data: bytes) -> None:
        try:
            self.sock.settimeout(self.ctx.limits.send_timeout)
            send_all(self.sock, data)
        except OSError:
            raise _ClientGone() from None

    # -- proxying ------------------------------------------------------------------------
    def _upstream_head(self, head: RequestHead, node: Node, client: RequestHead) -> bytes:
        """The head sent upstream for ``head``: the client's own, or the one interceptors
        made of it (``client`` is then still the client's, for X-Forwarded-Host)."""
        headers = wire.end_to_end(head.headers)
        forwarded_for = self.peer
        via = _VIA
        kept: Headers = []
        for name, value in headers:
            if name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1") + ", " + self.peer
            elif name == b"via":
                via = value + b", " + _VIA
            elif name in (b"x-forwarded-proto", b"x-forwarded-host", b"expect"):
                continue        # ours replace the client's; Expect is answered here
            else:
                kept.append((name, value))
        if forwarded_for:
            kept.append((b"x-forwarded-for", forwarded_for.encode("latin-1")))
        kept.append((b"x-forwarded-proto", self.listener.scheme_bytes))
        raw_host = next((v for n, v in client.headers if n == b"host"), None)
        if raw_host is not None:
            kept.append((b"x-forwarded-host", raw_host))
        if (raw_host is None if head is client else all(n != b"host" for n, _ in kept)):
            # An HTTP/1.0 client may omit Host; HTTP/1.1 upstreams require one.
            kept.append((b"host", node.host_header))
        kept.append((b"via", via))
        if head.chunked:
            kept.append((b"transfer-encoding", b"chunked"))
        elif head.content_length is not None:
            kept.append((b"content-length", b"%d" % head.content_length))
        return wire.request_head(head.method, head.target, kept)

    def _proxy(self, head: RequestHead, request: Request, upstream: UpstreamRuntime,
               started: float, run: Run | None) -> bool:
        """Pick a node and exchange with it; on a failure, retry on another node when
        ``retries`` allows and the request can be sent again."""
        balancer = upstream.balancer
        kind = upstream.key_kind
        key = None if kind is None else request.path if kind == "url" else (self.peer or None)
        node = balancer.pick(key)
        if node is None:
            log.error("%s %s: upstream %s: no usable node", head.method.decode("latin-1"),
                      request.path, upstream.name)
            return self._answer_early(head, 503, _NO_NODE, started, request, run)
        if run is None:
            sent_head = head
        else:
            resolver = self.ctx.resolver
            reply = run.pre_upstream_request(
                node.label, lambda timeout: open_connection(node, timeout, resolver))
            if reply is not None:
                return self._answer_early(head, reply.status, reply.body, started, request,
                                          run, reply.headers)
            sent_head = run.upstream_head(head)
        upstream_head = self._upstream_head(sent_head, node, head)
        body = _Body() if head.chunked or head.content_length else None
        retries = upstream.retries
        tried: list[Node] = []
        while True:
            try:
                return self._exchange(head, request, run, upstream, node, upstream_head, body,
                                      started)
            except _UpstreamFailed as exc:
                log.error("%s %s: upstream %s (%s): %s", head.method.decode("latin-1"),
                          request.path, upstream.name, node.label, exc)
                if retries > 0 and self._may_retry(head, exc, body):
                    tried.append(node)
                    following = balancer.pick(key, exclude=tried)
                    if following is not None:
                        retries -= 1
                        log.info("%s %s: upstream %s: retrying on %s",
                                 head.method.decode("latin-1"), request.path, upstream.name,
                                 following.label)
                        node = following
                        upstream_head = self._upstream_head(sent_head, node, head)
                        continue
                if exc.status == 502:
                    text = b"502 Bad Gateway: " + exc.client_message + b"\n"
                else:
                    text = b"504 Gateway Timeout: the upstream did not answer in time\n"
                if body is not None and body.complete:
                    return self._answer_early_after_body(head, exc.status, text, started,
                                                         request, run)
                return self._answer_early(head, exc.status, text, started, request, run)

    @staticmethod
    def _may_retry(head: RequestHead, exc: _UpstreamFailed, body: _Body | None) -> bool:
        """Whether the request can go to another node after ``exc``: always when nothing
        reached the node; else only an idempotent method whose body is all still here."""
        if body is not None and not body.kept:
            return False
        return not exc.sent or head.method in IDEMPOTENT

    def _exchange(self, head: RequestHead, request: Request, run: Run | None,
                  upstream: UpstreamRuntime, node: Node, upstream_head: bytes,
                  body: _Body | None, started: float) -> bool:
        """One attempt on ``node``, counted by the balancer (in flight, latency, failures)."""
        balancer = upstream.balancer
        balancer.begin(node)
        self.head_at = 0.0
        sent_at = 0.0
        ok: bool | None = None
        conn: UpstreamConnection | None = None
        try:
            fresh = False
            while True:
                conn = None if fresh else self.ctx.pool.take_idle(node.pool_key,
                                                                  upstream.idle_timeout)
                reused = conn is not None
                if conn is None:
                    conn = self._connect(upstream, node)
                # Only a request with no body can be replayed on a stale connection: its
                # body is read from the client as it is sent.
                replayable = reused and body is None
                try:
                    self._send_request(conn, upstream, head, upstream_head, body, replayable)
                    sent_at = time.monotonic()
                    keep_alive = self._relay_response(conn, replayable, head, request, run,
                                                      upstream, node.label, started)
                except _StaleConnection:
                    # A pooled connection the upstream had closed while it sat idle: once
                    # more on a new connection (the pool may hold more of the same age).
                    fresh = True
                    continue
                ok = True
                return keep_alive
        except _UpstreamFailed:
            ok = False
            raise
        except _UpstreamBroke:
            ok = False
            raise
        except (ProtocolError, _ClientGone):
            if conn is not None:
                conn.close()
            if self.head_at:
                ok = True
            raise
        finally:
            latency = self.head_at - sent_at if self.head_at and sent_at else 0.0
            if balancer.end(node, latency, ok):
                log.warning("upstream %s: node %s ejected by passive health (failures in "
                            "a row)", upstream.name, node.label)

    def _connect(self, upstream: UpstreamRuntime, node: Node) -> UpstreamConnection:
        # A name lookup is bounded by the connect timeout too (only the first one of a name
        # waits; refreshes run aside).
        timer = gevent.Timeout.start_new(upstream.connect_timeout, _LookupTimeout) \
            if node.named else None
        try:
            sock = open_connection(node, upstream.connect_timeout, self.ctx.resolver)
        except (TimeoutError, _LookupTimeout):
            raise _UpstreamFailed(504, "connect timed out", sent=False) from None
        except socket.gaierror as exc:
            raise _UpstreamFailed(502, f"cannot resolve the node's name: {exc}",
                                  b"the upstream's name does not resolve", sent=False) from None
        except ssl.SSLError as exc:
            raise _UpstreamFailed(502, f"TLS handshake failed: {exc}",
                                  b"the TLS handshake with the upstream failed",
                                  sent=False) from None
        except OSError as exc:
            raise _UpstreamFailed(502, f"connect failed: {exc}",
                                  b"the upstream refused the connection", sent=False) from None
        finally:
            if timer is not None:
                timer.close()
        return UpstreamConnection(sock, node.pool_key, node.tls)

    def _send_request(self, conn: UpstreamConnection, upstream: UpstreamRuntime,
                      head: RequestHead, upstream_head: bytes, body: _Body | None,
                      replayable: bool) -> None:
        """Write the head and stream the body upstream as it arrives from the client (after
        what a previous attempt kept of it, on a retry)."""
        conn.sock.settimeout(upstream.write_timeout)
        if body is None:
            self._upstream_send(conn, upstream_head, replayable)
            return
        if head.expect_continue and head.http_version == b"1.1" and not body.continued:
            body.continued = True
            self._write(_CONTINUE)
        chunked = head.chunked
        pending = upstream_head          # the head goes out with the first piece of body
        if body.chunks:
            kept = b"".join(body.chunks)
            pending += wire.chunk(kept) if chunked else kept
        if body.complete:
            self._upstream_send(conn, pending + wire.LAST_CHUNK if chunked else pending, False)
            return
        limit = self.ctx.limits.max_body_bytes
        timeout = self.ctx.limits.client_body_timeout
        while True:
            event = self._next_event(timeout)
            if event is END:
                body.complete = True
                self._upstream_send(conn, pending + wire.LAST_CHUNK if chunked else pending,
                                    False)
                return
            if not isinstance(event, bytes):
                raise ProtocolError("unexpected event in a request body")
            body.add(event)
            if limit is not None and body.size > limit:
                conn.close()
                self._send_error(413, "request body larger than limits.max_body_bytes")
                raise _ClientGone()
            data = wire.chunk(event) if chunked else event
            self._upstream_send(conn, pending + data if pending else data, False)
            pending = b""

    @staticmethod
    def _upstream_send(conn: UpstreamConnection, data: bytes, replayable: bool) -> None:
        if not data:
            return
        try:
            send_all(conn.sock, data)
        except TimeoutError:
            conn.close()
            raise _UpstreamFailed(504, "write timed out") from None
        except OSError as exc:
            conn.close()
            if replayable:
                raise _StaleConnection() from None
            raise _UpstreamFailed(502, f"send failed: {exc}",
                                  b"the upstream broke the connection") from None

    def _relay_response(self, conn: UpstreamConnection, replayable: bool, head: RequestHead,
                        request: Request, run: Run | None, upstream: UpstreamRuntime,
                        node_label: str, started: float) -> bool:
        ctx = self.ctx
        parser = ctx.engine.response_parser(head.method, ctx.limits.max_header_bytes)
        usock = conn.sock
        usock.settimeout(upstream.read_timeout)
        client_http10 = head.http_version == b"1.0"
        keep_client = head.keep_alive and not ctx.draining
        chunked_out = False
        upstream_keep_alive = False
        status = 0
        sent_body = 0
        out: list[bytes] = []
        event = None
        try:
            while True:
                try:
                    event = parser.next_event()
                except ProtocolError as exc:
                    raise _UpstreamFailed(502, f"invalid response: {exc}",
                                          b"the upstream sent an invalid or truncated "
                                          b"response") from None
                if event is None:
                    if out:
                        self._write(b"".join(out))
                        out.clear()
                    try:
                        data = usock.recv(_RECV)
                    except TimeoutError:
                        raise _UpstreamFailed(504, "read timed out") from None
                    except OSError as exc:
                        if replayable:
                            raise _StaleConnection() from None
                        raise _UpstreamFailed(502, f"read failed: {exc}",
                                              b"the upstream sent an invalid or truncated "
                                              b"response") from None
                    if not data and replayable:
                        raise _StaleConnection()
                    replayable = False
                    parser.feed(data)
                    continue
                if isinstance(event, bytes):
                    sent_body += len(event)
                    out.append(wire.chunk(event) if chunked_out else event)
                    continue
                if event is END:
                    if chunked_out:
                        out.append(wire.LAST_CHUNK)
                    if out:
                        self._write(b"".join(out))
                    break
                assert isinstance(event, ResponseHead)
                if event.status < 200:
                    # 100 was already answered by us (Expect is not forwarded); other 1xx
                    # (103 Early Hints) go to HTTP/1.1 clients only.
                    if event.status != 100 and not client_http10:
                        out.append(wire.response_head(event.status, event.reason,
                                                      wire.end_to_end(event.headers)))
                    continue
                status = event.status
                self.head_at = time.monotonic()
                reason = event.reason
                upstream_keep_alive = event.keep_alive
                headers = wire.end_to_end(event.headers)
                body_kind = event.body
                if run is not None:
                    response = run.upstream_response(status, reason, headers,
                                                     body_kind != "none")
                    status, reason = response.status, response.reason
                    headers = response.headers.raw
                    if response.body is not None:
                        return self._relay_replaced(conn, parser, head, request, response.body,
                                                    status, reason, headers, out, keep_client,
                                                    upstream_keep_alive, started,
                                                    upstream.idle_timeout)
                if body_kind == "length":
                    headers.append((b"content-length", b"%d" % event.content_length))
                elif body_kind == "none":
                    if head.method == b"HEAD" or status == 304:
                        # Content-Length of a HEAD/304 describes the GET body: keep it.
                        for name, value in event.headers:
                            if name == b"content-length":
                                headers.append((name, value))
                                break
                elif client_http10:
                    keep_client = False          # close-delimited is all 1.0 understands
                else:
                    chunked_out = True
                    headers.append((b"transfer-encoding", b"chunked"))
                headers.append((b"via", _VIA))
                if not keep_client:
                    headers.append((b"connection", b"close"))
                elif client_http10:
                    headers.append((b"connection", b"keep-alive"))
                out.append(wire.response_head(status, reason, headers))
        except _StaleConnection:
            conn.close()
            raise
        except _UpstreamFailed as exc:
            conn.close()
            if status:
                log.error("%s %s: upstream %s (%s): %s", head.method.decode("latin-1"),
                          request.path, upstream.name, node_label, exc)
                # The head is gone (or about to): the only signal left is to cut the stream.
                if out:
                    try:
                        self._write(b"".join(out))
                    except _ClientGone:
                        pass
                ctx.access(self.peer, head, request, status, sent_body, started)
                raise _UpstreamBroke() from None
            # No head yet: the caller answers the client, or retries on another node.
            raise
        except _ClientGone:
            conn.close()
            ctx.access(self.peer, head, request, status or 499, sent_body, started)
            raise
        if upstream_keep_alive and not parser.trailing_data:
            ctx.pool.put_idle(conn, upstream.idle_timeout)
        else:
            conn.close()
        ctx.access(self.peer, head, request, status, sent_body, started)
        return keep_client

    def _answer_early_after_body(self, head: RequestHead, status: int, body: bytes,
                                 started: float, request: Request, run: Run | None) -> bool:
        """An error response once the request body has been consumed already."""
        return self._send_answer(head, status, body, started, request, run, None,
                                 head.keep_alive and not self.ctx.draining)

    # -- a body replaced by an interceptor -----------------------------------------------
    def _relay_replaced(self, conn: UpstreamConnection, parser, head: RequestHead,
                        request: Request, body: bytes, status: int, reason: bytes,
                        headers: Headers, out: list[bytes], keep_client: bool,
                        upstream_keep_alive: bool, started: float,
                        idle_timeout: float) -> bool:
        """Send the interceptors' body instead of the upstream's, then drop the upstream's.

        The new body goes out with its own Content-Length. The upstream's is read and
        discarded up to the discard limit, so its connection can go back to the pool;
        a longer one is not worth reading, and the connection is closed instead.
        """
        trailing: Headers = [(b"via", _VIA)]
        if not keep_client:
            trailing.append((b"connection", b"close"))
        elif head.http_version == b"1.0":
            trailing.append((b"connection", b"keep-alive"))
        payload, chunks = response_parts(status, reason, headers, body,
                                         head_only=head.method == b"HEAD", trailing=trailing)
        out.append(payload)
        self._write_body(b"".join(out), chunks)
        if upstream_keep_alive and self._drain_upstream(conn, parser):
            self.ctx.pool.put_idle(conn, idle_timeout)
        else:
            conn.close()
        self.ctx.access(self.peer, head, request, status, len(body), started)
        return keep_client

    @staticmethod
    def _drain_upstream(conn: UpstreamConnection, parser) -> bool:
        """Read the rest of a response nobody wants; True if it ended within the limit."""
        seen = 0
        try:
            while True:
                event = parser.next_event()
                if event is END:
                    return not parser.trailing_data
                if event is None:
                    data = conn.sock.recv(_RECV)
                    if not data:
                        return False
                    parser.feed(data)
                elif isinstance(event, bytes):
                    seen += len(event)
                    if seen > _DISCARD_LIMIT:
                        return False
        except (OSError, ProtocolError):
            return False
