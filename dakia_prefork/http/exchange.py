"""One request on its way through the gateway: route it, run its interceptors, proxy it.

Theory of operation
-------------------
An ``Exchange`` is made by the connection loop for each request head and holds everything
about that request: the head, the routed ``Request``, the interceptor ``Run``, the upstream,
the node of the current attempt, the body as it streams, the status and the byte count of
the response. It is given the config version (``Runtime``) it runs on, so a reload swapped
in mid-flight never changes the rules under it.

1. The Host is matched against the gateway's downstreams (400 for an invalid one, 404 for
   an unknown one); header names with ``_`` are dropped or refused
   (``headers_with_underscores``); the path is made canonical (message/paths.py: 400 for
   one above the root), and the head sent on carries it unless ``forward_raw_path``. Then
   the routers pick an upstream (404 if none); the request-side phases of the
   interceptors run and may answer on their own. Every 400 closes the connection.
2. A node is chosen (the upstream's balancer: shared-memory state, health),
   ``pre_upstream_request`` runs, and a connection is taken from the worker's pool or
   opened (client.py).
3. The request head is written with hop-by-hop headers removed and X-Forwarded-* and Via
   set (forwarding.py); the body follows chunk by chunk as it arrives, re-framed (a
   chunked body is re-chunked, a Content-Length one forwarded as it is), and the first
   64 KiB are kept so that a failed attempt can be retried on another node.
4. The response is read with the engine's parser as it arrives; ``post_upstream_response``
   and ``pre_downstream_response`` see its head; it streams back re-framed for the client
   (Content-Length kept, chunked or close-delimited bodies chunked for HTTP/1.1 clients,
   close-delimited for HTTP/1.0 ones), unless an interceptor replaced the body.

Writes to the client are coalesced: every event the parser can produce from one ``recv`` is
serialised into one buffer and written with one ``send``, so a small response costs one
write however many events it parses into, and a large one streams with bounded memory.

WebSocket (``head.upgrade``): the handshake is routed, filtered and intercepted like any
request, and its head goes upstream with the upgrade asked for (forwarding.py). A 101 is
sent on (with the upstream's end-to-end headers; the response phases do not run, as there
is no response to rewrite, only a tunnel) and the exchange becomes a ``Tunnel``
(tunnel.py) until either side closes; its access-log line is written then (status 101,
bytes both ways). Any other answer is an ordinary response, and the connection stays HTTP.

Retries: a connect failure may go to another node whatever the method; after any of the
request reached a node, only an idempotent method whose body is still all here. A pooled
connection found closed is replaced once by a fresh one without counting as a retry, for
idempotent methods only: for the others it is a failure like any other (502), since the
upstream may have read the request before it closed.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..acme.storage import CHALLENGE_PREFIX, challenge_answer
from ..interceptors.body import Body
from ..interceptors.context import RATE_LIMITED
from ..interceptors.respond import response_parts
from ..message import paths, wire
from ..message.heads import END, Headers, ProtocolError, RequestHead, ResponseHead
from ..message.request import Request
from ..message.underscores import REJECT as REJECT_UNDERSCORES, without_underscores
from ..routing import realip
from ..tls import redirect
from ..tls.subject import with_subject
from . import client, forwarding
from .errors import ClientGone, StaleConnection, UpstreamBroke, UpstreamFailed
from .tunnel import Tunnel
from .upstream import Node, UpstreamConnection, open_connection

if TYPE_CHECKING:
    from ..interceptors import Run
    from ..metrics.recorder import RouteMetrics
    from ..worker.runtime import Runtime, UpstreamRuntime
    from .connection import DownstreamConnection

log = logging.getLogger("dakia.proxy")

# A body this small is read and dropped after an early answer; see connection.py.
_DISCARD_LIMIT = 65536
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED_TAIL = (b"transfer-encoding", b"chunked")
_VIA_TAIL = (b"via", forwarding.VIA)
_SWITCHED_TAIL: Headers = [*forwarding.WEBSOCKET_HEADERS, _VIA_TAIL]
_CLOSE_TAIL = (b"connection", b"close")
_KEEP_ALIVE_TAIL = (b"connection", b"keep-alive")
_NO_NODE = b"503 Service Unavailable: no upstream node is available\n"
_BAD_HOST = b"400 Bad Request: invalid Host header\n"
_NO_HOST = b"404 Not Found: no such host\n"
_UNDERSCORE = b"400 Bad Request: header name with an underscore\n"
_BAD_PATH = b"400 Bad Request: invalid path\n"
_NO_ROUTE = b"404 Not Found: no route\n"
_NO_CHALLENGE = b"404 Not Found: no such ACME challenge\n"
_NOT_ALLOWED = b"405 Method Not Allowed\n"
_OCTET_STREAM = (b"content-type", b"application/octet-stream")
_TIMED_OUT = b"504 Gateway Timeout: the upstream did not answer in time\n"

# A request body up to this size is kept while it streams upstream, so that the request
# can be retried on another node after it went out (idempotent methods only).
RETRY_BODY_LIMIT = 65536
# Methods whose request may be sent twice (RFC 9110 9.2.2): a retry after the request
# went out is only for these.
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"))


class RequestBody:
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


def _with_target(head: RequestHead, target: bytes) -> RequestHead:
    return RequestHead(head.method, target, head.http_version, head.headers,
                       head.content_length, head.chunked, head.keep_alive,
                       head.expect_continue, head.upgrade)


def _host_of(head: RequestHead) -> bytes:
    for name, value in head.headers:
        if name == b"host":
            return value
    return b""


class Exchange:
    __slots__ = ("conn", "ctx", "runtime", "head", "started", "request", "run_", "head_at",
                 "client", "forwarded", "metrics", "proxying", "node_label",
                 "upstream_started", "request_body")

    def __init__(self, conn: DownstreamConnection, head: RequestHead, runtime: Runtime) -> None:
        self.conn = conn
        self.ctx = conn.ctx
        self.runtime = runtime              # the config version this request runs on
        self.head = head
        self.started = time.monotonic()
        self.request: Request | None = None
        self.run_: Run | None = None        # the interceptors' run, when there are any
        self.head_at = 0.0                  # when the current attempt's response head came
        # The client's address: the peer, or what a trusted proxy says (routing/realip.py);
        # with real_ip, ``forwarded`` is the X-Forwarded-For to send before the peer.
        self.client = conn.peer
        self.forwarded: str | None = None
        # For the access log and the metrics (worker/context.py's ``access``): the route's
        # counters, whether the proxy began (the upstream label), the node of the last
        # attempt, when the first attempt began (0.0: none), the request body streamed.
        self.metrics: RouteMetrics | None = None
        self.proxying = False
        self.node_label = ""
        self.upstream_started = 0.0
        self.request_body: RequestBody | None = None

    # -- routing -------------------------------------------------------------------------
    def run(self) -> bool:
        """Answer the request; return whether the connection may serve another."""
        head = self.head
        conn = self.conn
        gateway = self.runtime.gateways[conn.listener.gateway]
        self.metrics = gateway.unrouted_metrics
        real_ip = gateway.real_ip
        if real_ip is not None:
            self.client, self.forwarded = real_ip.resolve(conn.peer, head.headers)
        challenges = gateway.acme_challenges
        if challenges is not None and head.target.startswith(CHALLENGE_PREFIX):
            # Before the Host check: the CA asks for the certificate's names, which need
            # not be downstreams of the gateway.
            return self._answer_challenge(challenges)
        host, known = gateway.host_lookup.lookup(_host_of(head))
        if host is None:
            return self.answer_early(400, _BAD_HOST)
        if not known:
            return self.answer_early(404, _NO_HOST)
        underscores = gateway.underscores
        if underscores:
            for name, _ in head.headers:
                if b"_" in name:
                    if underscores == REJECT_UNDERSCORES:
                        return self.answer_early(400, _UNDERSCORE)
                    head = self.head = without_underscores(head)
                    break
        if head.target == b"*":
            # OPTIONS * (the engines' policy lets ``*`` through for OPTIONS only) asks about
            # the server, not a resource: the gateway is the server asked.
            return self.answer_early(200, b"")
        label = conn.listener.label
        if gateway.https_redirect and label in gateway.https_redirect:
            if not host:                # HTTP/1.0 without Host: no name to send it to
                return self.answer_early(400, _BAD_HOST)
            return self.answer_early(redirect.status_for(head.method), b"", [
                (b"location", redirect.location(host, gateway.https_redirect[label],
                                                head.target))])
        listener_tls = gateway.tls.get(label) if gateway.tls else None
        if listener_tls is not None and listener_tls.subject_header is not None:
            # Ours alone: a client's header of that name never passes (tls/subject.py).
            head = self.head = with_subject(head, listener_tls.subject_header,
                                            conn.client_subject)
        request = self.request = Request(head, host, conn.listener.scheme, self.client)
        request.client_subject = conn.client_subject
        if self.forwarded is not None:
            request.forwarded_for = realip.joined(self.forwarded, conn.peer)
        path = request.path
        if not paths.is_canonical(path):
            canonical = paths.normalise(path, gateway.merge_slashes, gateway.escaped_slashes)
            if canonical is None:
                return self.answer_early(400, _BAD_PATH)
            if canonical != path:
                request.path = canonical
                if not gateway.forward_raw_path:
                    # The query string goes on as it came (len(path): latin-1 is 1:1).
                    head = self.head = request.head = _with_target(
                        head, canonical.encode("latin-1") + head.target[len(path):])
        router = gateway.router
        index = router.match(request)
        if index < 0:
            return self.answer_early(404, _NO_ROUTE)
        metrics = self.metrics = gateway.route_metrics[index]
        upstream_name = router.targets[index]
        chain = gateway.interceptors
        if chain is not None:
            run = self.run_ = chain.start(request, upstream_name)
            reply = run.request_phases()
            if reply is not None:
                if reply.status == 429 and metrics is not None and RATE_LIMITED in run.ctx.vars:
                    metrics.rejected()
                return self.answer_early(reply.status, reply.body, reply.headers)
            # An interceptor may send the request to another upstream of the gateway
            # (the controller: to the admin API).
            upstream_name = run.ctx.route
        return self.proxy(gateway.upstreams[upstream_name])

    # -- the gateway's own answers -------------------------------------------------------
    def _answer_challenge(self, challenges: str) -> bool:
        """An ACME HTTP-01 request: the answer the ACME process left for its token."""
        head = self.head
        if head.method not in (b"GET", b"HEAD"):
            return self.answer_early(405, _NOT_ALLOWED, [(b"allow", b"GET, HEAD")])
        token = head.target[len(CHALLENGE_PREFIX):].partition(b"?")[0]
        answer = challenge_answer(challenges, token)
        if answer is None:
            return self.answer_early(404, _NO_CHALLENGE)
        return self.answer_early(200, answer, [_OCTET_STREAM])

    def answer_early(self, status: int, body: Body, headers: Headers | None = None) -> bool:
        """Answer without the upstream, consuming a small body so the connection survives."""
        head = self.head
        # A 400 closes: a request the gateway could not read leaves the next one suspect
        # (where does it start?), whatever its framing said.
        keep_alive = head.keep_alive and not self.ctx.draining and status != 400
        if head.content_length or head.chunked:
            if head.expect_continue:
                keep_alive = False       # the client may or may not send the body now
            elif keep_alive:
                keep_alive = self.conn.discard_body()
            if not keep_alive:
                # Part of the body may still be coming: drain it while closing, so that
                # closing with unread bytes does not reset the answer away.
                self.conn.linger = True
        return self.send_answer(status, body, headers, keep_alive)

    def send_answer(self, status: int, body: Body, headers: Headers | None,
                    keep_alive: bool) -> bool:
        """Write the gateway's own answer (after ``pre_downstream_response`` when there are
        interceptors) and log it; the request body, if any, is dealt with already."""
        head = self.head
        run = self.run_
        if run is not None:
            status, body, payload, chunks = self._local_payload(run, status, body, headers,
                                                                keep_alive)
            self.write_body(payload, chunks)
        else:
            assert isinstance(body, bytes)
            if keep_alive and head.http_version == b"1.0":
                # A 1.0 client takes the connection for closed unless told otherwise.
                headers = [*(headers or ()), _KEEP_ALIVE_TAIL]
            payload = wire.simple_response(status, body, close=not keep_alive, extra=headers)
            if head.method == b"HEAD":
                payload = payload[:len(payload) - len(body)]
            self.conn.write(payload)
        self.ctx.access(self, status, len(body))
        return keep_alive

    def write_body(self, payload: bytes, chunks: Iterable[bytes]) -> None:
        """Write a head and its body chunks: an in-memory body in the same write, a file
        chunk by chunk (never held whole). A file that fails mid-body (it shrank) leaves
        only one honest signal, since the head promised its length: closing."""
        write = self.conn.write
        if isinstance(chunks, tuple):
            write(payload + b"".join(chunks))
            return
        write(payload)
        try:
            for chunk in chunks:
                write(chunk)
        except OSError as exc:
            log.error("client %s: body cut short: %s", self.conn.peer or "unix socket", exc)
            raise ClientGone() from None

    def _local_payload(self, run: Run, status: int, body: Body, headers: Headers | None,
                       keep_alive: bool) -> tuple[int, Body, bytes, Iterable[bytes]]:
        """(status, body, head bytes, body chunks) of a gateway answer after
        ``pre_downstream_response``."""
        head = self.head
        response = run.local_response(status, body, headers)
        body = response.body or b""
        trailing: Headers = []
        if not keep_alive:
            trailing.append(_CLOSE_TAIL)
        elif head.http_version == b"1.0":
            trailing.append(_KEEP_ALIVE_TAIL)
        payload, chunks = response_parts(response.status, response.reason,
                                         response.headers.raw, body,
                                         head_only=head.method == b"HEAD", trailing=trailing)
        return response.status, body, payload, chunks

    # -- proxying ------------------------------------------------------------------------
    def proxy(self, upstream: UpstreamRuntime) -> bool:
        """Pick a node and exchange with it; on a failure, retry on another node when
        ``retries`` allows and the request can be sent again."""
        head = self.head
        request = self.request
        assert request is not None
        self.proxying = True
        balancer = upstream.balancer
        kind = upstream.key_kind
        key = None if kind is None else request.path if kind == "url" else (self.client
                                                                             or None)
        node = balancer.pick(key)
        if node is None:
            log.error("%s %s: upstream %s: no usable node", head.method.decode("latin-1"),
                      request.path, upstream.name)
            return self.answer_early(503, _NO_NODE)
        run = self.run_
        if run is None:
            sent_head = head
        else:
            resolver = self.ctx.resolver
            chosen = node
            reply = run.pre_upstream_request(
                node.label, lambda timeout: open_connection(chosen, timeout, resolver))
            if reply is not None:
                return self.answer_early(reply.status, reply.body, reply.headers)
            sent_head = run.upstream_head(head)
        conn = self.conn
        if self.forwarded is not None:
            # X-Forwarded-For rebuilt from the trusted chain (forwarding.py appends the peer),
            # X-Real-IP set to the client when that is the header real_ip reads.
            real_ip = self.runtime.gateways[conn.listener.gateway].real_ip
            sent_head = realip.with_forwarded_for(
                sent_head, self.forwarded,
                None if real_ip is None or real_ip.list_header else self.client)
        scheme = conn.listener.scheme_bytes
        upstream_head = forwarding.upstream_head(sent_head, head, conn.peer_bytes, scheme,
                                                 node.host_header)
        body = self.request_body = RequestBody() if head.chunked or head.content_length \
            else None
        retries = upstream.retries
        tried: list[Node] = []
        while True:
            try:
                return self.attempt(upstream, node, upstream_head, body)
            except UpstreamFailed as exc:
                log.error("%s %s: upstream %s (%s): %s", head.method.decode("latin-1"),
                          request.path, upstream.name, node.label, exc)
                if retries > 0 and self._may_retry(exc, body):
                    tried.append(node)
                    following = balancer.pick(key, exclude=tried)
                    if following is not None:
                        retries -= 1
                        log.info("%s %s: upstream %s: retrying on %s",
                                 head.method.decode("latin-1"), request.path, upstream.name,
                                 following.label)
                        node = following
                        upstream_head = forwarding.upstream_head(
                            sent_head, head, conn.peer_bytes, scheme, node.host_header)
                        continue
                if exc.status == 502:
                    text = b"502 Bad Gateway: " + exc.client_message + b"\n"
                else:
                    text = _TIMED_OUT
                if body is not None and body.complete:
                    return self.send_answer(exc.status, text, None,
                                            head.keep_alive and not self.ctx.draining)
                return self.answer_early(exc.status, text)

    def _may_retry(self, exc: UpstreamFailed, body: RequestBody | None) -> bool:
        """Whether the request can go to another node after ``exc``: always when nothing
        reached the node; else only an idempotent method whose body is all still here."""
        if body is not None and not body.kept:
            return False
        return not exc.sent or self.head.method in IDEMPOTENT

    def attempt(self, upstream: UpstreamRuntime, node: Node, upstream_head: bytes,
                body: RequestBody | None) -> bool:
        """One attempt on ``node``, counted by the balancer (in flight, latency, failures)."""
        balancer = upstream.balancer
        balancer.begin(node)
        self.node_label = node.label
        if not self.upstream_started:
            self.upstream_started = time.monotonic()
        self.head_at = 0.0
        sent_at = 0.0
        ok: bool | None = None
        uconn: UpstreamConnection | None = None
        pool = self.ctx.pool
        try:
            fresh = False
            while True:
                uconn = None if fresh else pool.take_idle(node.pool_key, upstream.idle_timeout)
                reused = uconn is not None
                if uconn is None:
                    uconn = client.open_upstream(node, upstream.connect_timeout,
                                                 self.ctx.resolver)
                # Waits on it are bounded by deadlines (connection.py), not the socket.
                uconn.set_timeout(None)
                # Only a request with no body can be replayed on a stale connection: its
                # body is read from the client as it is sent. And only an idempotent one:
                # "found closed" after the request went out may mean the upstream read it
                # (and acted on it) before closing, so a POST must not go out twice.
                replayable = reused and body is None and self.head.method in IDEMPOTENT
                try:
                    self._send_request(uconn, upstream, upstream_head, body, replayable)
                    sent_at = time.monotonic()
                    keep_alive = self._relay_response(uconn, replayable, upstream, node.label)
                except StaleConnection:
                    # A pooled connection the upstream had closed while it sat idle: once
                    # more on a new connection (the pool may hold more of the same age).
                    fresh = True
                    continue
                ok = True
                return keep_alive
        except (UpstreamFailed, UpstreamBroke):
            ok = False
            raise
        except (ProtocolError, ClientGone):
            if uconn is not None:
                uconn.close()
            if self.head_at:
                ok = True
            raise
        finally:
            latency = self.head_at - sent_at if self.head_at and sent_at else 0.0
            node_metrics = node.metrics
            if node_metrics is not None and ok is not None:
                node_metrics.observe(latency, ok)
            if balancer.end(node, latency, ok):
                log.warning("upstream %s: node %s ejected by passive health (failures in "
                            "a row)", upstream.name, node.label)
                if node_metrics is not None:
                    node_metrics.ejected()

    def _send_request(self, uconn: UpstreamConnection, upstream: UpstreamRuntime,
                      upstream_head: bytes, body: RequestBody | None,
                      replayable: bool) -> None:
        """Write the head and stream the body upstream as it arrives from the client (after
        what a previous attempt kept of it, on a retry)."""
        write_timeout = upstream.write_timeout
        if body is None:
            self._upstream_send(uconn, upstream_head, write_timeout, replayable)
            return
        head = self.head
        conn = self.conn
        if head.expect_continue and head.http_version == b"1.1" and not body.continued:
            body.continued = True
            conn.write(_CONTINUE)
        chunked = head.chunked
        pending = upstream_head          # the head goes out with the first piece of body
        if body.chunks:
            kept = b"".join(body.chunks)
            pending += wire.chunk(kept) if chunked else kept
        if body.complete:
            self._upstream_send(uconn, pending + wire.LAST_CHUNK if chunked else pending,
                                write_timeout)
            return
        limits = conn.limits
        limit = limits.max_body_bytes
        body_timeout = limits.client_body_timeout
        while True:
            event = conn.next_event(body_timeout)
            if event is END:
                body.complete = True
                self._upstream_send(uconn, pending + wire.LAST_CHUNK if chunked else pending,
                                    write_timeout)
                return
            if not isinstance(event, bytes):
                raise ProtocolError("unexpected event in a request body")
            body.add(event)
            if limit is not None and body.size > limit:
                uconn.close()
                sent = conn.send_error(413, "request body larger than limits.max_body_bytes")
                self.ctx.access(self, 413, sent)
                raise ClientGone()
            data = wire.chunk(event) if chunked else event
            self._upstream_send(uconn, pending + data if pending else data, write_timeout)
            pending = b""

    def _upstream_send(self, uconn: UpstreamConnection, data: bytes, timeout: float,
                       replayable: bool = False) -> None:
        """``client.send`` within the upstream's write timeout (a deadline: see
        connection.py)."""
        conn = self.conn
        conn.deadline = time.monotonic() + timeout
        try:
            client.send(uconn, data, replayable)
        finally:
            conn.deadline = 0.0

    def _relay_response(self, uconn: UpstreamConnection, replayable: bool,
                        upstream: UpstreamRuntime, node_label: str) -> bool:
        ctx = self.ctx
        head = self.head
        request = self.request
        assert request is not None
        run = self.run_
        conn = self.conn
        write = conn.write
        reader = client.ResponseReader(uconn, self.runtime.engine, head.method,
                                       conn.limits.max_header_bytes, replayable,
                                       websocket=head.upgrade)
        pending = reader.pending
        fill = reader.fill
        read_timeout = upstream.read_timeout
        monotonic = time.monotonic
        client_http10 = head.http_version == b"1.0"
        keep_client = head.keep_alive and not ctx.draining
        chunked_out = False
        upstream_keep_alive = False
        status = 0
        sent_body = 0
        out: list[bytes] = []
        try:
            while True:
                event = pending()
                if event is None:
                    if out:
                        write(b"".join(out))
                        out.clear()
                    conn.deadline = monotonic() + read_timeout
                    try:
                        fill()
                    finally:
                        conn.deadline = 0.0
                    continue
                if type(event) is bytes:
                    sent_body += len(event)
                    out.append(b"%x\r\n%s\r\n" % (len(event), event) if chunked_out else event)
                    continue
                if event is END:
                    if chunked_out:
                        out.append(wire.LAST_CHUNK)
                    if out:
                        write(b"".join(out))
                    break
                assert isinstance(event, ResponseHead)
                if event.status < 200:
                    if event.status == 101:      # a handshake accepted (engines/policy.py)
                        return self._tunnel(reader, event, out, upstream)
                    # 100 was already answered by us (Expect is not forwarded); other 1xx
                    # (103 Early Hints) go to HTTP/1.1 clients only.
                    if event.status != 100 and not client_http10:
                        out.append(forwarding.downstream_head(event.status, event.reason,
                                                              event.headers, []))
                    continue
                status = event.status
                self.head_at = time.monotonic()
                # Decided now, not when the request went out: a drain (QUIT, or a reload
                # that retired this worker) that began while the upstream was thinking
                # must reach this response as Connection: close.
                keep_client = head.keep_alive and not ctx.draining
                reason = event.reason
                upstream_keep_alive = event.keep_alive
                headers = event.headers
                body_kind = event.body
                if run is not None and run.wants_upstream_response:
                    response = run.upstream_response(status, reason, wire.end_to_end(headers),
                                                     body_kind != "none")
                    status, reason = response.status, response.reason
                    headers = response.headers.raw
                    if response.body is not None:
                        return self._relay_replaced(reader, response.body, status, reason,
                                                    headers, out, keep_client,
                                                    upstream_keep_alive, upstream)
                tail: Headers = []
                if body_kind == "length":
                    tail.append((b"content-length", b"%d" % (event.content_length or 0)))
                elif body_kind == "none":
                    if head.method == b"HEAD" or status == 304:
                        # Content-Length of a HEAD/304 describes the GET body: keep it.
                        for name, value in event.headers:
                            if name == b"content-length":
                                tail.append((name, value))
                                break
                elif client_http10:
                    keep_client = False          # close-delimited is all 1.0 understands
                else:
                    chunked_out = True
                    tail.append(_CHUNKED_TAIL)
                tail.append(_VIA_TAIL)
                if not keep_client:
                    tail.append(_CLOSE_TAIL)
                elif client_http10:
                    tail.append(_KEEP_ALIVE_TAIL)
                out.append(forwarding.downstream_head(status, reason, headers, tail))
        except StaleConnection:
            uconn.close()
            raise
        except UpstreamFailed as exc:
            uconn.close()
            if status:
                log.error("%s %s: upstream %s (%s): %s", head.method.decode("latin-1"),
                          request.path, upstream.name, node_label, exc)
                # The head is gone (or about to): the only signal left is to cut the stream.
                if out:
                    try:
                        write(b"".join(out))
                    except ClientGone:
                        pass
                ctx.access(self, status, sent_body)
                raise UpstreamBroke() from None
            # No head yet: the caller answers the client, or retries on another node.
            raise
        except ClientGone:
            uconn.close()
            ctx.access(self, status or 499, sent_body)
            raise
        if upstream_keep_alive and not reader.parser.trailing_data:
            ctx.pool.put_idle(uconn, upstream.idle_timeout)
        else:
            uconn.close()
        ctx.access(self, status, sent_body)
        return keep_client

    def _tunnel(self, reader: client.ResponseReader, head: ResponseHead, out: list[bytes],
                upstream: UpstreamRuntime) -> bool:
        """Send the 101 on and relay the upgraded connection until it ends (tunnel.py); the
        client's connection closes after it (False)."""
        ctx = self.ctx
        conn = self.conn
        self.head_at = time.monotonic()
        out.append(forwarding.downstream_head(101, head.reason, head.headers, _SWITCHED_TAIL))
        conn.write(b"".join(out))
        uconn = reader.conn
        tunnel = Tunnel(conn, uconn.sock, upstream.websocket_idle, upstream.write_timeout)
        tunnels = ctx.tunnels
        tunnels.add(tunnel)
        if self.metrics is not None:
            self.metrics.upgraded()
        try:
            tunnel.run(conn.parser.upgraded(), reader.parser.upgraded())
        finally:
            tunnels.discard(tunnel)
            uconn.close()
        assert self.request is not None
        log.debug("websocket %s: %s after %d bytes up, %d down", self.request.path,
                  tunnel.ended, tunnel.to_upstream, tunnel.to_client)
        # The access log's request_bytes and body_bytes_sent: the tunnel's two directions.
        received = self.request_body = RequestBody()
        received.size = tunnel.to_upstream
        received.complete = True
        ctx.access(self, 101, tunnel.to_client)
        return False

    def _relay_replaced(self, reader: client.ResponseReader, body: Body, status: int,
                        reason: bytes, headers: Headers, out: list[bytes], keep_client: bool,
                        upstream_keep_alive: bool, upstream: UpstreamRuntime) -> bool:
        """Send the interceptors' body instead of the upstream's, then drop the upstream's.

        The new body goes out with its own Content-Length. The upstream's is read and
        discarded up to the discard limit, so its connection can go back to the pool;
        a longer one is not worth reading, and the connection is closed instead.
        """
        head = self.head
        trailing: Headers = [_VIA_TAIL]
        if not keep_client:
            trailing.append(_CLOSE_TAIL)
        elif head.http_version == b"1.0":
            trailing.append(_KEEP_ALIVE_TAIL)
        payload, chunks = response_parts(status, reason, headers, body,
                                         head_only=head.method == b"HEAD", trailing=trailing)
        out.append(payload)
        self.write_body(b"".join(out), chunks)
        uconn = reader.conn
        conn = self.conn
        conn.deadline = time.monotonic() + upstream.read_timeout   # for the whole drain
        try:
            reusable = upstream_keep_alive and reader.drain(_DISCARD_LIMIT)
        finally:
            conn.deadline = 0.0
        if reusable:
            self.ctx.pool.put_idle(uconn, upstream.idle_timeout)
        else:
            uconn.close()
        self.ctx.access(self, status, len(body))
        return keep_client
