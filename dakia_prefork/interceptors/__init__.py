"""Interceptors: code that runs around the proxying of a request, phase by phase.

- ``base``: the ``Interceptor`` class, the phases, the registry of classes by name;
- ``registry``: the built-in names and where each is implemented (a leaf, for config/);
- ``context``: what hooks see and change (``Context``, ``UpstreamRequest``, ``Response``,
  ``Reply``); ``headers``: validated header lists;
- ``chain``: a gateway's interceptors in config order and one request's run through them;
- ``resources``: what a worker lends its interceptors (shared memory, an HTTP client);
- one module per built-in, imported when a config uses it, and their helpers: password
  hashes (``passwords``, ``md5crypt``, ``htpasswd``, ``hashpw`` the CLI), API keys
  (``apikeys``), path rewriting (``pathrewrite``), header edits (``edits``), Dakia's flat
  maps (``maps``), thread-pool offloading (``offload``), response bytes (``respond``).

The names below are imported on first use, not with the package: ``config/`` imports
``interceptors.registry`` and so this package, and must not load chains, contexts or any
built-in by doing so.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import REGISTRY, Interceptor, register
    from .chain import Chain, InterceptorError, Run, build_chain
    from .context import Context, Reply, Response, UpstreamRequest

_EXPORTS = {"REGISTRY": "base", "Interceptor": "base", "register": "base",
            "Chain": "chain", "InterceptorError": "chain", "Run": "chain",
            "build_chain": "chain", "Context": "context", "Reply": "context",
            "Response": "context", "UpstreamRequest": "context"}

__all__ = ["REGISTRY", "Chain", "Context", "Interceptor", "InterceptorError", "Reply",
           "Response", "Run", "UpstreamRequest", "build_chain", "register"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
