"""The one exception configuration loading raises."""
from __future__ import annotations

from collections.abc import Iterable


# An error quotes values from the file; a value may be megabytes long. Each message is cut
# to this many characters, the cut marked, so a report stays readable whatever the input.
MAX_MESSAGE = 500


def excerpt(text: str, limit: int = 80) -> str:
    """``text``, or its first ``limit`` characters and a mark of how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


class ConfigError(Exception):
    """A configuration that cannot be used.

    ``errors`` lists every problem found, each ``"<path>: <message>"`` where the path
    locates the value (``gateways[0].routers[1].filter``), or ``"<file>: <message>"`` for
    a file that cannot be read or parsed. ``str()`` is the errors, one per line.
    """

    def __init__(self, errors: Iterable[str] | str) -> None:
        listed = [errors] if isinstance(errors, str) else list(errors)
        self.errors: list[str] = [excerpt(e, MAX_MESSAGE) for e in listed]
        # args holds the list itself, so the exception pickles back into the same errors
        # (it crosses process boundaries: master, workers, the controller).
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "\n".join(self.errors)
