"""Interceptors: code that runs around the proxying of a request, in config order.

This is the first cut of the interceptor API (issue #4 grows it to every phase of DESIGN.md):
an interceptor may answer a request on its own in ``request_filter`` (a short-circuit), add
headers to the request before it goes upstream, and change the headers of the response
before it goes to the client. Each runs only where its filter, if any, holds.
"""
from .chain import Chain, InterceptorError, build_chain, unimplemented

__all__ = ["Chain", "InterceptorError", "build_chain", "unimplemented"]
