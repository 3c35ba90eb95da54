"""Plugins through a running gateway: a Python interceptor (class path and entry point), the
Perl external plugin over its unix socket, the C library through ctypes, and the failure
policies when a plugin is gone or slow."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from .harness import ROOT, node, wait_until

PLUGINS = os.path.join(ROOT, "tools", "plugins")
PERL_PLUGIN = os.path.join(PLUGINS, "perl", "dakia-plugin.pl")
PYTHON_PLUGIN = os.path.join(PLUGINS, "python")
C_PLUGIN = os.path.join(PLUGINS, "c", "example.c")


class PerlPlugin:
    """The example Perl plugin as a real process on a unix socket."""

    def __init__(self, path: str, *args: str) -> None:
        self.path = path
        self.args = args
        self.process: subprocess.Popen | None = None

    def start(self) -> "PerlPlugin":
        self.process = subprocess.Popen(["perl", PERL_PLUGIN, self.path, *self.args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self._accepts, 10, "the Perl plugin to listen")
        return self

    def _accepts(self) -> bool:
        assert self.process is not None and self.process.poll() is None, \
            self.process.stderr.read() if self.process and self.process.stderr else ""
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(self.path)
            except OSError:
                return False
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)


@pytest.fixture
def perl_plugin(tmp_path):
    made: list[PerlPlugin] = []

    def make(*args: str) -> PerlPlugin:
        plugin = PerlPlugin(str(tmp_path / f"plugin{len(made)}.sock"), *args)
        made.append(plugin)
        return plugin.start()

    yield make
    for plugin in made:
        plugin.kill()


def external(plugin: PerlPlugin, **config) -> dict:
    return {"name": "external_plugin", "config": {
        "socket": plugin.path, "phases": ["request_filter", "post_upstream_response"],
        **config}}


def test_perl_plugin_answers_rewrites_and_tags(engine, perl_plugin, upstreams, gateways):
    plugin = perl_plugin()
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  gateway={"interceptors": [external(plugin)]})
    r = requests.get(gw.url + "/anything", headers={"X-Block": "1"}, timeout=5)
    assert (r.status_code, r.text) == (403, "403 Forbidden by the Perl plugin\n")
    assert up.received == []
    for _ in range(3):                        # connections are pooled and reused
        r = requests.get(gw.url + "/legacy/a?x=1", timeout=5)
        assert r.status_code == 200 and r.headers["x-perl-plugin-response"] == "200"
        assert up.received[-1].target == "/v2/a?x=1"
        assert up.received[-1].header("x-perl-plugin") == "seen"


def two_policies(plugin: PerlPlugin, upstreams, gateways, **config):
    """/deny/... through a plugin that fails closed, /allow/... through one failing open."""
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "filters": [{"name": "deny", "path": {"$starts_with": "/deny"}},
                    {"name": "allow", "path": {"$starts_with": "/allow"}}],
        "interceptors": [
            {**external(plugin, on_failure="deny", **config), "filter": "deny"},
            {**external(plugin, on_failure="allow", **config), "filter": "allow"}]})
    return up, gw


def test_plugin_killed_then_restarted(perl_plugin, upstreams, gateways):
    plugin = perl_plugin()
    up, gw = two_policies(plugin, upstreams, gateways)
    assert requests.get(gw.url + "/deny/a", timeout=5).headers["x-perl-plugin-response"] == "200"
    plugin.kill()
    r = requests.get(gw.url + "/deny/a", timeout=5)
    assert r.status_code == 503 and r.text == "503 Service Unavailable: a plugin failed\n"
    r = requests.get(gw.url + "/allow/a", timeout=5)
    assert (r.status_code, r.text) == (200, "app") and "x-perl-plugin-response" not in r.headers
    assert up.received[-1].header("x-perl-plugin") is None
    plugin.start()                            # back: the gateway reconnects on its own
    r = requests.get(gw.url + "/deny/b", timeout=5)
    assert r.status_code == 200 and up.received[-1].header("x-perl-plugin") == "seen"
    assert "plugin external_plugin" in open(gw.log_path).read()


def test_slow_plugin_times_out(perl_plugin, upstreams, gateways):
    plugin = perl_plugin("--delay", "1.5")
    up, gw = two_policies(plugin, upstreams, gateways, timeout=0.3)
    for path, status in (("/deny/slow", 503), ("/allow/slow", 200)):
        started = time.monotonic()
        r = requests.get(gw.url + path, timeout=10)
        assert r.status_code == status and time.monotonic() - started < 1.2, path
    assert [x.target for x in up.received] == ["/allow/slow"]


def test_python_plugin_from_a_class_path(engine, upstreams, gateways, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", PYTHON_PLUGIN)
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "tenants", "class": "dakia_example_plugin:TenantHeader",
                          "config": {"tenants": ["acme"]}}]})
    assert requests.get(gw.url + "/", timeout=5).status_code == 400
    assert requests.get(gw.url + "/", headers={"X-Tenant": "evil"}, timeout=5).status_code == 403
    r = requests.get(gw.url + "/", headers={"X-Tenant": "acme"}, timeout=5)
    assert r.status_code == 200 and r.headers["x-served-tenant"] == "acme"
    assert up.received[-1].header("x-tenant-id") == "acme"


def install(site, module_dir: str, dist: str, entry_points: str) -> None:
    """What pip leaves behind for a package: the module and a .dist-info with its entry
    points (pip itself would need a wheel build backend and the network)."""
    for name in os.listdir(module_dir):
        if name.endswith(".py"):
            shutil.copy(os.path.join(module_dir, name), site)
    info = site / f"{dist}-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_python_plugin_from_an_entry_point(upstreams, gateways, monkeypatch, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, PYTHON_PLUGIN, "dakia_example_plugin",
            "[dakia_prefork.interceptors]\nexample_tenant = dakia_example_plugin:TenantHeader\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "interceptors": [{"name": "example_tenant",
                          "config": {"tenants": ["acme"], "header": "X-Org"}}]})
    r = requests.get(gw.url + "/", headers={"X-Org": "acme"}, timeout=5)
    assert r.status_code == 200 and up.received[-1].header("x-tenant-id") == "acme"
    assert requests.get(gw.url + "/", headers={"X-Tenant": "acme"}, timeout=5).status_code == 400


def test_plugin_config_errors_have_paths(upstreams, gateways, monkeypatch, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, PYTHON_PLUGIN, "dakia_example_plugin",
            "[dakia_prefork.interceptors]\nexample_tenant = dakia_example_plugin:TenantHeader\n"
            "broken = no_such_module:Thing\n")
    (site / "not_an_interceptor.py").write_text("class Thing:\n    pass\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    up = upstreams(name="app")

    def check(*interceptors) -> str:
        gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False,
                      gateway={"interceptors": list(interceptors)})
        gw.write_config()
        done = gw.cli("check")
        assert done.returncode == 1
        return done.stderr

    errors = check(
        {"name": "example_tenant", "config": {"tenants": ["Not Valid"], "extra": 1}},
        {"name": "t", "class": "nowhere.at_all:Thing"},
        {"name": "t2", "class": "not_an_interceptor:Thing"},
        {"name": "broken"},
        {"name": "nobody_declares_this"},
        {"name": "server_version", "class": "dakia_example_plugin:TenantHeader"},
        {"name": "external_plugin", "config": {"socket": "x" * 120}},
        {"name": "native_plugin", "config": {"library": str(tmp_path / "none.so")}})
    p = "gateways[0].interceptors"
    for line in (
        f"{p}[0].config.extra: unknown key",
        f"{p}[0].config.tenants[0]: 'Not Valid' does not match",
        f"{p}[1].class: cannot import 'nowhere.at_all': ModuleNotFoundError",
        f"{p}[2].class: not_an_interceptor:Thing is not a subclass of "
        "dakia_prefork.interceptors.Interceptor",
        f"{p}[3].name: the entry point broken = no_such_module:Thing cannot be loaded",
        f"{p}[4].name: unknown interceptor 'nobody_declares_this'",
        f"{p}[5].name: 'server_version' is a built-in interceptor",
        f"{p}[6].config.socket: longer than a unix socket path may be",
        f"{p}[7].config.library: no such file",
    ):
        assert line in errors, (line, errors)
    assert f"{p}[0].class: 'module:Class'" in check({"name": "t", "class": "not a path"})


@pytest.fixture(scope="module")
def c_library(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("c") / "example.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", out, C_PLUGIN],
                   check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.parametrize("run", ["inline", "thread"])
def test_c_plugin(run, c_library, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "filters": [{"name": "open", "path": {"$starts_with": "/c-error/open"}}],
        "interceptors": [
            {"name": "native_plugin", "filter": "open",
             "config": {"library": c_library, "run": run, "on_failure": "allow"}},
            {"name": "native_plugin", "config": {"library": c_library, "run": run}}]})
    r = requests.get(gw.url + "/private/x", timeout=5)
    assert (r.status_code, r.text) == (403, "403 Forbidden by the C plugin\n")
    assert up.received == []
    r = requests.get(gw.url + "/private/x", headers={"X-Pass": "1"}, timeout=5)
    assert r.status_code == 200 and up.received[-1].header("x-c-plugin") == "GET 10"
    r = requests.post(gw.url + "/hello?a=b", data=b"x", timeout=5)
    assert r.status_code == 200 and up.received[-1].header("x-c-plugin") == "POST 10"
    assert requests.get(gw.url + "/c-error", timeout=5).status_code == 503       # deny
    r = requests.get(gw.url + "/c-error/open", timeout=5)
    assert r.status_code == 503              # allowed by the first, denied by the second
    assert up.received[-1].target == "/hello?a=b"


def test_native_check_reports_a_missing_symbol(c_library, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False, gateway={
        "interceptors": [{"name": "native_plugin",
                          "config": {"library": c_library, "symbol": "no_such_function"}}]})
    gw.write_config()
    done = gw.cli("check")
    assert done.returncode == 1
    assert ("gateways[0].interceptors[0].config.library: cannot be loaded: AttributeError: "
            in done.stderr), done.stderr
    assert "undefined symbol: no_such_function" in done.stderr
