"""``short_circuit``: answer with a fixed response; the upstream is not called.

``response: {status: 503, body: "maintenance", header.retry-after: "60"}`` (Dakia's map) or
the same keys under ``config``; ``status`` defaults to 200, ``body`` to empty.
"""
from __future__ import annotations

from typing import Any

from .base import Interceptor, Problems, register
from .context import Context, Reply
from .maps import split_map


@register
class ShortCircuit(Interceptor):
    name = "short_circuit"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        # config and response take the same keys; Dakia's response map wins where both.
        where = "response" if entry.get("response") else "config"
        plain, dotted = split_map({**entry.get("config", {}), **entry.get("response", {})},
                                  ("ds.res.", "res."))
        problems = Problems()
        headers = list(dotted.get("header", {}).items())
        try:
            self.reply = Reply(plain.get("status", 200), plain.get("body", ""), headers)
        except ValueError as exc:
            problems.add(where, str(exc))
        problems.raise_any()

    def request_filter(self, ctx: Context) -> Reply | None:
        return self.reply
