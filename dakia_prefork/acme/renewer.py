"""When to obtain each gateway's certificate: the schedule, without any I/O of its own.

A certificate is obtained when its bundle is missing or unreadable, or when it expires
within ``renew_before_days`` (for one that lives no longer than that: once two thirds of
its life are over, so that a CA of short-lived certificates is not asked again and again); otherwise it is looked at again when it becomes due, and at
least every ``RECHECK`` seconds (a bundle removed by hand is noticed). A failure is
retried after ``retry_seconds``, doubled on each failure in a row up to ``MAX_RETRY``; the
bundle already there (still valid, one hopes) is left as it is, so the gateway keeps
serving it. Entries are keyed by gateway, so a reload that keeps a gateway's ``acme``
keeps its schedule and its failures.
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..config.model import AcmeSettings

log = logging.getLogger("dakia.acme")

RECHECK = 12 * 3600.0
MAX_RETRY = 3600.0

Obtain = Callable[[str, AcmeSettings], str]
"""``obtain(gateway, settings)``: the new bundle's path, or raises with the reason."""
Validity = Callable[[AcmeSettings], "tuple[datetime.datetime, datetime.datetime] | None"]
"""``validity(settings)``: (not before, not after) of the bundle there, or None."""


@dataclass
class _Entry:
    settings: AcmeSettings
    due: float = 0.0             # monotonic time of the next look; 0: now
    failures: int = 0


class Renewer:
    """The schedule of every gateway's certificate."""

    def __init__(self, obtain: Obtain, validity: Validity,
                 clock: Callable[[], float],
                 wall: Callable[[], datetime.datetime]) -> None:
        self._obtain = obtain
        self._validity = validity
        self._clock = clock
        self._wall = wall
        self.entries: dict[str, _Entry] = {}

    def apply(self, wanted: tuple[tuple[str, AcmeSettings], ...]) -> None:
        """Follow a config's ``acme`` blocks: new or changed ones are looked at now."""
        kept: dict[str, _Entry] = {}
        for gateway, settings in wanted:
            entry = self.entries.get(gateway)
            kept[gateway] = entry if entry is not None and entry.settings == settings \
                else _Entry(settings)
        self.entries = kept

    def step(self) -> float:
        """Do what is due now; returns the seconds until the next thing is due."""
        for gateway, entry in self.entries.items():
            if entry.due <= self._clock():
                self._look(gateway, entry)
        if not self.entries:
            return RECHECK
        return max(0.0, min(entry.due for entry in self.entries.values()) - self._clock())

    def _look(self, gateway: str, entry: _Entry) -> None:
        settings = entry.settings
        validity = self._validity(settings)
        now = self._wall()
        expires = renew_at = None
        if validity is not None:
            issued, expires = validity
            renew_at = expires - datetime.timedelta(days=settings.renew_before_days)
            if renew_at <= issued:
                renew_at = issued + (expires - issued) * 2 / 3
        if renew_at is not None and renew_at > now:
            if entry.failures or not entry.due:
                log.info("acme: gateway %s: the certificate for %s is valid until %s UTC; "
                         "renewal due %s UTC", gateway, ", ".join(settings.names),
                         f"{expires:%Y-%m-%d %H:%M}", f"{renew_at:%Y-%m-%d %H:%M}")
            entry.failures = 0
            entry.due = self._clock() + min(RECHECK, (renew_at - now).total_seconds())
            return
        why = "no certificate yet" if expires is None else \
            f"it expires {expires:%Y-%m-%d %H:%M} UTC"
        log.info("acme: gateway %s: obtaining a certificate for %s (%s)", gateway,
                 ", ".join(settings.names), why)
        try:
            path = self._obtain(gateway, settings)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, see module doc
            entry.failures += 1
            delay = min(MAX_RETRY, settings.retry_seconds * 2 ** (entry.failures - 1))
            entry.due = self._clock() + delay
            keeping = "no certificate to serve meanwhile" if expires is None else \
                "keeping the current certificate"
            log.error("acme: gateway %s: cannot obtain a certificate for %s: %s; retrying "
                      "in %.0fs (%s)", gateway, ", ".join(settings.names), exc, delay,
                      keeping)
            return
        entry.failures = 0
        entry.due = self._clock()            # look again now: schedules from the new expiry
        log.warning("acme: gateway %s: new certificate for %s in %s", gateway,
                    ", ".join(settings.names), path)
