"""``server_version``: set the ``Server`` header of every response the client gets.

``config: {server: "dakia-prefork/0.1.0"}``; the default names this gateway and version.
"""
from __future__ import annotations

from typing import Any

from .. import __version__
from .base import Interceptor, register
from .context import Context
from .headers import header_value


@register
class ServerVersion(Interceptor):
    name = "server_version"

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        try:
            self.value = header_value(entry["config"].get("server",
                                                          f"dakia-prefork/{__version__}"))
        except ValueError as exc:
            raise ValueError(f"config.server: {exc}") from None

    def pre_downstream_response(self, ctx: Context) -> None:
        assert ctx.response is not None
        ctx.response.headers.put(b"server", self.value)      # validated at load
