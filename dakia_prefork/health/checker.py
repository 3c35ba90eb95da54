"""The health checker: probes upstream nodes and publishes their health to every worker.

Theory of operation
-------------------
One process per master (not one per worker: N workers probing would multiply the load on
the nodes and could disagree). It follows the config like a worker does: every half second
it reads the version the master published in the control block and, when it moved, loads
``state_dir/config/v<N>.json`` and reconciles its probes with it.

A probe is a greenlet per (upstream with a ``health_check``, node). Every ``interval``
seconds it opens a new connection the way the request path does (the node's name resolved
with a TTL, its TLS with the node's own settings), sends ``GET <path>`` with
``Connection: close`` and reads the final response head (skipping 1xx) through the upstream
client (``http/client.py``) with the engine the config names (``http_parser``), so a node
is judged by the parser that will read its responses; the body is not read, the connection
is closed. The whole probe is bounded by ``timeout``. A status in ``expected_statuses`` is
a success; anything else (refused, reset, timed out, another status, a head the engine
refuses) a failure. ``NodeStats.record_check`` applies the thresholds:
``healthy_threshold`` successes in a row make a node healthy, ``unhealthy_threshold``
failures in a row unhealthy; the balancers of an upstream with a ``health_check`` skip
unhealthy nodes. A node never checked yet is "unknown" and used, so a new node takes traffic
at once and a dead one leaves after ``unhealthy_threshold`` probes.

The state is named like the balancers name it (``<gateway>/<upstream>/<host:port>``), so a
reload that keeps a node keeps its health, and a respawned checker carries on from the state
in shared memory. A node whose upstream lost its ``health_check`` is reset to "unknown"
(nothing would ever refresh its verdict). With no health checks left in the config the
checker resets what it checked and exits; the master starts it again when a config has some.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import time
from typing import Any, Callable

import gevent

from ..balance import node_key
from ..config.model import HealthCheckSettings, Settings
from ..config.store import ConfigStore
from ..http.client import open_upstream, request
from ..http.engines import Engine, select_engine
from ..http.errors import UpstreamFailed
from ..http.upstream import Node, Resolver
from ..logs import reopen_logs, setup_logging
from ..shm.control import ControlBlock
from ..shm.instance import InstanceSegments
from ..shm.nodestats import HEALTH_NAMES, NodeStats
from ..worker.runtime import build_nodes

log = logging.getLogger("dakia.health")

VERSION_POLL = 0.5
_MAX_HEAD = 65536


# An upstream's health_check as the checker uses it: the typed settings of config/model.py
# (defaults from the schema; the stored config the checker reads is normalised).
CheckSpec = HealthCheckSettings


class _ProbeTimeout(Exception):
    """The probe's time is up (not an OSError: the resolver must not cache it as the
    name's failure)."""


def probe(node: Node, spec: CheckSpec, resolver: Resolver | None,
          engine: Engine) -> tuple[bool, str]:
    """One check of ``node``, its response read by ``engine``: (success, what was seen)."""
    try:
        with gevent.Timeout(spec.timeout, _ProbeTimeout):
            status = final_status(node, spec, resolver, engine)
    except _ProbeTimeout:
        return False, f"no response head within {spec.timeout:g}s"
    except UpstreamFailed as exc:
        if exc.status == 504 and exc.sent:          # connected, then nothing in time
            return False, f"no response head within {spec.timeout:g}s"
        return False, str(exc)
    except (OSError, ValueError) as exc:            # what the client does not map
        return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if status in spec.expected_statuses:
        return True, f"status {status}"
    return False, f"status {status} (expected {', '.join(map(str, sorted(spec.expected_statuses)))})"


def final_status(node: Node, spec: CheckSpec, resolver: Resolver | None,
                 engine: Engine) -> int:
    """The status of the final response head to ``GET spec.path`` on a new connection to
    ``node`` within ``spec.timeout``; raises UpstreamFailed (refused, timed out, a head
    ``engine`` refuses, closed before one)."""
    deadline = time.monotonic() + spec.timeout
    conn = open_upstream(node, spec.timeout, resolver)
    try:
        headers = [(b"host", node.host_header), (b"user-agent", b"dakia-health-check"),
                   (b"accept", b"*/*"), (b"connection", b"close")]
        reader = request(conn, engine, b"GET", spec.path.encode("latin-1"), headers,
                         max(deadline - time.monotonic(), 0.001), _MAX_HEAD)
        return reader.final_head().status
    finally:
        conn.close()


class _Target:
    __slots__ = ("key", "node", "spec", "upstream", "index", "engine", "greenlet", "state")

    def __init__(self, key: str, node: Node, spec: CheckSpec, upstream: str, index: int,
                 engine: Engine) -> None:
        self.key = key
        self.node = node
        self.spec = spec
        self.engine = engine
        self.upstream = upstream
        self.index = index
        self.greenlet: gevent.Greenlet | None = None
        self.state = -1


class Checks:
    """The probes of one config version at a time, publishing into ``stats``."""

    def __init__(self, stats: NodeStats, resolver: Resolver | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stats = stats
        self.resolver = resolver if resolver is not None else Resolver(spawn=gevent.spawn)
        self.clock = clock
        self.targets: dict[str, _Target] = {}

    def apply(self, config: dict[str, Any]) -> int:
        """Probe what ``config`` asks for from now on; returns how many nodes that is."""
        wanted: dict[str, tuple[Node, CheckSpec, str]] = {}
        # Probes read responses with the engine the workers read them with.
        engine = select_engine(config["http_parser"])
        for gateway in config["gateways"]:
            for upstream in gateway["upstreams"]:
                check = upstream.get("health_check")
                if check is None:
                    continue
                spec = CheckSpec.from_config(check)
                prefix = f"{gateway['name']}/{upstream['name']}"
                for node in build_nodes(upstream):
                    wanted[node_key(prefix, node)] = (node, spec, prefix)
        for key in list(self.targets):
            target = self.targets[key]
            if key in wanted and wanted[key][1] == target.spec and \
                    wanted[key][0].pool_key == target.node.pool_key:
                target.node = wanted[key][0]      # same probe; newer TLS context, TTL
                target.engine = engine
                continue
            if target.greenlet is not None:
                target.greenlet.kill(block=False)
            del self.targets[key]
            if key not in wanted:
                # Nobody will refresh this verdict any more: back to "unknown".
                self.stats.reset_health(target.index)
        for key, (node, spec, prefix) in wanted.items():
            if key in self.targets:
                continue
            index = self.stats.index_for(key)
            if index is None:
                log.error("health check of %s skipped: the node table is full", key)
                continue
            target = _Target(key, node, spec, prefix, index, engine)
            target.greenlet = gevent.spawn(self._run, target)
            self.targets[key] = target
        return len(self.targets)

    def stop(self, reset: bool = False) -> None:
        for target in self.targets.values():
            if target.greenlet is not None:
                target.greenlet.kill(block=False)
            if reset:
                self.stats.reset_health(target.index)
        self.targets.clear()

    def _run(self, target: _Target) -> None:
        # Spread the first probes of many nodes over the first interval.
        gevent.sleep(random.uniform(0, min(target.spec.interval, 1.0)))
        while True:
            self.check_once(target)
            gevent.sleep(target.spec.interval)

    def check_once(self, target: _Target) -> int:
        spec = target.spec
        ok, seen = probe(target.node, spec, self.resolver, target.engine)
        state = self.stats.record_check(target.index, ok, spec.healthy_threshold,
                                        spec.unhealthy_threshold, self.clock())
        if state != target.state:
            if target.state != -1 or state != 0:
                level = logging.WARNING if HEALTH_NAMES[state] == "unhealthy" else logging.INFO
                log.log(level, "upstream %s: node %s is %s (%s)", target.upstream,
                        target.node.label, HEALTH_NAMES[state], seen)
            target.state = state
        elif not ok:
            log.debug("upstream %s: node %s failed a check: %s", target.upstream,
                      target.node.label, seen)
        return state


class HealthChecker:
    """The process: follows published config versions, runs ``Checks``."""

    def __init__(self, config: dict[str, Any], version: int,
                 segments: InstanceSegments) -> None:
        self.pid = os.getpid()
        self.control = ControlBlock(segments.control)
        self.store = ConfigStore(config["state_dir"])
        self.checks = Checks(NodeStats(segments.nodes, pause=lambda: gevent.sleep(0)))
        self.version = 0
        self.stopped = False
        self._load(version, config)

    def serve(self) -> int:
        gevent.signal_handler(signal.SIGTERM, self._stop)
        gevent.signal_handler(signal.SIGINT, self._stop)
        gevent.signal_handler(signal.SIGQUIT, self._stop)
        gevent.signal_handler(signal.SIGUSR1, reopen_logs)
        # A USR1 that came before the handler (ignored meanwhile: health/main.py) found the
        # error log inherited from the master: reopen it once now, by its path.
        reopen_logs()
        log.info("health checker %d: checking %d node(s) (config v%d)", self.pid,
                 len(self.checks.targets), self.version)
        while not self.stopped:
            published = self.control.config_version
            if published > self.version:
                try:
                    config = self.store.read(published)
                except (OSError, ValueError) as exc:
                    log.error("health checker: cannot load config v%d, keeping v%d: %s",
                              published, self.version, exc)
                    self.version = published      # do not retry every turn
                else:
                    self._load(published, config)
            if not self.checks.targets:
                self.checks.stop(reset=True)
                log.info("health checker %d: no health checks in config v%d; exiting",
                         self.pid, self.version)
                return 0
            gevent.sleep(VERSION_POLL)
        self.checks.stop()
        return 0

    def _load(self, version: int, config: dict[str, Any]) -> None:
        try:
            # The version's error_log and log_level, as the master and the workers apply them.
            setup_logging(Settings.from_config(config))
        except OSError as exc:
            log.error("health checker: error_log: cannot open %s: %s; logging where it did",
                      config["error_log"], exc.strerror or exc)
        try:
            self.checks.apply(config)
        except Exception as exc:  # noqa: BLE001 - keep checking what we had
            log.error("health checker: cannot apply config v%d: %s", version, exc)
        self.version = version

    def _stop(self) -> None:
        self.stopped = True
