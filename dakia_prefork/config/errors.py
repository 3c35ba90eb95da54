"""The one exception configuration loading raises."""
from __future__ import annotations

from collections.abc import Iterable


class ConfigError(Exception):
    """A configuration that cannot be used.

    ``errors`` lists every problem found, each ``"<path>: <message>"`` where the path
    locates the value (``gateways[0].routers[1].filter``), or ``"<file>: <message>"`` for
    a file that cannot be read or parsed. ``str()`` is the errors, one per line.
    """

    def __init__(self, errors: Iterable[str] | str) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        # args holds the list itself, so the exception pickles back into the same errors
        # (it crosses process boundaries: master, workers, the controller).
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "\n".join(self.errors)
