"""What happens when a plugin fails: the configured policy, and a log that does not flood.

A plugin fails when it cannot be reached, does not answer within its timeout, breaks the
protocol or answers with a verdict that cannot be applied. ``on_failure: deny`` answers
``failure_status`` (503 by default: the service the plugin provides is unavailable);
``allow`` lets the request go on as if the plugin had said ``continue``. Pick ``deny`` for
plugins that guard access (an auth plugin that fails open is an open door) and ``allow``
for plugins that only enrich requests.

Failures are logged at most once per ``LOG_INTERVAL`` seconds per plugin, with the count of
those not logged since: a plugin that is down for a minute under load must not turn the
error log into a copy of the access log.
"""
from __future__ import annotations

import logging
import time

from ..message.wire import REASONS
from ..interceptors.context import Context, Reply

log = logging.getLogger("dakia.plugins")

LOG_INTERVAL = 10.0


class FailurePolicy:
    def __init__(self, label: str, on_failure: str, status: int) -> None:
        self.label = label
        self.deny = on_failure == "deny"
        self.status = status
        self.body = b"%d %s: a plugin failed\n" % (status, REASONS.get(status, b"Error"))
        self._last_log = 0.0
        self._unlogged = 0

    def failed(self, ctx: Context, phase: str, reason: str) -> Reply | None:
        """Log the failure (throttled) and apply the policy: a Reply under ``deny`` in a
        request-side phase; in a response phase, ``deny`` turns the response into the
        failure status."""
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL:
            more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
            log.error("plugin %s failed in %s (%s): %s%s", self.label, phase,
                      "denied" if self.deny else "allowed", reason, more)
            self._last_log, self._unlogged = now, 0
        else:
            self._unlogged += 1
        if not self.deny:
            return None
        if ctx.response is None:
            return Reply(self.status, self.body)
        ctx.response.status = self.status
        ctx.response.headers.remove(b"content-encoding")
        ctx.response.headers.set(b"content-type", "text/plain; charset=utf-8")
        ctx.response.body = self.body
        return None
