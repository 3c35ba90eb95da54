"""``request_rewrite``: change the request the upstream gets (path, method, headers, query).

::

    config:
      strip_prefix: /api                                  # /api/users -> /users
      path_regex: {pattern: "^/users/(\\d+)$", replacement: "/v2/users/$1"}
      method: null                                        # e.g. POST
      set_headers: {X-Env: prod}                          # replace
      add_headers: {Via-Gateway: dakia}                   # append
      remove_headers: [Cookie]
      set_query: {version: "2"}
      remove_query: [debug]

or Dakia's ``rewrite:`` map: ``path: /new``, ``header.<name>: value`` and
``query.<name>: value`` (null removes), each optionally prefixed ``req.`` or ``us.req.``.
A HEAD request is never rewritten to another method (its response has no body).

Runs in ``pre_upstream_request``, in this order: strip_prefix, path_regex, Dakia's path,
method, removed then set then added headers, removed then set query parameters. The client's
request (``ctx.request``), which filters and the access log see, is not changed. Paths are
raw (percent-encoded) request-target paths; see pathrewrite.py for the template syntax.
"""
from __future__ import annotations

from typing import Any

from .base import Interceptor, Problems, register
from .context import Context, Reply
from .edits import HeaderEdits
from .maps import split_map
from .pathrewrite import PathRewrite, is_path

_SIDES = ("us.req.", "req.")


@register
class RequestRewrite(Interceptor):
    name = "request_rewrite"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        dakia, dotted = split_map(entry.get("rewrite", {}), _SIDES)
        problems = Problems()

        self.rewrite = PathRewrite(config, problems)
        self.path: str | None = dakia.get("path")
        if self.path is not None and not is_path(self.path):
            problems.add("rewrite.path", f"{self.path!r} is not a path (starts with '/', "
                                         "visible ASCII, no '?' or '#')")
        self.method: str | None = config.get("method")
        if self.method in ("HEAD", "CONNECT"):
            problems.add("config.method", f"cannot rewrite to {self.method}")

        self.headers = HeaderEdits(config, dotted.get("header", {}), problems)

        self.remove_query: list[str] = list(config.get("remove_query", []))
        self.set_query: list[tuple[str, str]] = [
            (name, _text(value)) for name, value in config.get("set_query", {}).items()]
        for name, value in dotted.get("query", {}).items():
            if value is None:
                self.remove_query.append(name)
            else:
                self.set_query.append((name, _text(value)))
        problems.raise_any()

    def pre_upstream_request(self, ctx: Context) -> Reply | None:
        upstream = ctx.upstream_request
        path = self.rewrite.apply(upstream.path)
        if self.path is not None:
            path = self.path
        upstream.path = path if path.startswith("/") or path == "*" else "/" + path
        if self.method is not None and upstream.method != "HEAD":
            # A HEAD stays a HEAD: the client expects a response without a body.
            upstream.method = self.method
        self.headers.apply(upstream.headers)
        for name in self.remove_query:
            upstream.remove_query_param(name)
        for name, value in self.set_query:
            upstream.set_query_param(name, value)
        return None


def _text(value: Any) -> str:
    """A config scalar as query text (booleans as ``true``/``false``, as in headers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
