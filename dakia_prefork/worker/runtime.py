"""Everything a worker serves one config version with, built off to the side and swapped in whole.

A ``Runtime`` carries the version's typed ``Settings`` (config/model.py: limits, timeouts,
logs, every other setting) and what is built from them: each gateway's router, upstreams
(nodes, balancer) and interceptor chain, the HTTP engine new connections parse with, and
the access log requests are written to, and the metric slots of each route
(metrics/recorder.py; ``metrics.enabled`` decides whether there are any). It is immutable once built: a request holds the one
it started with, and ``Worker`` replaces ``WorkerContext.runtime`` in one assignment on
reload, so no request ever sees the settings of one version with the rules of another.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..acme.storage import AcmeStorage
from ..balance import Balancer, PassiveHealth, make_balancer
from ..config.addresses import describe_address
from ..config.model import GatewaySettings, Limits, NodeSettings, Settings, UpstreamSettings
from ..http.engines import Engine, select_engine
from ..http.upstream import Address, Node, tls_for
from ..interceptors import Chain, build_chain
from ..interceptors.resources import Resources
from ..message.paths import ESCAPED_SLASHES
from ..metrics.keys import NodeKeys
from ..metrics.recorder import GatewayMetrics, ListenerMetrics, NodeMetrics, RouteMetrics
from ..message.underscores import MODES as UNDERSCORE_MODES
from ..routing.hosts import HostLookup
from ..routing.realip import RealIp
from ..routing.router import GatewayRouter
from ..shm.counters import CounterTable
from ..shm.metrics import MetricWriter
from ..shm.nodestats import NodeStats
from ..tls.acme_listener import AcmeListenerTls
from ..tls.contexts import ListenerTls, TlsSettings
from ..tls.redirect import https_redirects
from .accesslog import AccessLog


def node_address(address: Mapping[str, Any]) -> Address:
    if "unix" in address:
        return ("unix", address["unix"], 0)
    return ("tcp", address["host"], int(address["port"]))


def nodes_of(upstream: UpstreamSettings) -> list[Node]:
    """The nodes of one upstream, TLS contexts and all."""
    return [_node(entry, upstream.resolve_ttl) for entry in upstream.nodes]


def _node(entry: NodeSettings, resolve_ttl: float) -> Node:
    tls = None
    if entry.tls:
        tls = tls_for(entry.address, entry.sni, entry.tls_verify, entry.ca_file,
                      entry.client_cert, entry.client_key)
    return Node(entry.address, entry.weight, tls, resolve_ttl)


def build_nodes(spec: Mapping[str, Any]) -> list[Node]:
    """The nodes of one upstream's normalised config (the health checker builds its own
    the same way as the workers)."""
    return nodes_of(UpstreamSettings.from_config(spec))


class UpstreamRuntime:
    __slots__ = ("settings", "name", "nodes", "balancer", "key_kind", "connect_timeout",
                 "read_timeout", "write_timeout", "idle_timeout", "websocket_idle", "retries")

    def __init__(self, gateway: str, settings: UpstreamSettings, counters: CounterTable | None,
                 node_stats: NodeStats | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.nodes = nodes_of(settings)
        passive = settings.passive_health
        self.balancer: Balancer = make_balancer(
            settings.node_selection_algorithm, f"{gateway}/{self.name}", self.nodes, counters,
            node_stats, passive=PassiveHealth(passive.max_failures, passive.eject_seconds),
            active_health=settings.health_check is not None)
        self.key_kind = self.balancer.key_kind
        # Flat copies of the timeouts: the request path reads them on every request.
        timeouts = settings.timeouts
        self.connect_timeout = timeouts.connect
        self.read_timeout = timeouts.read
        self.write_timeout = timeouts.write
        self.idle_timeout = timeouts.idle
        self.websocket_idle = timeouts.websocket_idle
        self.retries = settings.retries


class GatewayRuntime:
    __slots__ = ("settings", "name", "router", "hosts", "host_lookup", "upstreams",
                 "interceptors", "underscores", "merge_slashes", "escaped_slashes",
                 "forward_raw_path", "real_ip", "proxy_protocol", "tls", "acme_tls",
                 "https_redirect", "unrouted_metrics", "route_metrics", "acme_challenges",
                 "tls_metrics")

    def __init__(self, index: int, settings: GatewaySettings, counters: CounterTable | None,
                 resources: Resources | None = None,
                 node_stats: NodeStats | None = None,
                 metrics: MetricWriter | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        spec: dict[str, Any] = dict(settings.spec)
        self.router = GatewayRouter(spec)
        self.hosts = self.router.hosts
        self.host_lookup = HostLookup(self.hosts)
        self.upstreams = {u.name: UpstreamRuntime(self.name, u, counters, node_stats)
                          for u in settings.upstreams}
        self.interceptors: Chain | None = build_chain(spec, dict(self.router.filters),
                                                      f"gateways[{index}]", resources)
        # Flat copies for the request path, which reads them on every request.
        self.underscores = UNDERSCORE_MODES[settings.headers_with_underscores]
        paths = settings.path_normalization
        self.merge_slashes = paths.merge_slashes
        self.escaped_slashes = ESCAPED_SLASHES[paths.escaped_slashes]
        self.forward_raw_path = paths.forward_raw_path
        real_ip = spec.get("real_ip")
        self.real_ip: RealIp | None = None if real_ip is None else RealIp(
            real_ip["trusted_proxies"], real_ip["header"])
        # The listeners (by label, as the master names them) that read a PROXY header.
        self.proxy_protocol = frozenset(describe_address(a) for a in spec["bind_addresses"]
                                        if a.get("proxy_protocol"))
        # Where the ACME process leaves the HTTP-01 answers this gateway serves; None
        # without ``acme``.
        self.acme_challenges: str | None = None if settings.acme is None else \
            AcmeStorage(settings.acme.storage).challenges
        # The TLS listeners (by label), their contexts read from the files now: every
        # version reads them anew, so a reload serves the files as they are.
        self.tls: dict[str, ListenerTls] = {}
        # The ``tls: {}`` listeners: they serve the gateway's ACME certificate, read again
        # by the worker when the ACME process renews it (tls/acme_listener.py).
        self.acme_tls: dict[str, AcmeListenerTls] = {}
        for address in spec["bind_addresses"]:
            if "tls" not in address:
                continue
            label = describe_address(address)
            tls = TlsSettings.from_config(address["tls"])
            if tls.certificates or settings.acme is None:
                self.tls[label] = ListenerTls(tls)
            else:
                source = self.acme_tls[label] = AcmeListenerTls(tls, settings.acme, label)
                self.tls[label] = source.build()
        # The plain listeners that redirect to HTTPS, with the ":port" to send clients to.
        self.https_redirect: dict[str, bytes] = https_redirects(spec["bind_addresses"])
        # The request metrics of each route (by router.match's index) and of requests
        # answered before a route; None when metrics are off (metrics.enabled: false).
        self.unrouted_metrics: RouteMetrics | None = None
        self.route_metrics: tuple[RouteMetrics | None, ...] = (None,) * len(
            self.router.targets)
        if metrics is not None:
            made = GatewayMetrics(metrics, spec)
            self.unrouted_metrics = made.unrouted
            self.route_metrics = made.routes
            for upstream in self.upstreams.values():
                for node in upstream.nodes:
                    node.metrics = NodeMetrics(metrics,
                                               NodeKeys(self.name, upstream.name, node.label))
        # The failed handshakes of each TLS listener (by label); empty with metrics off.
        self.tls_metrics: dict[str, ListenerMetrics] = {} if metrics is None else {
            label: ListenerMetrics(metrics, self.name, label) for label in self.tls}


class Runtime:
    """One config version as a worker serves it. ``limits`` is ``settings.limits``."""

    __slots__ = ("version", "settings", "limits", "gateways", "engine", "access_log")

    def __init__(self, version: int, settings: Settings, counters: CounterTable | None,
                 resources: Resources | None = None, node_stats: NodeStats | None = None, *,
                 access_log: AccessLog | None = None,
                 metrics: MetricWriter | None = None) -> None:
        self.version = version
        self.settings = settings
        self.limits: Limits = settings.limits
        self.engine: Engine = select_engine(settings.http_parser)
        # metrics.enabled: false counts nothing (the writer stays, for a later reload).
        writer = metrics if settings.metrics.enabled else None
        self.gateways = {g.name: GatewayRuntime(i, g, counters, resources, node_stats, writer)
                         for i, g in enumerate(settings.gateways)}
        # Opened last: nothing above can fail and leave a descriptor behind.
        self.access_log = access_log if access_log is not None else AccessLog.for_settings(
            settings)
