"""The ACME process: one per master, forked when a config has a gateway with ``acme``.

Theory of operation
-------------------
Certificates are obtained and renewed here and nowhere else: N workers asking a CA for
the same names would multiply orders (and hit its rate limits) and race on the files.
Workers only read the result: the challenge answers this process writes while an order is
pending, and the certificate bundles (acme/storage.py).

Like the health checker it follows the config by itself: once a second it reads the
version the master published in the control block and, when it moved, loads that version
from the config store and hands its ``acme`` blocks to the schedule (acme/renewer.py);
with none left it exits 0, and the master starts it again when a config has some. It is a
plain synchronous process (the ACME client is blocking ``requests``; nothing else runs
here), so a request to the CA only delays the next look at the schedule. SIGTERM ends it
at the next such look, which may be an order's length away; the master's stop kills it
after a grace period, and the challenge files it leaves are removed at the next start.
"""
from __future__ import annotations

import datetime
import logging
import os
import signal
import time
from typing import Any, NoReturn

from ..config.model import AcmeSettings, Settings
from ..config.store import ConfigStore
from ..logs import reopen_logs, setup_logging
from ..procs import die_with_parent, exit_with, orphaned, reset_master_signals, set_title
from ..shm.control import ControlBlock
from .renewer import Renewer
from .storage import AcmeStorage, bundle_validity

log = logging.getLogger("dakia.acme")

POLL = 1.0


def _validity(settings: AcmeSettings) -> tuple[datetime.datetime, datetime.datetime] | None:
    return bundle_validity(AcmeStorage(settings.storage).bundle_path(settings.names))


def _obtain(gateway: str, settings: AcmeSettings) -> str:
    # The ACME library (and requests under it) only in this process, only when used.
    from .issue import obtain
    store = AcmeStorage(settings.storage)
    store.prepare()
    return obtain(settings, store)


class AcmeProcess:
    def __init__(self, config: dict[str, Any], version: int, control: ControlBlock) -> None:
        self.pid = os.getpid()
        self.control = control
        self.store = ConfigStore(config["state_dir"])
        self.renewer = Renewer(_obtain, _validity, time.monotonic,
                               lambda: datetime.datetime.now(datetime.timezone.utc))
        self.version = 0
        self.stopped = False
        self._load(version, config)
        for _gateway, acme in self.renewer.entries.items():
            try:
                AcmeStorage(acme.settings.storage).drop_pending()
            except OSError:
                pass                     # reported by _load already

    def _load(self, version: int, config: dict[str, Any]) -> None:
        settings = Settings.from_config(config)
        try:
            setup_logging(settings)
        except OSError as exc:
            log.error("acme: error_log: cannot open %s: %s; logging where it did",
                      settings.error_log, exc.strerror or exc)
        for _gateway, acme in settings.acme:
            try:
                AcmeStorage(acme.storage).prepare()
            except OSError as exc:
                log.error("acme: storage %s: %s", acme.storage, exc.strerror or exc)
        self.renewer.apply(settings.acme)
        self.version = version

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopped = True

    def serve(self, master: int) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGQUIT, self._stop)
        signal.signal(signal.SIGUSR1, lambda signum, frame: reopen_logs())
        reopen_logs()        # a USR1 ignored before the handler was in: see run_acme
        log.info("acme process %d: %d gateway(s) (config v%d)", self.pid,
                 len(self.renewer.entries), self.version)
        wake = 0.0
        while not self.stopped and not orphaned(master):
            published = self.control.config_version
            if published > self.version:
                try:
                    self._load(published, self.store.read(published))
                except (OSError, ValueError) as exc:
                    log.error("acme: cannot load config v%d, keeping v%d: %s", published,
                              self.version, exc)
                    self.version = published     # do not retry every turn
            if not self.renewer.entries:
                log.info("acme process %d: no acme in config v%d; exiting", self.pid,
                         self.version)
                return 0
            now = time.monotonic()
            if now >= wake:
                wake = now + self.renewer.step()
            time.sleep(max(0.0, min(POLL, wake - time.monotonic())))
        return 0


def run_acme(config: dict[str, Any], version: int, segments: Any) -> NoReturn:
    """Renew until told to stop, then ``os._exit``: never returns into the master's code."""
    reset_master_signals(ignore_usr1=True)     # until the process's USR1 handler is in
    set_title("acme")
    control = ControlBlock(segments.control)
    master = control.master_pid                 # not getppid(): it may be 1 now
    die_with_parent(signal.SIGTERM)
    exit_with(lambda: AcmeProcess(config, version, control).serve(master))
