"""The routing state of one gateway: its hosts, its compiled filters and its routers.

Routers are tried in config order, first match wins; :mod:`.index` narrows the routers
tried to those whose filters' path, host and method conditions the request meets.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from .conditions import necessary_conditions
from .filters import Predicate, compile_filter
from .hosts import HostMatcher
from .index import RouteIndex
from .subject import FilterSubject

SCAN_UP_TO = 3
"""Gateways with this many routers or fewer are scanned: cheaper than any index lookup."""


class GatewayRouter:
    """Built once per config version from one *normalised* gateway (see config/).

    Normalised means: filters compile, every router names a real upstream (``default``
    already resolved) and a filter that exists. Building from anything else raises
    ``ValueError`` (or :class:`~dakia_prefork.routing.filters.FilterError`,
    :class:`~dakia_prefork.routing.hosts.HostPatternError`), never routes wrongly.

    ``route()`` answers as trying every router in order would; beyond
    :data:`SCAN_UP_TO` routers a :class:`~dakia_prefork.routing.index.RouteIndex` picks
    the ones worth trying, so 1,000 routers cost about what one does.

    Attributes:
        name: the gateway's name.
        hosts: matcher for the gateway's downstream host patterns.
        filters: compiled filters by name, for routers and interceptors alike.
        default_upstream: the upstream marked ``default: true``, or None.
    """

    __slots__ = ("name", "hosts", "filters", "default_upstream", "targets", "_routes", "_index")

    def __init__(self, gateway: Mapping[str, Any]) -> None:
        self.name: str = gateway["name"]
        self.hosts = HostMatcher(d["host"] for d in gateway.get("downstreams") or ())
        compiled: dict[str, Predicate] = {}
        bodies: dict[str, Mapping[str, Any]] = {}
        for index, spec in enumerate(gateway.get("filters") or ()):
            body = {key: value for key, value in spec.items() if key != "name"}
            compiled[spec["name"]] = compile_filter(body, f"filters[{index}]")
            bodies[spec["name"]] = body
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
        # The upstream of each index ``match`` returns: one per router, or the default
        # upstream alone for a gateway without routers.
        self.targets: tuple[str, ...] = tuple(upstream for _, upstream in routes) if routes \
            else (() if self.default_upstream is None else (self.default_upstream,))
        self._index = _index_of(
            [None if router.get("filter") is None else bodies[router["filter"]]
             for router in gateway.get("routers") or ()])

    def route(self, subject: FilterSubject) -> str | None:
        """The upstream for ``subject``: the first router whose filter holds.

        A router without a filter matches everything. A gateway without routers sends
        everything to its default upstream. None means no route (the caller answers 404).
        """
        routes = self._routes
        if not routes:
            return self.default_upstream
        if self._index is None:
            for matches, upstream in routes:
                if matches is None or matches(subject):
                    return upstream
            return None
        candidates = self._index.candidates(subject)
        while candidates:
            lowest = candidates & -candidates   # the first router still in the running
            matches, upstream = routes[lowest.bit_length() - 1]
            if matches is None or matches(subject):
                return upstream
            candidates ^= lowest
        return None


    def match(self, subject: FilterSubject) -> int:
        """The index of the first router whose filter holds (into ``targets``), or -1 for
        no route. A gateway without routers matches index 0, its default upstream, when it
        has one. ``route`` is ``targets[match(subject)]``."""
        routes = self._routes
        if not routes:
            return -1 if self.default_upstream is None else 0
        if self._index is None:
            index = 0
            for matches, _upstream in routes:
                if matches is None or matches(subject):
                    return index
                index += 1
            return -1
        candidates = self._index.candidates(subject)
        while candidates:
            lowest = candidates & -candidates
            index = lowest.bit_length() - 1
            matches = routes[index][0]
            if matches is None or matches(subject):
                return index
            candidates ^= lowest
        return -1


def _index_of(filters: list[Mapping[str, Any] | None]) -> RouteIndex | None:
    """The index of routers with these filter specs (None: no filter), or None where a
    scan is as good: few routers, or none with a condition the index can use."""
    if len(filters) <= SCAN_UP_TO:
        return None
    index = RouteIndex([None if spec is None else necessary_conditions(spec)
                        for spec in filters])
    return index if index.indexed else None
