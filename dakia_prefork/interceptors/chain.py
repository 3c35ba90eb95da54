"""Build the interceptor chain of a gateway and run its hooks in config order."""
from __future__ import annotations

from typing import Any, Callable

from ..http.events import Headers
from ..http.request import Request
from .base import REGISTRY, Interceptor, Reply
from . import builtin  # noqa: F401  (registers the built-ins)

Filter = Callable[[Request], bool]


class InterceptorError(Exception):
    """An interceptor cannot be built; ``errors`` are ``"path: message"`` strings."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def unimplemented(gateway: dict[str, Any], gateway_path: str) -> list[str]:
    """``path: message`` for each enabled interceptor this version cannot run yet."""
    out = []
    for i, entry in enumerate(gateway.get("interceptors") or []):
        if entry.get("enabled", True) and entry["name"] not in REGISTRY:
            out.append(f"{gateway_path}.interceptors[{i}].name: interceptor '{entry['name']}' "
                       "is not implemented in this version (disable it or remove it)")
    return out


class Chain:
    __slots__ = ("_request", "_response")

    def __init__(self, entries: list[tuple[Filter | None, Interceptor]]) -> None:
        cls = Interceptor
        self._request = [(f, i) for f, i in entries
                         if type(i).request_filter is not cls.request_filter]
        self._response = [(f, i) for f, i in entries
                          if type(i).response_headers is not cls.response_headers]

    def request_filter(self, request: Request) -> Reply | None:
        for applies, interceptor in self._request:
            if applies is None or applies(request):
                reply = interceptor.request_filter(request)
                if reply is not None:
                    return reply
        return None

    def response_headers(self, request: Request, status: int, headers: Headers) -> Headers:
        for applies, interceptor in self._response:
            if applies is None or applies(request):
                interceptor.response_headers(request, status, headers)
        return headers


def build_chain(gateway: dict[str, Any], filters: dict[str, Filter],
                gateway_path: str) -> Chain | None:
    """The chain of a normalised gateway, or None when it has no enabled interceptor."""
    errors = unimplemented(gateway, gateway_path)
    entries: list[tuple[Filter | None, Interceptor]] = []
    for i, entry in enumerate(gateway.get("interceptors") or []):
        if not entry.get("enabled", True) or entry["name"] not in REGISTRY:
            continue
        try:
            interceptor = REGISTRY[entry["name"]](entry)
        except ValueError as exc:
            errors.append(f"{gateway_path}.interceptors[{i}].{exc}")
            continue
        name = entry.get("filter")
        entries.append((filters[name] if name else None, interceptor))
    if errors:
        raise InterceptorError(errors)
    return Chain(entries) if entries else None
