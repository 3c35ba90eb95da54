"""A gateway's interceptors in config order, and one request's way through them.

``build_chain`` makes the ``Chain`` of a gateway for one config version (worker/runtime.py
builds a Runtime per version, so adding, removing or reordering interceptors takes effect on
reload, and a request in flight keeps the chain it started with). A gateway without enabled
interceptors has no chain at all, and the proxy skips every phase with one ``is None``.

For each request the proxy calls ``Chain.start`` and then the ``Run`` it returns, phase by
phase. A hook that raises is a bug or a broken dependency: the request is answered 500 (an
auth interceptor that fails must not let the request through) and the error is logged with
its traceback.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from ..message.heads import Headers, RequestHead
from ..message.request import Request
from ..plugins import loader as plugins
from .base import PHASES, Hook, Interceptor, hooks_of, problems_of
from .body import Body, FileBody
from .context import Context, Reply, Response
from .headers import HeaderList
from .resources import Resources

if TYPE_CHECKING:
    import socket

log = logging.getLogger("dakia.interceptors")

Filter = Callable[[Request], bool]
Active = tuple[tuple[str, tuple[Hook | None, ...]], ...]
PhaseHooks = tuple[tuple[tuple[str, Hook], ...], ...]
"""For each phase, the (interceptor name, hook) pairs that run in it, in config order."""

_INIT, _REQUEST_FILTER, _UPSTREAM_PROXY_FILTER, _PRE_UPSTREAM, _POST_UPSTREAM, \
    _PRE_DOWNSTREAM = range(len(PHASES))
_FAILED_BODY = b"500 Internal Server Error\n"
_TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
_NO_BODY_STATUSES = (204, 304)


class InterceptorError(Exception):
    """An interceptor cannot be built; ``errors`` are ``"path: message"`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def phase_hooks(active: Active) -> PhaseHooks:
    """The hooks of ``active`` grouped by phase: a phase no interceptor hooks is an empty
    tuple, so running it costs one loop over nothing."""
    grouped: list[tuple[tuple[str, Hook], ...]] = []
    for phase in range(len(PHASES)):
        pairs: list[tuple[str, Hook]] = []
        for name, hooks in active:
            hook = hooks[phase]
            if hook is not None:
                pairs.append((name, hook))
        grouped.append(tuple(pairs))
    return tuple(grouped)


class Run:
    """One request through the chain: the context and the hooks that apply to it."""

    __slots__ = ("ctx", "_phases", "wants_upstream_response")

    def __init__(self, ctx: Context, phases: PhaseHooks) -> None:
        self.ctx = ctx
        self._phases = phases
        # Whether an upstream response head must go through the chain at all: without
        # response-side hooks the proxy forwards it as if there were no interceptors.
        self.wants_upstream_response = bool(phases[_POST_UPSTREAM] or phases[_PRE_DOWNSTREAM])

    def _request_side(self, phase: int) -> Reply | None:
        ctx = self.ctx
        for name, hook in self._phases[phase]:
            try:
                reply = hook(ctx)
            except Exception:  # noqa: BLE001 - any failure answers 500, see module doc
                log.exception("interceptor %s failed in %s", name, PHASES[phase])
                return Reply(500, _FAILED_BODY)
            if reply is not None:
                return reply
        return None

    def _response_side(self, phase: int) -> bool:
        """Run a response-side phase; False if a hook failed."""
        ctx = self.ctx
        for name, hook in self._phases[phase]:
            try:
                hook(ctx)
            except Exception:  # noqa: BLE001
                log.exception("interceptor %s failed in %s", name, PHASES[phase])
                return False
        return True

    def request_phases(self) -> Reply | None:
        """``init``, ``request_filter`` and ``upstream_proxy_filter``; a Reply answers."""
        phases = self._phases
        if phases[_INIT]:
            reply = self._request_side(_INIT)
            if reply is not None:
                return reply
        if phases[_REQUEST_FILTER]:
            reply = self._request_side(_REQUEST_FILTER)
            if reply is not None:
                return reply
        if phases[_UPSTREAM_PROXY_FILTER]:
            return self._request_side(_UPSTREAM_PROXY_FILTER)
        return None

    def pre_upstream_request(self, node: str,
                             connect: Callable[[float], socket.socket] | None = None
                             ) -> Reply | None:
        self.ctx.node = node
        self.ctx.node_connect = connect
        return self._request_side(_PRE_UPSTREAM) if self._phases[_PRE_UPSTREAM] else None

    def upstream_head(self, head: RequestHead) -> RequestHead:
        """The head to send upstream: the client's, or the one interceptors changed."""
        ctx = self.ctx
        return ctx.upstream_request.head(head) if ctx.upstream_request_changed else head

    def upstream_response(self, status: int, reason: bytes, headers: Headers,
                          has_body: bool) -> Response:
        """``post_upstream_response`` then ``pre_downstream_response`` on the upstream's
        head; ``headers`` are end-to-end (the gateway adds framing after)."""
        response = Response(status, reason, HeaderList(headers), None, True)
        self.ctx.response = response
        if not (self._response_side(_POST_UPSTREAM) and self._response_side(_PRE_DOWNSTREAM)):
            return _failure()
        if has_body and response.body is None and response.status in _NO_BODY_STATUSES:
            # A 204 or 304 must not have a body: the upstream's is dropped.
            response.body = b""
        return response

    def local_response(self, status: int, body: Body, headers: Headers | None) -> Response:
        """``pre_downstream_response`` on a response the gateway makes (a Reply, an error)."""
        raw = list(headers) if headers else []
        if body and not any(name == b"content-type" for name, _ in raw):
            raw.append(_TEXT_PLAIN)
        response = Response(status, b"", HeaderList(raw), body, False)
        self.ctx.response = response
        succeeded = self._response_side(_PRE_DOWNSTREAM)
        if isinstance(body, FileBody) and (response.body is not body or not succeeded):
            body.close()             # replaced by a hook, or never to be sent
        if not succeeded:
            return _failure()
        if response.body is None:
            # Nothing to stream from: a hook that cleared the body meant "no body".
            response.body = b""
        return response


def _failure() -> Response:
    return Response(500, b"", HeaderList([_TEXT_PLAIN]), _FAILED_BODY, False)


class Chain:
    """The enabled interceptors of a gateway with their filters, in config order."""

    __slots__ = ("_entries", "_unfiltered")

    def __init__(self, entries: list[tuple[Filter | None, Interceptor]]) -> None:
        self._entries = tuple((applies, (interceptor.name, hooks_of(interceptor)))
                              for applies, interceptor in entries)
        # With no filter anywhere, every request gets the same hooks, grouped by phase
        # once per config version: no per-request work but the calls themselves.
        self._unfiltered: PhaseHooks | None = (
            phase_hooks(tuple(hooks for _, hooks in self._entries))
            if all(applies is None for applies, _ in self._entries) else None)

    def start(self, request: Request, route: str) -> Run:
        """A Run for ``request``, routed to ``route``; each filter is evaluated once."""
        phases = self._unfiltered
        if phases is None:
            phases = phase_hooks(tuple(hooks for applies, hooks in self._entries
                                       if applies is None or applies(request)))
        return Run(Context(request, route), phases)


def build_chain(gateway: dict[str, Any], filters: Mapping[str, Filter],
                gateway_path: str, resources: Resources | None = None) -> Chain | None:
    """The chain of a normalised gateway, or None when it has no enabled interceptor.

    Each interceptor is attached to ``resources`` (the worker's; an empty set when None,
    as in ``check``). Implementations are built-ins or plugins (plugins/loader.py). Raises
    InterceptorError listing every enabled interceptor that this version does not
    implement, whose plugin cannot be loaded, or that cannot be built.
    """
    if resources is None:
        resources = Resources()
    errors: list[str] = []
    entries: list[tuple[Filter | None, Interceptor]] = []
    for i, entry in enumerate(gateway.get("interceptors") or []):
        if not entry.get("enabled", True):
            continue
        where = f"{gateway_path}.interceptors[{i}]"
        try:
            cls = plugins.implementation(entry)
        except plugins.PluginError as exc:
            errors.append(f"{where}.{exc.where}: {exc.message}")
            continue
        if cls is None:
            errors.append(f"{where}.name: interceptor '{entry['name']}' is not implemented "
                          "in this version (disable it or remove it)")
            continue
        try:
            interceptor = cls(entry)
            interceptor.attach(resources, f"{gateway.get('name', gateway_path)}/{i}")
        except ValueError as exc:
            errors.extend(f"{gateway_path}.interceptors[{i}].{where}: {message}"
                          for where, message in problems_of(exc))
            continue
        name = entry.get("filter")
        entries.append((filters[name] if name else None, interceptor))
    if errors:
        raise InterceptorError(errors)
    return Chain(entries) if entries else None
