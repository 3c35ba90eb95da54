"""The interceptor base class and the registry of built-ins by name."""
from __future__ import annotations

from typing import Any, ClassVar

from ..http.events import Headers
from ..http.request import Request

Reply = tuple[int, Headers, bytes]          # status, headers, body


class Interceptor:
    """Subclasses set ``name`` and override the hooks they need.

    ``spec`` is the normalised config entry: ``config``, ``rewrite`` and ``response`` maps.
    A constructor raises ValueError with a message naming the bad key when its config is
    invalid; the message is reported with the entry's config path.
    """

    name: ClassVar[str] = ""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def request_filter(self, request: Request) -> Reply | None:
        """Return a reply to answer on our own, or None to let the request go on."""
        return None

    def response_headers(self, request: Request, status: int, headers: Headers) -> None:
        """Change the headers of the response in place before they go to the client."""


REGISTRY: dict[str, type[Interceptor]] = {}


def register(cls: type[Interceptor]) -> type[Interceptor]:
    REGISTRY[cls.name] = cls
    return cls
