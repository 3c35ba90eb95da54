"""``try_file``: serve a file from a directory, else fetch it from the upstream, store it,
and serve it (Dakia's pending "Try File"): a read-through cache on disk.

::

    config:
      root: /var/cache/dakia         # required; created when missing
      index: index.html              # the file a directory path is stored as
      strip_prefix: null             # path rewrites, as in use_file
      path_regex: null
      hidden: false
      types: {}                      # extra extension -> Content-Type, as in use_file
      charset: utf-8
      cache_control: null
      max_size: 67108864             # bytes; a bigger response is passed through unstored
      timeout: 30                    # seconds for the whole fetch

Theory of operation
-------------------
``request_filter``: a GET or HEAD whose file exists under ``root`` is answered from it,
exactly as ``use_file`` would (other methods go upstream untouched). A miss is noted in
``ctx.vars`` and the request continues, so the balancer picks a node as for any request.

``pre_upstream_request`` (the node is chosen; interceptors earlier in the list have
rewritten the request): the miss is fetched from that node with a GET of its own, on the
node's own connection (``ctx.node_connect``: resolver, TLS), without the client's
conditional and range headers, with ``Accept-Encoding: identity`` so the file holds the
bytes themselves. A 200 body is written to a temporary file in the target directory and
renamed into place only once complete (fileroot.AtomicFile), so a reader never sees half a
file; the request is then answered from the stored file like every later one. Another status is relayed as it is (small bodies)
and not stored. A response over ``max_size`` (or a non-200 over 64 KiB) is not stored:
the request goes on to the upstream through the proxy, which asks again and streams it.
Unreachable or slow upstreams answer 502 or 504 here.

Concurrent misses of one file in a worker are fetched once: the others wait for that fetch
(up to ``timeout``) and are served from the file it stored. Different workers may fetch the
same file at the same time; each writes its own temporary file and the renames are atomic,
so the result is one whole file either way.

The Content-Type of a stored file comes from its name, as for use_file, not from the
upstream's response: the file is what is served later.

The HTTP client is the worker's (``Resources.fetch``: http/fetch.py on the upstream
client, http/client.py, with the worker's engine), handed over in ``attach``. try_file is
built and checked without it, so the master, which builds every chain to check a config,
never loads ``http/`` or a parser; a chain built outside a worker (a unit test) answers a
miss 500. A store that fails while the body arrives (a full disk) is not the upstream's
fault: the request goes on to the upstream unstored, as when the file cannot be committed.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .base import Problems, register
from .context import Context, Reply
from .fileroot import AtomicFile, BadPath, segments
from .fileserve import serve
from .headers import header_name
from .resources import Connect, Fetch, FetchError, OpenSocket, Resources
from .use_file import FileInterceptor

log = logging.getLogger("dakia.interceptors")

# The fetch wants the whole, unencoded representation; the proxy's own forwarding headers
# are rebuilt as the proxy would.
_SKIP_HEADERS = frozenset((b"if-none-match", b"if-modified-since", b"if-match",
                           b"if-unmodified-since", b"range", b"if-range", b"accept-encoding",
                           b"expect", b"x-forwarded-for", b"x-forwarded-proto", b"via"))


@register
class TryFile(FileInterceptor):
    name = "try_file"

    def configure(self, config: dict[str, Any], problems: Problems) -> None:
        self.max_size = int(config.get("max_size", 64 << 20))
        self.timeout = float(config.get("timeout", 30))
        self._key = f"try_file:{id(self)}"
        self._fetching: dict[tuple[str, ...], threading.Event] = {}
        self._fetch: Fetch | None = None
        self._connect: Connect | None = None

    def attach(self, resources: Resources, ident: str) -> None:
        self._fetch = resources.fetch
        self._connect = resources.connect

    def request_filter(self, ctx: Context) -> Reply | None:
        if ctx.request.method not in ("GET", "HEAD"):
            return None
        found = self.locate(ctx)
        if isinstance(found, Reply):
            return found
        if found is not None:
            return serve(ctx.request, found, self.options)
        parts = self._store_parts(ctx)
        if parts is not None:
            ctx.vars[self._key] = parts
        return None

    def _store_parts(self, ctx: Context) -> tuple[str, ...] | None:
        """Where a fetched response for this request is stored, if anywhere."""
        path = self.rewrite.apply(ctx.request.path)
        try:
            parts = segments(path, self.hidden)
        except BadPath:
            return None
        if not parts or path.endswith("/"):
            if self.index is None:
                return None
            parts.append(self.index)
        return tuple(parts)

    def pre_upstream_request(self, ctx: Context) -> Reply | None:
        parts = ctx.vars.get(self._key)
        if parts is None or ctx.node is None:
            return None
        waiting = self._fetching.get(parts)
        if waiting is not None:
            waiting.wait(self.timeout)          # another request of this worker fetches it
            found = self.locate(ctx)
            if isinstance(found, Reply):
                return found
            if found is not None:
                return serve(ctx.request, found, self.options)
        done = self._fetching[parts] = threading.Event()
        try:
            return self._fetch_and_serve(ctx, parts)
        finally:
            del self._fetching[parts]
            done.set()

    def _fetch_and_serve(self, ctx: Context, parts: tuple[str, ...]) -> Reply | None:
        writer: list[AtomicFile] = []

        def sink() -> AtomicFile:
            os.makedirs(self.root.real, 0o755, exist_ok=True)
            writer.append(self.root.writer(list(parts)))
            return writer[0]

        upstream = ctx.upstream_request
        fetch = self._fetch
        if fetch is None:
            raise RuntimeError("try_file: no HTTP client (not attached to a worker)")
        try:
            fetched = fetch(self._open_socket(ctx), upstream.head(ctx.request.head).target,
                            _fetch_headers(ctx), self.timeout, self.max_size, sink)
            if fetched.stored:
                writer[0].commit()
        except FetchError as exc:
            log.error("try_file %s from %s: %s", ctx.request.path, ctx.node, exc)
            text = b"502 Bad Gateway\n" if exc.status == 502 else b"504 Gateway Timeout\n"
            return Reply(exc.status, text)
        except OSError as exc:
            log.warning("try_file %s: cannot store under %s: %s", ctx.request.path,
                        self.root.real, exc)
            return None                          # the proxy serves it, unstored
        finally:
            if writer and writer[0].directory >= 0:
                writer[0].abort()               # not committed: drop the temporary file
        if fetched.too_large:
            return None
        if not fetched.stored:
            return Reply(fetched.status, fetched.body, _relayable(fetched.headers))
        found = self.locate(ctx)
        if isinstance(found, Reply) or found is None:
            return found
        return serve(ctx.request, found, self.options)

    def _open_socket(self, ctx: Context) -> OpenSocket:
        """How to reach the chosen node: the proxy's connection (its resolver and TLS), or
        a plain one to its label when the proxy gave none."""
        if ctx.node_connect is not None:
            return ctx.node_connect
        node, connect = ctx.node, self._connect
        if node is None or connect is None:
            raise RuntimeError("try_file: no way to connect to the node")
        return lambda timeout: connect(node, timeout)


def _fetch_headers(ctx: Context) -> list[tuple[bytes, bytes]]:
    """The upstream request's headers for a fetch, forwarded as the proxy forwards."""
    request = ctx.request
    headers = [(name, value) for name, value in ctx.upstream_request.headers.raw
               if name not in _SKIP_HEADERS]
    chain = request.forwarded_for      # rebuilt by real_ip: the proxy sends the same
    if chain is None:
        forwarded_for = request.header("x-forwarded-for")
        chain = (f"{forwarded_for}, {request.remote_addr}" if forwarded_for
                 else request.remote_addr)
    via = request.header("via")
    headers += [(b"accept-encoding", b"identity"),
                (b"x-forwarded-for", chain.encode("latin-1")),
                (b"x-forwarded-proto", request.scheme.encode("latin-1")),
                (b"via", (f"{via}, 1.1 dakia" if via else "1.1 dakia").encode("latin-1"))]
    if not any(name == b"host" for name, _ in headers):
        node = ctx.node or ""
        headers.append((b"host", b"localhost" if node.startswith("unix:") or not node
                        else node.encode("latin-1")))
    return headers


def _relayable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's end-to-end headers that a Reply may carry."""
    out = []
    for name, value in headers:
        try:
            out.append((header_name(name), value))
        except ValueError:
            continue
    return out

