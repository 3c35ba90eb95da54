"""``external_plugin``: an interceptor in any language, as a process behind a unix socket.

::

    config:
      socket: /run/dakia/policy.sock   # required; relative to the config file's directory
      phases: [request_filter]         # which phases call the plugin (the default)
      timeout: 1                       # seconds per call: connect, send, answer
      on_failure: deny                 # deny | allow, when the plugin is gone, slow or wrong
      failure_status: 503              # what deny answers
      max_message_bytes: 262144        # the largest message either way
      max_idle_connections: 16         # kept open per worker between calls

Phases: ``request_filter``, ``upstream_proxy_filter``, ``pre_upstream_request`` (the
plugin may answer, or change the request going upstream) and ``post_upstream_response``,
``pre_downstream_response`` (it may change the response's status and headers). For each
call the gateway sends the phase and the request head (protocol.py), and applies the
verdict it gets back (verdict.py). tools/plugins/PROTOCOL.md is the plugin author's
reference; tools/plugins/perl/ an example.

The plugin process is not started by the gateway: run it under the same supervisor
(systemd, runit) so it outlives reloads and restarts on its own. The gateway connects
lazily, keeps a pool per worker (pool.py), reconnects when the plugin restarts, and
applies ``on_failure`` (policy.py) when a call fails. Each call waits for the plugin (under
gevent, without blocking the worker's other connections), so a plugin adds its latency to
every request of the phases it handles.
"""
from __future__ import annotations

import itertools
import os
from typing import Any

from ..interceptors.base import Interceptor, Problem, register
from ..interceptors.context import Context, Reply
from ..interceptors.resources import Resources
from .policy import FailurePolicy
from .pool import PluginPool
from .protocol import ProtocolError, call_message, frame
from .verdict import VerdictError, apply, parse

_SUN_PATH_MAX = 107      # sockaddr_un.sun_path holds 108 bytes with the final NUL
PHASES = ("request_filter", "upstream_proxy_filter", "pre_upstream_request",
          "post_upstream_response", "pre_downstream_response")


@register
class ExternalPlugin(Interceptor):
    name = "external_plugin"

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        config = entry["config"]
        config["socket"] = os.path.join(base_dir, config["socket"])
        return super().check(entry, base_dir)

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        self.socket: str = config["socket"]
        if len(os.fsencode(self.socket)) > _SUN_PATH_MAX:
            raise ValueError(f"config.socket: longer than a unix socket path may be "
                             f"({_SUN_PATH_MAX} bytes)")
        self.phases = frozenset(config.get("phases", ["request_filter"]))
        self.timeout = float(config.get("timeout", 1.0))
        self.limit = int(config.get("max_message_bytes", 262144))
        self.max_idle = int(config.get("max_idle_connections", 16))
        self.policy = FailurePolicy(f"external_plugin {self.socket}",
                                    config.get("on_failure", "deny"),
                                    int(config.get("failure_status", 503)))
        self.pool: PluginPool | None = None
        self._ids = itertools.count(1)

    def attach(self, resources: Resources, ident: str) -> None:
        # One pool per worker and socket, kept across reloads: a new config version must
        # not open a new set of connections to the same plugin.
        self.pool = resources.keep(("external_plugin", self.socket),
                                   lambda: PluginPool(self.socket, self.max_idle))

    def _call(self, ctx: Context, phase: str) -> Reply | None:
        if phase not in self.phases:
            return None
        if self.pool is None:
            self.pool = PluginPool(self.socket, self.max_idle)
        call_id = next(self._ids)
        try:
            answer = self.pool.call(frame(call_message(ctx, phase, call_id), self.limit),
                                    self.timeout, self.limit)
            if answer.get("id", call_id) != call_id:
                raise ProtocolError(f"answer to call {answer.get('id')!r}, not {call_id}")
            return apply(parse(answer, phase), ctx)
        except (OSError, EOFError, ProtocolError, VerdictError) as exc:
            reason = str(exc) or type(exc).__name__
            return self.policy.failed(ctx, phase, reason)

    def request_filter(self, ctx: Context) -> Reply | None:
        return self._call(ctx, "request_filter")

    def upstream_proxy_filter(self, ctx: Context) -> Reply | None:
        return self._call(ctx, "upstream_proxy_filter")

    def pre_upstream_request(self, ctx: Context) -> Reply | None:
        return self._call(ctx, "pre_upstream_request")

    def post_upstream_response(self, ctx: Context) -> None:
        self._call(ctx, "post_upstream_response")

    def pre_downstream_response(self, ctx: Context) -> None:
        self._call(ctx, "pre_downstream_response")
