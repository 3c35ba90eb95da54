"""Interceptors: code that runs around the proxying of a request, phase by phase.

- ``base``: the ``Interceptor`` class, the phases, the registry;
- ``context``: what hooks see and change (``Context``, ``UpstreamRequest``, ``Response``,
  ``Reply``); ``headers``: validated header lists;
- ``chain``: a gateway's interceptors in config order and one request's run through them;
- one module per built-in (``builtin`` imports them all), and their helpers: password
  hashes (``passwords``, ``md5crypt``, ``htpasswd``, ``hashpw`` the CLI), API keys
  (``apikeys``), path rewriting (``pathrewrite``), header edits (``edits``), Dakia's flat
  maps (``maps``), thread-pool offloading (``offload``), response bytes (``respond``).
"""
from .base import REGISTRY, Interceptor, register
from .chain import Chain, InterceptorError, Run, build_chain
from .context import Context, Reply, Response, UpstreamRequest

__all__ = ["REGISTRY", "Chain", "Context", "Interceptor", "InterceptorError", "Reply",
           "Response", "Run", "UpstreamRequest", "build_chain", "register"]
