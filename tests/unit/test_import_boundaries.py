"""The directions of DESIGN.md hold in the running process, not only import by import.

Each test runs a fresh interpreter that imports one side of the gateway and does what that
side really does (the master loads, checks and publishes a config that uses every built-in
interceptor; config/ loads and validates; chains are built), then prints ``sys.modules``.
The test fails naming every module that side must not have loaded. A module can be pulled
in by a function that runs, not only by an import line, which is why reading imports is not
enough: the master once loaded http/ and h11 through master/checks.py -> interceptors ->
try_file, although no master file names http/.

To see who loads a module that a test names: ``python -X importtime -c "<the child's code>"``
prints the import tree.
"""
from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import dakia_prefork.shm
from dakia_prefork.interceptors.registry import IMPLEMENTED
from tests.every_interceptor import FILTER, admin_section, interceptor_entries

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MARK = "MODULES "

# What a process that must not serve HTTP must not load: gevent's hub, the parsers, the
# request path, the worker. redis too: the master builds rate_limiter chains to check them
# and must not import the client (ratelimit_redis.py makes it in the worker).
SERVING = ("gevent", "h11", "httptools", "redis", "dakia_prefork.http",
           "dakia_prefork.worker", "dakia_prefork.health")
# Modules of ours that do I/O: config/ and routing/ must not load them.
OUR_IO = ("dakia_prefork.http", "dakia_prefork.worker", "dakia_prefork.health",
          "dakia_prefork.master", "dakia_prefork.plugins.pool", "dakia_prefork.plugins.external",
          "dakia_prefork.plugins.native")
# The standard library's socket modules. One dependency of config/ loads a part of them:
# jsonschema -> referencing -> typing_extensions imports the C module ``_socket`` (on Python
# < 3.13) only to take the type of its CAPI capsule as ``CapsuleType``; it opens nothing, and
# is not ours to change, so ``_socket`` is left out. Nothing else third-party loads these
# (jsonschema, referencing, rpds, attrs, yaml); if an update starts to, keep the assertion for
# what is ours and name the dependency here.
STDLIB_SOCKETS = ("socket", "ssl", "_ssl", "selectors")
# Every built-in implementation and what builds chains: a config with no interceptors
# needs none of it.
INTERCEPTOR_CODE = ("dakia_prefork.interceptors.base", "dakia_prefork.interceptors.chain",
                    "dakia_prefork.interceptors.context", "dakia_prefork.plugins",
                    "dakia_prefork.shm", "dakia_prefork.message")


def fresh_modules(code: str) -> set[str]:
    """``sys.modules`` after ``code`` ran in a new interpreter (from the checkout)."""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        _mods = sorted(sys.modules)
        import json as _json
        print({_MARK!r} + _json.dumps(_mods))
        """)
    done = subprocess.run([sys.executable, "-c", "import sys\n" + script], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, f"the child failed:\n{done.stdout}\n{done.stderr}"
    assert "warning:" not in done.stderr, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    assert lines, f"no module list in the child's output:\n{done.stdout}\n{done.stderr}"
    return set(json.loads(lines[-1][len(_MARK):]))


def offending(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    """The modules that are, or are inside, one of ``forbidden``."""
    return sorted(name for name in modules
                  if any(name == prefix or name.startswith(prefix + ".")
                         for prefix in forbidden))


def assert_none(rule: str, modules: set[str], forbidden: tuple[str, ...]) -> None:
    found = offending(modules, forbidden)
    assert not found, f"{rule}, yet the process loaded {len(found)}: {', '.join(found)}"


def write_config(directory: str, name: str, interceptors: list[dict[str, Any]]) -> str:
    """A config file (JSON: the child need not load yaml) with one gateway on a unix
    socket, so no port is taken."""
    config = {
        "workers": 1,
        "pid_file": os.path.join(directory, "dakia.pid"),
        "state_dir": os.path.join(directory, "state"),
        "access_log": "off",
        "admin": admin_section() if interceptors else None,
        "gateways": [{
            "name": "edge",
            "bind_addresses": [{"unix": os.path.join(directory, "edge.sock")}],
            "downstreams": [{"host": "example.com"}],
            "upstreams": [{"name": "app", "default": True,
                           "upstream_nodes": [{"address": {"host": "127.0.0.1",
                                                           "port": 9}}]}],
            "routers": [{"upstream": "app", "filter": "api"}, {"upstream": "default"}],
            "filters": [{"name": "api", "path": {"$starts_with": "/api/"}}, FILTER],
            "interceptors": interceptors,
        }],
    }
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(config, f)
    return path


@pytest.fixture
def configs(tmp_path: Any) -> dict[str, str]:
    directory = str(tmp_path)
    return {"plain": write_config(directory, "plain.json", []),
            "every": write_config(directory, "every.json", interceptor_entries(directory))}


def test_checking_a_tls_config_loads_nothing_that_serves(tmp_path: Any) -> None:
    """`dakia-master check` on a TLS listener loads and checks its certificates (ssl and
    cryptography) and still loads nothing that serves HTTP."""
    config_path = write_config(str(tmp_path), "tls.json", [])
    with open(config_path) as f:
        config = json.load(f)
    config["gateways"][0]["bind_addresses"][0]["tls"] = {
        "certificates": [{"cert": "tls/cert.pem", "key": "tls/key.pem"}]}
    with open(config_path, "w") as f:
        json.dump(config, f)
    modules = fresh_modules(f"""
        from dakia_prefork import cli
        from dakia_prefork.tls.certs import write_self_signed
        write_self_signed({str(tmp_path / "tls")!r}, ["a.example"], 30)
        assert cli.main(["check", "-c", {config_path!r}]) == 0
        """)
    assert {"dakia_prefork.tls.certs", "dakia_prefork.tls.contexts", "ssl"} <= modules
    assert_none("checking certificates loads nothing that serves", modules, SERVING)


# -- master/: never gevent, never http/ ------------------------------------------------------
def test_a_plain_worker_loads_no_certificate_code() -> None:
    """cryptography's x509 costs every worker about 9 MB: a worker loads it only once a
    config has a TLS listener (or an interceptor that verifies signatures)."""
    modules = fresh_modules("""
        from gevent import monkey
        monkey.patch_all()
        import dakia_prefork.worker.serve, dakia_prefork.worker.runtime
        """)
    assert_none("a worker's modules load cryptography only when a listener needs it",
                modules, ("cryptography", "dakia_prefork.tls.certs"))


def test_the_master_imports_nothing_that_serves_http() -> None:
    modules = fresh_modules("""
        import dakia_prefork.cli, dakia_prefork.master.arbiter, dakia_prefork.master.checks
        """)
    assert_none("master/ never imports gevent, the parsers, http/ or worker/", modules, SERVING)
    # The etcd client and requests only in the follower and loader children (fleet/).
    assert_none("the master never imports the etcd client", modules,
                ("etcd3gw", "requests", "dakia_prefork.fleet.etcd",
                 "dakia_prefork.fleet.follower"))


def test_the_master_loads_checks_and_publishes_every_interceptor_without_http(
        configs: dict[str, str]) -> None:
    """`dakia-master check`, then a master's start and reload onto a config that uses every
    built-in interceptor (each chain is built and checked), in one process: the master's
    own code (setup binds, creates shared memory, publishes v1; reload publishes v2, from
    the verdict of its loader child)."""
    modules = fresh_modules(f"""
        import json, os
        from dakia_prefork import cli
        from dakia_prefork.config import load
        from dakia_prefork.master.arbiter import Master
        assert cli.main(["check", "-c", {configs["every"]!r}]) == 0
        config, _ = load({configs["plain"]!r})
        master = Master({configs["plain"]!r}, config, workers_override=1)
        master.setup()
        try:
            os.replace({configs["every"]!r}, {configs["plain"]!r})
            master.reload()
            # The reload loads in a child (master/reloader.py); the loop takes its verdict.
            while master.reload_job is not None:
                master._wait_for_event(0.05)
                master._reap()
                master._poll_reload()
            with open(os.path.join(config["state_dir"], "last_reload.json")) as f:
                result = json.load(f)
            assert result["ok"] and result["version"] == 2, result
        finally:
            master.cleanup()
        """)
    assert {"dakia_prefork.interceptors.try_file",
            "dakia_prefork.interceptors.rate_limiter"} <= modules   # the chains were built
    assert_none("the master never loads gevent, the parsers, redis, http/ or worker/",
                modules, SERVING + ("etcd3gw", "requests"))


# -- config/ and routing/: never a socket ----------------------------------------------------
def test_importing_config_loads_no_socket_and_no_interceptor() -> None:
    modules = fresh_modules("import dakia_prefork.config, dakia_prefork.config.store")
    assert_none("config/ never loads a module of ours that does I/O", modules,
                OUR_IO + SERVING)
    assert_none("config/ never loads a socket module", modules, STDLIB_SOCKETS)
    assert_none("config/ knows the interceptors by name only (interceptors/registry.py)",
                modules, INTERCEPTOR_CODE)


def test_loading_a_config_without_interceptors_stays_light(configs: dict[str, str]) -> None:
    modules = fresh_modules(f"""
        from dakia_prefork.config import load
        config, notices = load({configs["plain"]!r})
        assert config["gateways"][0]["name"] == "edge"
        """)
    assert_none("loading a plain config loads nothing of ours that does I/O", modules,
                OUR_IO + SERVING)
    assert_none("loading a plain config loads no socket module", modules, STDLIB_SOCKETS)
    assert_none("a config without interceptors loads no interceptor code", modules,
                INTERCEPTOR_CODE)


def test_validating_every_interceptor_loads_only_their_code(configs: dict[str, str]) -> None:
    """Checking an entry imports its implementation (that is what checks are for), and
    nothing that serves."""
    modules = fresh_modules(f"""
        from dakia_prefork.config import load
        load({configs["every"]!r})
        """)
    assert "dakia_prefork.interceptors.jwt_auth" in modules
    assert_none("validating interceptors never loads what serves HTTP", modules,
                SERVING + ("dakia_prefork.master",))


def test_routing_is_pure() -> None:
    modules = fresh_modules("""
        import dakia_prefork.routing
        from dakia_prefork.routing.router import GatewayRouter

        class Subject:
            method, path, scheme, host, remote_addr = "GET", "/api/x", "http", "a.b", ""
            def header(self, name): return None
            def query(self, name): return None

        router = GatewayRouter({"name": "g", "downstreams": [{"host": "*.b"}],
                                "upstreams": [{"name": "app"}, {"name": "web"}],
                                "filters": [{"name": "api", "path": {"$starts_with": "/api"},
                                             "method": {"$in": ["GET"]}}],
                                "routers": [{"upstream": "app", "filter": "api"},
                                            {"upstream": "web"}]})
        assert router.hosts.match("a.b") is not None
        assert router.route(Subject()) == "app"
        """)
    ours = sorted(m for m in modules if m.startswith("dakia_prefork.")
                  and not m.startswith("dakia_prefork.routing"))
    assert not ours, f"routing/ imports only routing/, yet loaded: {', '.join(ours)}"
    assert_none("routing/ never loads a socket module", modules, STDLIB_SOCKETS + SERVING)


# -- interceptors: a narrow request/response interface, not the connection -------------------
def test_building_every_chain_loads_no_connection_code(tmp_path: Any) -> None:
    """What a unit test or the master does with interceptors: build the chain of every
    built-in and run a request through it (every entry is filtered out)."""
    entries = [dict(entry, enabled=True) for entry in interceptor_entries(str(tmp_path))]
    modules = fresh_modules(f"""
        from dakia_prefork.config import validate
        from dakia_prefork.interceptors import build_chain
        from dakia_prefork.message.heads import RequestHead
        from dakia_prefork.message.request import Request
        from dakia_prefork.routing.router import GatewayRouter
        config, _ = validate({{"pid_file": "/tmp/x.pid", "state_dir": "/tmp/x",
            "admin": {admin_section()!r}, "gateways": [{{
            "name": "g", "bind_addresses": [{{"unix": "/tmp/x.sock"}}],
            "upstreams": [{{"name": "a", "default": True, "upstream_nodes": [
                {{"address": {{"host": "127.0.0.1", "port": 9}}}}]}}],
            "filters": [{FILTER!r}], "interceptors": {entries!r}}}]}}, base_dir="/")
        gateway = config["gateways"][0]
        chain = build_chain(gateway, GatewayRouter(gateway).filters, "gateways[0]")
        head = RequestHead(b"GET", b"/", b"1.1", [(b"host", b"h")], None, False, True, False)
        run = chain.start(Request(head, "h", "http", "10.0.0.1"), "a")
        assert run.request_phases() is None
        """)
    assert_none("interceptors never load the connection, the parsers or a worker", modules,
                SERVING)


# -- shm/: bytes and numbers, not requests ---------------------------------------------------
SHM_MODULES = sorted(f"dakia_prefork.shm.{info.name}"
                     for info in pkgutil.iter_modules(dakia_prefork.shm.__path__))


@pytest.mark.parametrize("module", ["dakia_prefork.shm", *SHM_MODULES])
def test_shm_knows_no_requests(module: str) -> None:
    modules = fresh_modules(f"import {module}")
    assert_none(f"shm/ knows no requests ({module})", modules, (
        "dakia_prefork.message", "dakia_prefork.http", "dakia_prefork.routing",
        "dakia_prefork.interceptors", "dakia_prefork.config", "dakia_prefork.worker",
        "dakia_prefork.plugins", "gevent", "h11", "httptools"))


def test_the_shm_list_is_not_empty() -> None:
    assert "dakia_prefork.shm.buckets" in SHM_MODULES


# -- the registry: names without implementations ---------------------------------------------
def test_the_registry_imports_a_builtin_when_it_is_looked_up() -> None:
    modules = fresh_modules("""
        from dakia_prefork.interceptors import REGISTRY
        assert "cors" in REGISTRY and "try_file" in list(REGISTRY)
        assert REGISTRY["cors"].name == "cors"
        """)
    built_in = sorted(m for m in modules if m.startswith(("dakia_prefork.interceptors.",
                                                          "dakia_prefork.plugins."))
                      and m.rpartition(".")[2] in IMPLEMENTED)
    assert built_in == ["dakia_prefork.interceptors.cors"], (
        f"looking up cors imported the built-ins {', '.join(built_in)}")


def test_the_registry_is_a_leaf() -> None:
    modules = fresh_modules("import dakia_prefork.interceptors.registry")
    ours = sorted(m for m in modules if m.startswith("dakia_prefork"))
    assert ours == ["dakia_prefork", "dakia_prefork.interceptors",
                    "dakia_prefork.interceptors.registry"], (
        f"interceptors/registry.py imports nothing of ours, yet loaded: {', '.join(ours)}")
