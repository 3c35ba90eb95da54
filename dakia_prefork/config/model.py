"""The typed settings of one config version: one immutable object, built once.

Theory of operation
-------------------
``Settings.from_config(config)`` turns a *normalised* config (the output of
``validate``/``load``, or a stored ``state_dir/config/v<N>.json``) into frozen dataclasses.
Normalisation has already filled every default from schema.json, so this module reads
every key with ``config[key]`` and never writes a default of its own: the schema is the
one place a default lives, and a key missing here is a bug that fails loudly (KeyError),
not a second default drifting from the first. A test builds the settings of the smallest
config and checks every field against the schema's default.

What is typed: everything the master and the worker act on (process settings, logs,
``limits``, upstreams with their nodes, timeouts and health settings, listeners). What is
not: a gateway's downstreams, routers, filters and interceptor entries, which the router
and the interceptor chain compile from their own shapes (``GatewaySettings.spec``, the
normalised mapping, read-only by convention: nothing may change it).

A worker builds its ``Runtime`` (worker/runtime.py) around one ``Settings`` and swaps the
whole runtime in one assignment on reload, so every setting a worker reads comes from the
same version. The master keeps the ``Settings`` of the version it published.

``RESTART_ONLY`` names the settings a running master cannot take from a reload;
``restart_only_changes`` says which of them a newly loaded file changes, and the master
keeps the running values for those (and reports them: ``dakia-master reload`` prints one
line per setting).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

Address = tuple[str, str, int]
"""``("tcp", host, port)`` or ``("unix", path, 0)``: the shape http/upstream.py connects to."""

WorkerCount = int | Literal["auto"]


def address_of(address: Mapping[str, Any]) -> Address:
    """The tuple form of a normalised ``{host, port}`` or ``{unix}`` mapping."""
    if "unix" in address:
        return ("unix", str(address["unix"]), 0)
    return ("tcp", str(address["host"]), int(address["port"]))


@dataclass(frozen=True, slots=True)
class Limits:
    """``limits``: the sizes and times a client controls (per worker)."""

    max_header_bytes: int
    max_body_bytes: int | None
    client_header_timeout: float
    client_body_timeout: float
    keepalive_timeout: float
    send_timeout: float
    max_connections: int
    tls_handshake_timeout: float

    @classmethod
    def from_config(cls, limits: Mapping[str, Any]) -> Limits:
        body = limits["max_body_bytes"]
        return cls(
            max_header_bytes=int(limits["max_header_bytes"]),
            max_body_bytes=None if body is None else int(body),
            client_header_timeout=float(limits["client_header_timeout"]),
            tls_handshake_timeout=float(limits["tls_handshake_timeout"]),
            client_body_timeout=float(limits["client_body_timeout"]),
            keepalive_timeout=float(limits["keepalive_timeout"]),
            send_timeout=float(limits["send_timeout"]),
            max_connections=int(limits["max_connections"]),
        )


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """An upstream's ``timeouts``, in seconds."""

    connect: float
    read: float
    write: float
    idle: float
    websocket_idle: float       # a WebSocket tunnel with no byte either way (http/tunnel.py)

    @classmethod
    def from_config(cls, timeouts: Mapping[str, Any]) -> UpstreamTimeouts:
        return cls(float(timeouts["connect"]), float(timeouts["read"]),
                   float(timeouts["write"]), float(timeouts["idle"]),
                   float(timeouts["websocket_idle"]))


@dataclass(frozen=True, slots=True)
class PassiveHealthSettings:
    """An upstream's ``passive_health``."""

    max_failures: int
    eject_seconds: float

    @classmethod
    def from_config(cls, passive: Mapping[str, Any]) -> PassiveHealthSettings:
        return cls(int(passive["max_failures"]), float(passive["eject_seconds"]))


@dataclass(frozen=True, slots=True)
class HealthCheckSettings:
    """An upstream's ``health_check`` (active checks, run by the health checker)."""

    path: str
    interval: float
    timeout: float
    healthy_threshold: int
    unhealthy_threshold: int
    expected_statuses: frozenset[int]

    @classmethod
    def from_config(cls, check: Mapping[str, Any]) -> HealthCheckSettings:
        return cls(str(check["path"]), float(check["interval"]), float(check["timeout"]),
                   int(check["healthy_threshold"]), int(check["unhealthy_threshold"]),
                   frozenset(int(s) for s in check["expected_statuses"]))


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """One entry of ``upstream_nodes``."""

    address: Address
    tls: bool
    sni: str | None
    tls_verify: bool
    ca_file: str | None
    client_cert: str | None
    client_key: str | None
    weight: int

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> NodeSettings:
        return cls(address_of(node["address"]), bool(node["tls"]), node["sni"],
                   bool(node["tls_verify"]), node["ca_file"], node["client_cert"],
                   node["client_key"], int(node["weight"]))


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """One upstream of a gateway. ``node_selection_algorithm`` is
    ``traffic_distribution_policy.node_selection_algorithm``; ``nodes`` is
    ``upstream_nodes``."""

    name: str
    default: bool
    node_selection_algorithm: str
    timeouts: UpstreamTimeouts
    retries: int
    health_check: HealthCheckSettings | None
    passive_health: PassiveHealthSettings
    resolve_ttl: float
    nodes: tuple[NodeSettings, ...]

    @classmethod
    def from_config(cls, upstream: Mapping[str, Any]) -> UpstreamSettings:
        check = upstream["health_check"]
        return cls(
            name=str(upstream["name"]),
            default=bool(upstream["default"]),
            node_selection_algorithm=str(
                upstream["traffic_distribution_policy"]["node_selection_algorithm"]),
            timeouts=UpstreamTimeouts.from_config(upstream["timeouts"]),
            retries=int(upstream["retries"]),
            health_check=None if check is None else HealthCheckSettings.from_config(check),
            passive_health=PassiveHealthSettings.from_config(upstream["passive_health"]),
            resolve_ttl=float(upstream["resolve_ttl"]),
            nodes=tuple(NodeSettings.from_config(n) for n in upstream["upstream_nodes"]),
        )


@dataclass(frozen=True, slots=True)
class PathNormalization:
    """``path_normalization``: how request paths are made canonical (message/paths.py)."""

    merge_slashes: bool
    escaped_slashes: str            # keep | reject | decode
    forward_raw_path: bool

    @classmethod
    def from_config(cls, top: Mapping[str, Any],
                    override: Mapping[str, Any] | None = None) -> PathNormalization:
        """The top-level fields, each replaced by a gateway's ``override`` where given."""
        fields = dict(top)
        fields.update(override or {})
        return cls(bool(fields["merge_slashes"]), str(fields["escaped_slashes"]),
                   bool(fields["forward_raw_path"]))


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """One gateway. ``spec`` is its normalised mapping, for the router (downstreams,
    routers, filters) and the interceptor chain (interceptors), which compile it.
    ``headers_with_underscores`` and ``path_normalization`` are the effective ones: the
    gateway's own over the top-level ones."""

    name: str
    bind_addresses: tuple[Address, ...]
    upstreams: tuple[UpstreamSettings, ...]
    headers_with_underscores: str
    path_normalization: PathNormalization
    spec: Mapping[str, Any] = dataclasses.field(repr=False, compare=True)
    acme: AcmeSettings | None = None

    @classmethod
    def from_config(cls, gateway: Mapping[str, Any],
                    top: Mapping[str, Any]) -> GatewaySettings:
        """``top`` is the whole config, whose settings the gateway's own override."""
        underscores = gateway["headers_with_underscores"]
        upstreams = [UpstreamSettings.from_config(u) for u in gateway["upstreams"]]
        if top.get("admin") is not None and has_controller(gateway):
            upstreams.append(admin_upstream(AdminSettings.from_config(top["admin"]),
                                            ConfigLoadSettings.from_config(top["config_load"])))
        return cls(
            name=str(gateway["name"]),
            bind_addresses=tuple(address_of(a) for a in gateway["bind_addresses"]),
            upstreams=tuple(upstreams),
            headers_with_underscores=str(top["headers_with_underscores"] if underscores is None
                                         else underscores),
            path_normalization=PathNormalization.from_config(top["path_normalization"],
                                                             gateway["path_normalization"]),
            spec=gateway,
            acme=None if gateway.get("acme") is None else AcmeSettings.from_config(
                gateway["acme"]),
        )

    def upstream(self, name: str) -> UpstreamSettings:
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class AcmeSettings:
    """A gateway's ``acme``: where and for which names its certificate is obtained."""

    directory: str
    email: str | None
    names: tuple[str, ...]
    storage: str
    renew_before_days: int
    ca_file: str | None
    retry_seconds: float

    @classmethod
    def from_config(cls, acme: Mapping[str, Any]) -> AcmeSettings:
        return cls(str(acme["directory"]), acme["email"], tuple(acme["names"]),
                   str(acme["storage"]), int(acme["renew_before_days"]), acme["ca_file"],
                   float(acme["retry_seconds"]))


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    """``config_source.etcd``: the etcd cluster and key the shared document lives at."""

    endpoints: tuple[str, ...]
    key: str
    username: str | None
    password: str | None
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    timeout: float

    @classmethod
    def from_config(cls, etcd: Mapping[str, Any]) -> EtcdSettings:
        return cls(endpoints=tuple(str(e).rstrip("/") for e in etcd["endpoints"]),
                   key=str(etcd["key"]), username=etcd["username"],
                   password=etcd["password"], ca_file=etcd["ca_file"],
                   cert_file=etcd["cert_file"], key_file=etcd["key_file"],
                   timeout=float(etcd["timeout"]))

    def describe(self) -> str:
        """Where the document is, for messages (no credentials)."""
        return f"etcd {','.join(self.endpoints)} key {self.key}"


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """``admin``: the admin API's listener and where its token comes from."""

    listen: str
    token_file: str | None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of ``listen``, which normalisation made ``host:port`` or
        ``[v6]:port``."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @classmethod
    def from_config(cls, admin: Mapping[str, Any]) -> AdminSettings:
        return cls(str(admin["listen"]), admin["token_file"])


ADMIN_UPSTREAM: Final = "(admin)"
"""The upstream of a gateway with a ``controller`` interceptor: the admin listener."""


def has_controller(gateway: Mapping[str, Any]) -> bool:
    return any(entry["name"] == "controller" and entry["enabled"]
               for entry in gateway["interceptors"])


def admin_upstream(admin: AdminSettings, config_load: ConfigLoadSettings) -> UpstreamSettings:
    """The admin listener as an upstream (interceptors/controller.py). A change is answered
    after the master loaded it (up to ``config_load.timeout``, possibly behind another) and
    the workers took it: the read timeout leaves room for both."""
    host, port = admin.address
    node = NodeSettings(("tcp", host, port), tls=False, sni=None, tls_verify=False,
                        ca_file=None, client_cert=None, client_key=None, weight=1)
    return UpstreamSettings(
        name=ADMIN_UPSTREAM, default=False, node_selection_algorithm="round_robin",
        timeouts=UpstreamTimeouts(connect=2.0, read=2 * config_load.timeout + 15,
                                  write=30.0, idle=30.0, websocket_idle=30.0),
        retries=0, health_check=None,
        # Never ejected: there is one node, and its failures are the API's answers.
        passive_health=PassiveHealthSettings(max_failures=0, eject_seconds=0.0),
        resolve_ttl=0.0, nodes=(node,))


@dataclass(frozen=True, slots=True)
class ConfigLoadSettings:
    """``config_load``: how long and how much memory loading a new config may take."""

    timeout: float
    max_memory_bytes: int

    @classmethod
    def from_config(cls, value: Mapping[str, Any]) -> ConfigLoadSettings:
        return cls(float(value["timeout"]), int(value["max_memory_bytes"]))


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``metrics``: whether workers count the request metrics (metrics/recorder.py)."""

    enabled: bool

    @classmethod
    def from_config(cls, value: Mapping[str, Any]) -> MetricsSettings:
        return cls(bool(value["enabled"]))


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of one config version. Field names are the config's keys."""

    workers: WorkerCount
    graceful_timeout: float
    worker_timeout: float
    http_parser: str
    keep_versions: int
    pid_file: str
    state_dir: str
    access_log: str
    access_log_format: str
    access_log_fields: tuple[str, ...] | None
    error_log: str
    log_level: str
    upstream_keepalive_pool_size: int
    limits: Limits
    headers_with_underscores: str
    path_normalization: PathNormalization
    admin: AdminSettings | None
    gateways: tuple[GatewaySettings, ...]
    config_load: ConfigLoadSettings
    metrics: MetricsSettings
    etcd: EtcdSettings | None
    """``config_source.etcd``: the node follows a document in etcd (None: the file)."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """The settings of a normalised config (every default already filled)."""
        workers = config["workers"]
        admin = config["admin"]
        fields = config["access_log_fields"]
        return cls(
            workers="auto" if workers == "auto" else int(workers),
            graceful_timeout=float(config["graceful_timeout"]),
            worker_timeout=float(config["worker_timeout"]),
            http_parser=str(config["http_parser"]),
            keep_versions=int(config["keep_versions"]),
            pid_file=str(config["pid_file"]),
            state_dir=str(config["state_dir"]),
            access_log=str(config["access_log"]),
            access_log_format=str(config["access_log_format"]),
            access_log_fields=None if fields is None else tuple(str(f) for f in fields),
            error_log=str(config["error_log"]),
            log_level=str(config["log_level"]),
            upstream_keepalive_pool_size=int(config["upstream_keepalive_pool_size"]),
            limits=Limits.from_config(config["limits"]),
            headers_with_underscores=str(config["headers_with_underscores"]),
            path_normalization=PathNormalization.from_config(config["path_normalization"]),
            admin=None if admin is None else AdminSettings.from_config(admin),
            gateways=tuple(GatewaySettings.from_config(g, config) for g in config["gateways"]),
            config_load=ConfigLoadSettings.from_config(config["config_load"]),
            metrics=MetricsSettings.from_config(config["metrics"]),
            etcd=_etcd_of(config),
        )

    def gateway(self, name: str) -> GatewaySettings:
        for gateway in self.gateways:
            if gateway.name == name:
                return gateway
        raise KeyError(name)

    @property
    def has_health_checks(self) -> bool:
        return any(u.health_check is not None for g in self.gateways for u in g.upstreams)

    @property
    def acme(self) -> tuple[tuple[str, AcmeSettings], ...]:
        """``(gateway name, its acme)`` of every gateway that obtains its certificate."""
        return tuple((g.name, g.acme) for g in self.gateways if g.acme is not None)


# -- what a reload cannot change ---------------------------------------------------------
RESTART_ONLY: Final[Mapping[str, str]] = {
    "pid_file": "the CLI, init scripts and a binary upgrade find the running master "
                "through it; moving it under a running master would lose it",
    "state_dir": "the versioned config store and the names of the shared-memory segments "
                 "every worker has mapped derive from it",
}
"""The top-level settings a reload does not apply, and why. A reload that changes one keeps
the running value (it is also what the published version records) and reports it; the
next start or binary upgrade (``dakia-master upgrade``) takes the file's value."""

RESTART_HINT: Final = "needs a restart (dakia-master upgrade)"


@dataclass(frozen=True, slots=True)
class NotApplied:
    """A setting a reload found changed in the file and did not apply."""

    setting: str
    wanted: Any         # the file's value
    running: Any        # the value kept
    reason: str = RESTART_HINT

    def line(self) -> str:
        """``pid_file: changed in the file but needs a restart (dakia-master upgrade);
        still /run/a.pid``."""
        return f"{self.setting}: changed in the file but {self.reason}; still {self.running}"

    def as_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "wanted": self.wanted, "running": self.running,
                "reason": self.reason, "line": self.line()}


def restart_only_changes(running: Settings, loaded: Settings) -> tuple[NotApplied, ...]:
    """The ``RESTART_ONLY`` settings whose value in ``loaded`` differs from ``running``."""
    return tuple(NotApplied(name, getattr(loaded, name), getattr(running, name))
                 for name in RESTART_ONLY if getattr(loaded, name) != getattr(running, name))


def keeping_running(config: dict[str, Any], loaded: Settings,
                    changes: tuple[NotApplied, ...]) -> Settings:
    """Put the running values of ``changes`` back, in place in ``config`` (the mapping that
    is published) and in the returned settings, so that both still agree."""
    for change in changes:
        config[change.setting] = change.running
    return dataclasses.replace(loaded, **{c.setting: c.running for c in changes})


def _etcd_of(config: Mapping[str, Any]) -> EtcdSettings | None:
    # .get: a version stored by a release without config_source has no such key.
    source = config.get("config_source") or {}
    etcd = source.get("etcd")
    return None if etcd is None else EtcdSettings.from_config(etcd)
