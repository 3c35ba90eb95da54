"""A plugin's verdict (external or native): parsed and checked in full, then applied.

::

    {"verdict": "continue"}
    {"verdict": "respond", "status": 403, "headers": {"content-type": "text/plain"},
     "body": "no"}                                    # or "body_base64": "..."
    {"verdict": "modify", "method": "POST", "path": "/v2/x", "query": "a=1",
     "set_headers": {"x-user": "7"}, "add_headers": {"x-tag": "a"},
     "remove_headers": ["cookie"], "status": 201}

``respond`` is for request-side phases; in response phases ``modify`` may change
``status`` and the response's headers, while in request-side phases it changes the request
going upstream (method, path, query, headers). A verdict is checked completely before
anything is applied (``VerdictError`` otherwise), so a half-valid verdict changes nothing:
header names and values are validated as every interceptor's are (no CR/LF, no framing
headers), a path must be a path, a status 200..599.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from ..interceptors.base import REQUEST_PHASES
from ..interceptors.context import Context, Reply
from ..interceptors.headers import header_name, header_value
from ..interceptors.pathrewrite import is_path

_REQUEST_KEYS = frozenset(("verdict", "id", "method", "path", "query", "set_headers",
                           "add_headers", "remove_headers"))
_RESPONSE_KEYS = frozenset(("verdict", "id", "status", "set_headers", "add_headers",
                            "remove_headers"))
_RESPOND_KEYS = frozenset(("verdict", "id", "status", "headers", "body", "body_base64"))


class VerdictError(ValueError):
    """A verdict that cannot be applied; the message says why."""


@dataclass
class Verdict:
    """A checked verdict: either ``reply`` (respond) or changes (modify), or neither."""

    reply: Reply | None = None
    method: str | None = None
    path: str | None = None
    query: str | None = None
    status: int | None = None
    remove: list[bytes] = field(default_factory=list)
    set: list[tuple[bytes, bytes]] = field(default_factory=list)
    add: list[tuple[bytes, bytes]] = field(default_factory=list)


def parse(message: dict[str, Any], phase: str) -> Verdict:
    """The checked verdict in ``message`` for ``phase``; VerdictError if it is not one."""
    kind = message.get("verdict")
    request_side = phase in REQUEST_PHASES
    if kind == "continue":
        return Verdict()
    if kind == "respond":
        if not request_side:
            raise VerdictError(f"'respond' is not possible in {phase}; use 'modify'")
        _only(message, _RESPOND_KEYS)
        return Verdict(reply=_reply(message))
    if kind == "modify":
        _only(message, _REQUEST_KEYS if request_side else _RESPONSE_KEYS)
        verdict = Verdict()
        _header_edits(message, verdict)
        if request_side:
            verdict.method = _text(message, "method")
            verdict.path = _text(message, "path")
            if verdict.path is not None and not is_path(verdict.path):
                raise VerdictError(f"path {verdict.path!r} is not a path (starts with '/', "
                                   "visible ASCII, no '?' or '#')")
            verdict.query = _text(message, "query")
            if verdict.query is not None and not verdict.query.isprintable():
                raise VerdictError("query has control characters")
        else:
            verdict.status = _status(message.get("status"), optional=True)
        return verdict
    raise VerdictError(f"unknown verdict {kind!r} (continue, respond or modify)")


def apply(verdict: Verdict, ctx: Context) -> Reply | None:
    """Apply a checked verdict to ``ctx``; the Reply of a ``respond``."""
    if verdict.reply is not None:
        return verdict.reply
    if ctx.response is not None and verdict.status is not None:
        ctx.response.status = verdict.status
    if not (verdict.remove or verdict.set or verdict.add or verdict.method or verdict.path
            or verdict.query is not None):
        return None
    if ctx.response is not None:
        headers = ctx.response.headers
    else:
        upstream = ctx.upstream_request
        headers = upstream.headers
        if verdict.method is not None:
            try:
                upstream.method = verdict.method
            except ValueError as exc:
                raise VerdictError(str(exc)) from None
        if verdict.path is not None:
            upstream.path = verdict.path
        if verdict.query is not None:
            upstream.query = verdict.query
    for name in verdict.remove:
        headers.remove(name)
    for name, value in verdict.set:
        headers.set(name, value)
    for name, value in verdict.add:
        headers.add(name, value)
    return None


def _only(message: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(message) - allowed)
    if unknown:
        raise VerdictError(f"unexpected member(s) {', '.join(unknown)} for verdict "
                           f"{message['verdict']!r} here")


def _text(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is not None and not isinstance(value, str):
        raise VerdictError(f"{key} is not a string")
    return value


def _status(value: Any, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 200 <= value <= 599:
        raise VerdictError(f"status {value!r} is not an integer in 200..599")
    return value


def _header_map(message: dict[str, Any], key: str) -> list[tuple[bytes, bytes]]:
    value = message.get(key, {})
    if not isinstance(value, dict):
        raise VerdictError(f"{key} is not an object of header: value")
    out = []
    for name, text in value.items():
        if not isinstance(text, str):
            raise VerdictError(f"{key}.{name} is not a string")
        try:
            out.append((header_name(name), header_value(text)))
        except ValueError as exc:
            raise VerdictError(f"{key}: {exc}") from None
    return out


def _header_edits(message: dict[str, Any], verdict: Verdict) -> None:
    verdict.set = _header_map(message, "set_headers")
    verdict.add = _header_map(message, "add_headers")
    names = message.get("remove_headers", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise VerdictError("remove_headers is not a list of header names")
    try:
        verdict.remove = [header_name(name) for name in names]
    except ValueError as exc:
        raise VerdictError(f"remove_headers: {exc}") from None


def _reply(message: dict[str, Any]) -> Reply:
    status = _status(message.get("status"))
    assert status is not None
    if "body" in message and "body_base64" in message:
        raise VerdictError("give body or body_base64, not both")
    body: bytes = b""
    if "body_base64" in message:
        try:
            body = base64.b64decode(_text(message, "body_base64") or "", validate=True)
        except (binascii.Error, ValueError):
            raise VerdictError("body_base64 is not base64") from None
    elif message.get("body") is not None:
        body = (_text(message, "body") or "").encode("utf-8")
    try:
        return Reply(status, body, _header_map(message, "headers"))
    except ValueError as exc:
        raise VerdictError(str(exc)) from None
