"""Helper processes the master keeps running while the config wants them: the health
checker (when an upstream has a ``health_check``) and the ACME process (when a gateway has
``acme``).

Each follows published config versions by itself and exits 0 once its config no longer
needs it; the master starts it again when a config does. One that dies otherwise is
started again after a backoff (0.25 s doubling up to 16 s), at most once a second.
"""
from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import NoReturn

from ..config.model import Settings
from .spawner import Spawner

log = logging.getLogger("dakia.master")

MAX_BACKOFF = 16.0


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


class HelperChild:
    """One helper: ``role`` names it in the log, ``wanted`` says whether a config needs it,
    ``become`` is what the forked child runs."""

    def __init__(self, role: str, wanted: Callable[[Settings], bool],
                 become: Callable[[], NoReturn]) -> None:
        self.role = role
        self.wanted = wanted
        self.become = become
        self.pid: int | None = None
        self.failures = 0
        self.not_before = 0.0

    def supervise(self, spawner: Spawner, settings: Settings, now: float) -> None:
        """Start it if ``settings`` want it and it is not running (nor backing off)."""
        if self.pid is not None or now < self.not_before or not self.wanted(settings):
            return
        self.pid = spawner.fork(self.become)
        self.not_before = now + 1.0          # spawned at most once a second
        log.info("%s %d started", self.role, self.pid)

    def exited(self, status: int, now: float, stopping: bool) -> None:
        self.pid = None
        if stopping:
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            self.failures = 0                # its config no longer needs it
            return
        self.failures += 1
        delay = min(MAX_BACKOFF, 0.25 * 2 ** (self.failures - 1))
        self.not_before = now + delay
        log.error("%s %s; respawning in %.2fs", self.role, describe_exit(status), delay)

    def signal(self, spawner: Spawner, sig: int) -> None:
        if self.pid is not None:
            spawner.kill(self.pid, sig)

    def stop(self, stop_child: Callable[[int, float], None], grace: float) -> None:
        if self.pid is not None:
            stop_child(self.pid, grace)
            self.pid = None
