"""The routing state of one gateway: its hosts, its compiled filters and its routers."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .filters import Predicate, compile_filter
from .hosts import HostMatcher
from .subject import FilterSubject


class GatewayRouter:
    """Built once per config version from one *normalised* gateway (see config/).

    Normalised means: filters compile, every router names a real upstream (``default``
    already resolved) and a filter that exists. Building from anything else raises
    ``ValueError`` (or :class:`~dakia_prefork.routing.filters.FilterError`,
    :class:`~dakia_prefork.routing.hosts.HostPatternError`), never routes wrongly.

    Attributes:
        name: the gateway's name.
        hosts: matcher for the gateway's downstream host patterns.
        filters: compiled filters by name, for routers and interceptors alike.
        default_upstream: the upstream marked ``default: true``, or None.
    """

    __slots__ = ("name", "hosts", "filters", "default_upstream", "_routes")

    def __init__(self, gateway: Mapping[str, Any]) -> None:
        self.name: str = gateway["name"]
        self.hosts = HostMatcher(d["host"] for d in gateway.get("downstreams") or ())
        compiled: dict[str, Predicate] = {}
        for index, spec in enumerate(gateway.get("filters") or ()):
            body = {key: value for key, value in spec.items() if key != "name"}
            compiled[spec["name"]] = compile_filter(body, f"filters[{index}]")
        self.filters: Mapping[str, Predicate] = MappingProxyType(compiled)
        upstreams = [u["name"] for u in gateway.get("upstreams") or ()]
        self.default_upstream: str | None = next(
            (u["name"] for u in gateway.get("upstreams") or () if u.get("default")), None)
        routes: list[tuple[Predicate | None, str]] = []
        for index, router in enumerate(gateway.get("routers") or ()):
            filter_name = router.get("filter")
            if filter_name is not None and filter_name not in compiled:
                raise ValueError(f"routers[{index}]: no filter named {filter_name!r}")
            if router["upstream"] not in upstreams:
                raise ValueError(f"routers[{index}]: no upstream named {router['upstream']!r}")
            routes.append((None if filter_name is None else compiled[filter_name],
                           router["upstream"]))
        self._routes = tuple(routes)

    def route(self, subject: FilterSubject) -> str | None:
        """The upstream for ``subject``: the first router whose filter holds.

        A router without a filter matches everything. A gateway without routers sends
        everything to its default upstream. None means no route (the caller answers 404).
        """
        if not self._routes:
            return self.default_upstream
        for matches, upstream in self._routes:
            if matches is None or matches(subject):
                return upstream
        return None
