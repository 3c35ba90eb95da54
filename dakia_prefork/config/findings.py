"""Collects the errors and notices of one validation run, each at a location."""
from __future__ import annotations

from .errors import ConfigError
from .location import TOP_LEVEL, sort_key


def _line(path: str, message: str) -> str:
    return f"{path or TOP_LEVEL}: {message}"


class Findings:
    """Errors make the config unusable; notices report what was accepted but changed or
    ignored. Checks keep going after an error so one run reports everything."""

    def __init__(self) -> None:
        self._errors: list[tuple[str, str]] = []
        self._notices: list[tuple[str, str]] = []

    def error(self, path: str, message: str) -> None:
        """Record that the value at ``path`` is unusable, and why."""
        self._errors.append((path, message))

    def notice(self, path: str, message: str) -> None:
        """Record something accepted but ignored or changed at ``path``."""
        self._notices.append((path, message))

    @property
    def has_errors(self) -> bool:
        return bool(self._errors)

    def raise_errors(self) -> None:
        """Raise :class:`ConfigError` with every error, deduplicated, sorted by location."""
        if self._errors:
            unique = sorted(set(self._errors), key=lambda e: (sort_key(e[0]), e[1]))
            raise ConfigError(_line(path, message) for path, message in unique)

    def notice_lines(self) -> list[str]:
        """The notices as ``"<path>: <message>"``, in the order they were found."""
        return [_line(path, message) for path, message in self._notices]
