"""The admin API through the running gateway: a real master, its admin process, real
upstreams and real HTTP clients over loopback."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import yaml

from .harness import ROOT, Gateway, free_port, node, wait_until

TOKEN = "s3cret-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Admin:
    """A client of one gateway's admin listener."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None, auth: bool = True,
                timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            sent = {**(AUTH if auth else {}), **(headers or {})}
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    response.read())
        finally:
            conn.close()

    def json(self, method: str, path: str, document: Any = None, **kwargs: Any
             ) -> tuple[int, dict[str, str], Any]:
        headers = dict(kwargs.pop("headers", {}) or {})
        body = None
        if document is not None:
            body = json.dumps(document)
            headers.setdefault("Content-Type", "application/json")
        status, got_headers, data = self.request(method, path, body, headers, **kwargs)
        return status, got_headers, json.loads(data) if data else None

    def config(self) -> tuple[dict[str, Any], int]:
        status, headers, document = self.json("GET", "/config")
        assert status == 200, document
        return document, int(headers["etag"].strip('"'))


def _get(port: int, path: str = "/") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def token_file(tmp_path) -> str:
    path = tmp_path / "admin.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return str(path)


def _admin_gateway(gateways, upstreams_specs: list[dict[str, Any]], token_file: str | None,
                   workers: int = 2, listen_host: str = "127.0.0.1",
                   start: bool = True, **kwargs: Any) -> tuple[Gateway, Admin]:
    port = free_port()
    extra = {"admin": {"listen": f"{listen_host}:{port}", "token_file": token_file},
             **kwargs.pop("extra", {})}
    gw = gateways(upstreams_specs, workers=workers, extra=extra, start=start, **kwargs)
    admin = Admin(port)
    if start:
        wait_until(lambda: _healthy(admin), 10, "the admin listener")
        # The master marks itself ready on the turn after its workers are.
        wait_until(lambda: admin.request("GET", "/ready", auth=False)[0] == 200, 10,
                   "the gateway to be ready")
    return gw, admin


def _healthy(admin: Admin) -> bool:
    try:
        return admin.request("GET", "/healthz", auth=False)[0] == 200
    except OSError:
        return False


def _two_upstreams(upstreams) -> tuple[Any, Any, list[dict[str, Any]]]:
    a, b = upstreams(name="A"), upstreams(name="B")
    specs = [{"name": "a", "default": True, "upstream_nodes": [node(a.port)]},
             {"name": "b", "upstream_nodes": [node(b.port)]}]
    return a, b, specs


def _serving_everywhere(gw: Gateway, version: int) -> bool:
    workers = [w for w in gw.workers() if w["state"] == "ready"]
    return len(workers) == gw.config["workers"] and all(
        w["config_version"] == version for w in workers)


def test_put_changes_routing_in_every_worker(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file)
    assert _get(gw.port) == (200, b"A")
    document, version = admin.config()
    assert version == 1
    # The document is the file as written: no defaults filled in, no absolute paths made.
    assert document == yaml.safe_load(open(gw.config_path))
    upstream_list = document["gateways"][0]["upstreams"]
    upstream_list[0]["default"], upstream_list[1]["default"] = False, True
    status, headers, answer = admin.json("PUT", "/config", document,
                                         headers={"If-Match": '"1"'})
    assert status == 200, answer
    assert answer["version"] == 2 and answer["previous"] == 1 and headers["etag"] == '"2"'
    # Answered once every worker serves it: both workers are on v2 already.
    assert _serving_everywhere(gw, 2), gw.workers()
    answers = {_get(gw.port) for _ in range(20)}
    assert answers == {(200, b"B")}
    assert admin.config()[1] == 2
    log = gw.log_text()
    assert "PUT /config: v1 -> v2" in log and "127.0.0.1:" in log


def test_an_invalid_put_changes_nothing_and_lists_check_errors(gateways, upstreams,
                                                               token_file, tmp_path):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file)
    document, _ = admin.config()
    document["gateways"][0]["routers"] = [{"upstream": "nowhere"}]
    document["workers"] = "many"
    status, _h, answer = admin.json("PUT", "/config", document)
    assert status == 422
    # The same list `dakia-master check` prints for the same document in a file.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    check = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "check", "-c", str(bad)],
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert check.returncode != 0
    for error in answer["errors"]:
        assert error in check.stderr
    assert any("workers" in e for e in answer["errors"])
    assert any("nowhere" in e for e in answer["errors"])
    assert admin.config()[1] == 1
    assert _get(gw.port) == (200, b"A")
    assert _serving_everywhere(gw, 1)


def test_a_stale_if_match_gets_409(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    document, _ = admin.config()
    document["graceful_timeout"] = 11
    assert admin.json("PUT", "/config", document, headers={"If-Match": '"1"'})[0] == 200
    document["graceful_timeout"] = 12
    status, headers, answer = admin.json("PUT", "/config", document,
                                         headers={"If-Match": '"1"'})
    assert (status, answer["current"], headers["etag"]) == (409, 2, '"2"')
    status, _h, answer = admin.json("PATCH", "/config", {"graceful_timeout": 13},
                                    headers={"If-Match": '"1"',
                                             "Content-Type": "application/merge-patch+json"})
    assert status == 409
    assert admin.config()[0]["graceful_timeout"] == 11


def test_no_token_or_a_wrong_one_gets_401_without_detail(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        for method, path in (("GET", "/config"), ("PUT", "/config"), ("GET", "/status"),
                             ("POST", "/config/rollback/1")):
            status, got, body = admin.request(method, path, b"{}", headers, auth=False)
            assert status == 401, (method, path, headers)
            assert json.loads(body) == {"error": "unauthorized"}
            assert got["www-authenticate"].startswith("Bearer")
    # Probes tell only up or down, without a token.
    assert admin.request("GET", "/healthz", auth=False)[0] == 200
    assert admin.request("GET", "/ready", auth=False)[0] == 200
    assert admin.config()[1] == 1


def test_patch_persist_writes_the_file_in_its_format_without_secrets(
        gateways, upstreams, token_file, monkeypatch):
    monkeypatch.setenv("DAKIA_TEST_HOST", "127.0.0.1")
    _a, _b, specs = _two_upstreams(upstreams)
    specs[0]["upstream_nodes"][0]["address"]["host"] = "${DAKIA_TEST_HOST}"
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1, start=False)
    gw.start()
    wait_until(lambda: _healthy(admin), 10, "the admin listener")
    document, _ = admin.config()
    secret = document["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["address"]["host"]
    assert secret == "${DAKIA_TEST_HOST}"
    os.chmod(gw.config_path, 0o640)
    status, _h, answer = admin.json(
        "PATCH", "/config?persist=true",
        {"gateways": document["gateways"][:0] + [
            {**document["gateways"][0], "routers": [{"upstream": "b"}]}]},
        headers={"Content-Type": "application/merge-patch+json"})
    assert status == 200, answer
    assert answer["version"] == 2 and "persist_error" not in answer
    text = open(gw.config_path).read()
    on_disk = yaml.safe_load(text)
    assert on_disk["gateways"][0]["routers"] == [{"upstream": "b"}]
    on_disk_host = on_disk["gateways"][0]["upstreams"][0]["upstream_nodes"][0]["address"]
    assert on_disk_host["host"] == "${DAKIA_TEST_HOST}"        # not the value it stood for
    assert not text.lstrip().startswith("{")                       # YAML, as it was
    assert os.stat(gw.config_path).st_mode & 0o777 == 0o640     # the file's mode is kept
    assert [n for n in os.listdir(os.path.dirname(gw.config_path)) if n.endswith(".new")] == []
    assert _get(gw.port) == (200, b"B")
    # The file and the running config agree: a HUP changes nothing.
    assert gw.cli("reload").returncode == 0
    assert _get(gw.port) == (200, b"B")


def test_rollback_republishes_an_old_version_as_a_new_one(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    status, _h, answer = admin.json("PATCH", "/config",
                                    {"gateways": [{**admin.config()[0]["gateways"][0],
                                                   "routers": [{"upstream": "b"}]}]},
                                    headers={"Content-Type": "application/merge-patch+json"})
    assert status == 200 and _get(gw.port) == (200, b"B")
    status, _h, versions = admin.json("GET", "/config/versions")
    assert versions == {"current": 2, "versions": [1, 2]}
    status, _h, answer = admin.json("POST", "/config/rollback/1")
    assert (status, answer["version"]) == (200, 3), answer
    assert _get(gw.port) == (200, b"A")
    assert admin.json("GET", "/config/versions/1")[2] == admin.config()[0]
    assert admin.json("POST", "/config/rollback/99")[0] == 404


def test_validate_is_a_dry_run(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    document, _ = admin.config()
    status, _h, answer = admin.json("POST", "/config/validate", document)
    assert (status, answer["valid"]) == (200, True)
    document["gateways"][0]["routers"] = [{"upstream": "nowhere"}]
    status, _h, answer = admin.json("POST", "/config/validate", document)
    assert (status, answer["valid"]) == (422, False) and answer["errors"]
    assert admin.config()[1] == 1


def test_yaml_in_and_out(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    status, headers, body = admin.request("GET", "/config",
                                          headers={"Accept": "application/yaml"})
    assert status == 200 and headers["content-type"] == "application/yaml"
    document = yaml.safe_load(body)
    document["gateways"][0]["routers"] = [{"upstream": "b"}]
    status, _h, body = admin.request("PUT", "/config", yaml.safe_dump(document),
                                     headers={"Content-Type": "application/yaml"})
    assert status == 200, body
    assert _get(gw.port) == (200, b"B")


def test_an_alias_bomb_is_refused_in_bounded_time(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    bomb = "\n".join(lines) + "\ngateways: *a9\n"
    started = time.monotonic()
    status, _h, body = admin.request("PUT", "/config", bomb,
                                     headers={"Content-Type": "application/yaml"})
    assert time.monotonic() - started < 5
    assert status == 422, body
    assert b"once aliases are expanded" in body
    assert admin.config()[1] == 1 and _get(gw.port) == (200, b"A")


def test_concurrent_patches_never_lose_one(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    results: list[int] = []

    def patch(value: int) -> None:
        status, _h, answer = admin.json(
            "PATCH", "/config", {"graceful_timeout": value},
            headers={"Content-Type": "application/merge-patch+json"})
        results.append(status)

    threads = [threading.Thread(target=patch, args=(v,)) for v in range(20, 26)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * 6
    status, _h, versions = admin.json("GET", "/config/versions")
    assert versions["current"] == 7


def test_status_and_ready(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=2)
    wait_until(lambda: admin.request("GET", "/ready", auth=False)[0] == 200, 5, "ready")
    status, _h, report = admin.json("GET", "/status")
    assert status == 200
    assert report["master"]["pid"] == gw.master_pid
    assert report["master"]["config_version"] == 1 and report["master"]["ready"] is True
    assert sorted(w["slot"] for w in report["workers"]) == [0, 1]
    assert admin.json("GET", "/ready", auth=False)[2] == {"ready": True}


def test_the_master_refuses_a_network_admin_listener_without_a_token(gateways, upstreams,
                                                                     monkeypatch):
    monkeypatch.delenv("DAKIA_ADMIN_TOKEN", raising=False)
    _a, _b, specs = _two_upstreams(upstreams)
    gw, _admin = _admin_gateway(gateways, specs, None, workers=1, listen_host="0.0.0.0",
                                start=False)
    gw.write_config()
    started = gw.cli("start", timeout=30)
    assert started.returncode != 0
    assert "admin.listen" in started.stderr and "token" in started.stderr
    check = gw.cli("check")
    assert "admin.listen" in check.stderr


def test_a_token_from_the_environment(gateways, upstreams, monkeypatch):
    monkeypatch.setenv("DAKIA_ADMIN_TOKEN", TOKEN)
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, None, workers=1)
    assert admin.request("GET", "/config", auth=False)[0] == 401
    assert admin.config()[1] == 1


def test_a_killed_admin_process_is_respawned_and_its_leftovers_removed(gateways, upstreams, token_file):
    import signal
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    report = admin.json("GET", "/status")[2]
    before = {w["pid"] for w in report["workers"]}
    admin_pid = _admin_pid(gw)
    assert admin_pid is not None
    from .test_process_titles import title
    assert wait_until(lambda: title(admin_pid) == "dakia admin", 5, "the admin title")
    # What a process killed in the middle of a change leaves: its candidate document.
    stale = os.path.join(gw.config["state_dir"], "admin", f"candidate-{admin_pid}-1.json")
    os.makedirs(os.path.dirname(stale), exist_ok=True)
    with open(stale, "w") as f:
        f.write("{}")
    os.kill(admin_pid, signal.SIGKILL)
    wait_until(lambda: _admin_pid(gw) not in (None, admin_pid), 10, "a new admin process")
    wait_until(lambda: _healthy(admin), 10, "the admin listener again")
    assert not os.path.exists(stale)
    assert admin.config()[1] == 1
    assert {w["pid"] for w in admin.json("GET", "/status")[2]["workers"]} == before


def _admin_pid(gw: Gateway) -> int | None:
    """The master's child that listens on the admin address (not a worker)."""
    from .test_process_titles import children
    workers = {w["pid"] for w in gw.workers()}
    for pid in children(gw.master_pid) - workers:
        if _listens_on_admin(pid, gw):
            return pid
    return None


def _listens_on_admin(pid: int, gw: Gateway) -> bool:
    port = int(gw.config["admin"]["listen"].rsplit(":", 1)[1])
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A" \
                    and fields[9] in inodes:
                return True
    return False


def test_a_reload_moves_removes_and_adds_the_admin_listener(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    moved = Admin(free_port())
    gw.config["admin"]["listen"] = f"127.0.0.1:{moved.port}"
    gw.write_config()
    reload = gw.cli("reload")
    assert reload.returncode == 0, reload.stderr
    wait_until(lambda: _healthy(moved), 10, "the admin API on its new address")
    wait_until(lambda: not _healthy(admin), 10, "the old admin address to close")
    assert moved.config()[1] == 2
    gw.config["admin"] = None
    gw.write_config()
    assert gw.cli("reload").returncode == 0
    wait_until(lambda: not _healthy(moved), 10, "the admin API to stop")
    wait_until(lambda: _admin_pid(gw) is None, 10, "the admin process to exit")
    gw.config["admin"] = {"listen": f"127.0.0.1:{admin.port}", "token_file": token_file}
    gw.write_config()
    assert gw.cli("reload").returncode == 0
    wait_until(lambda: _healthy(admin), 10, "the admin API back")
    assert admin.config()[1] == 4


def test_a_reload_that_cannot_bind_the_new_admin_address_changes_nothing(
        gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        gw.config["admin"]["listen"] = f"127.0.0.1:{taken.getsockname()[1]}"
        gw.write_config()
        reload = gw.cli("reload")
        assert reload.returncode == 1
        assert "admin.listen: cannot listen" in reload.stdout + reload.stderr
        assert admin.config()[1] == 1
    finally:
        taken.close()


def test_a_change_that_removes_the_token_off_loopback_is_refused(gateways, upstreams,
                                                                 token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    status, _h, answer = admin.json(
        "PATCH", "/config", {"admin": {"listen": f"0.0.0.0:{free_port()}", "token_file": None}},
        headers={"Content-Type": "application/merge-patch+json"})
    assert status == 422
    assert any(e.startswith("admin.listen:") for e in answer["errors"]), answer
    assert admin.config()[1] == 1


def test_a_binary_upgrade_hands_the_admin_listener_over(gateways, upstreams, token_file):
    from dakia_prefork.master import pidfile
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    old = gw.master_pid
    answers: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                answers.append(admin.request("GET", "/healthz", auth=False, timeout=5)[0])
            except OSError as exc:
                answers.append(-1)
                print("admin request failed:", exc)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        result = gw.cli("upgrade", timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr
        assert gw.process.wait(10) == 0
    finally:
        stop.set()
        thread.join(10)
    new = pidfile.read(gw.config["pid_file"])
    assert new not in (None, old)
    # Never refused during the hand-over: the socket itself was inherited.
    assert answers and set(answers) == {200}, sorted(set(answers))
    status, _h, report = admin.json("GET", "/status")
    assert report["master"]["pid"] == new
    assert gw.cli("stop").returncode == 0


def test_the_controller_interceptor_serves_the_api_on_a_gateway_route(gateways, upstreams,
                                                                      token_file, engine):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=2, engine=engine, gateway={
        "filters": [{"name": "controller", "path": {"$starts_with": "/controller"}}],
        "interceptors": [{"name": "controller", "filter": "controller",
                          "config": {"strip_prefix": "/controller"}}]})
    through = Admin(gw.port)
    assert through.request("GET", "/controller/config", auth=False)[0] == 401
    document, version = admin.config()
    status, headers, body = through.request("GET", "/controller/config")
    assert (status, json.loads(body), headers["etag"]) == (200, document, f'"{version}"')
    document["gateways"][0]["routers"] = [{"upstream": "b"}]
    status, _h, answer = through.json("PUT", "/controller/config", document)
    assert (status, answer["version"]) == (200, 2), answer
    # The controller's own route still reaches the API; everything else goes to b now.
    assert _get(gw.port, "/anything") == (200, b"B")
    assert through.json("GET", "/controller/config/versions")[2] == {"current": 2,
                                                                     "versions": [1, 2]}
    assert "PUT /config: v1 -> v2" in gw.log_text()
    assert " for 127.0.0.1" in gw.log_text()          # the client the gateway saw
    status, _h, answer = through.json("PUT", "/controller/config",
                                      {**document, "workers": "many"})
    assert status == 422 and admin.config()[1] == 2


def test_a_hup_reports_its_own_verdict_not_an_admin_change(gateways, upstreams, token_file):
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1)
    reload = gw.cli("reload")
    assert reload.returncode == 0 and "serves config v2" in reload.stdout, reload.stdout
    status, _h, answer = admin.json("PATCH", "/config", {"graceful_timeout": 7},
                                    headers={"Content-Type": "application/merge-patch+json"})
    assert (status, answer["version"]) == (200, 3)
    reload = gw.cli("reload")
    assert reload.returncode == 0 and "serves config v4" in reload.stdout, reload.stdout
    # The HUP read the file again: the PATCH, not persisted, is gone from the running config.
    assert admin.config()[0].get("graceful_timeout") == gw.config["graceful_timeout"]
    status, _h, report = admin.json("GET", "/status")
    assert report["master"]["reloads"] == {"ok": 3, "failed": 0}
    assert report["last_reload"]["origin"] == "HUP"


def test_metrics_on_the_admin_listener_count_exactly(gateways, upstreams, token_file):
    from prometheus_client.parser import text_string_to_metric_families
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=2)
    n = 30
    assert {_get(gw.port) for _ in range(n)} == {(200, b"A")}
    wait_until(lambda: sum(w["requests"] for w in gw.workers()) == n, 10,
               "the workers to report their requests")
    assert all(w["requests"] > 0 for w in gw.workers()), gw.workers()
    assert admin.request("GET", "/metrics", auth=False)[0] == 401
    status, headers, body = admin.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode())
               for s in family.samples}
    requests_total = sum(v for (name, _l), v in samples.items()
                         if name == "dakia_requests_total")
    assert requests_total == n
    assert samples[("dakia_requests_total", (("gateway", "test"), ("route", "default"),
                                             ("status_class", "2xx"),
                                             ("upstream", "a")))] == n
    assert samples[("dakia_config_version", ())] == 1
    # A change over the API is a reload for the counters, and its version is exposed.
    assert admin.json("PATCH", "/config", {"graceful_timeout": 5}, headers={
        "Content-Type": "application/merge-patch+json"})[0] == 200
    body = admin.request("GET", "/metrics")[2].decode()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(body) for s in family.samples}
    assert got[("dakia_config_version", ())] == 2
    assert got[("dakia_reloads_total", (("result", "ok"),))] == 1


def test_the_admin_process_reopens_the_error_log_on_usr1_and_follows_a_reload(
        gateways, upstreams, token_file, tmp_path):
    import signal
    error_log = str(tmp_path / "error.log")
    _a, _b, specs = _two_upstreams(upstreams)
    gw, admin = _admin_gateway(gateways, specs, token_file, workers=1,
                               extra={"error_log": error_log})

    def audit_in(path: str, version: int) -> bool:
        try:
            with open(path) as f:
                return f"-> v{version}" in f.read()
        except FileNotFoundError:
            return False

    patch = {"Content-Type": "application/merge-patch+json"}
    rotated = error_log + ".1"
    os.rename(error_log, rotated)            # what logrotate does before its postrotate
    gw.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(error_log), 5, "the master to reopen the error log")
    # A change's audit line is written by the admin process: it must land in the new file.
    # (USR1 reaches it a moment after the master: patch until one lands there.)
    versions = iter(range(2, 40))

    def audited_anew() -> bool:
        version = next(versions)
        assert admin.json("PATCH", "/config", {"graceful_timeout": version}, headers=patch)[2][
            "version"] == version
        return audit_in(error_log, version)
    wait_until(audited_anew, 10, "an audit line in the reopened error log", interval=0.1)
    size = os.path.getsize(rotated)
    # A reload that moves the error log: the admin process follows it too.
    moved = str(tmp_path / "moved.log")
    status, _h, answer = admin.json("PATCH", "/config", {"error_log": moved}, headers=patch)
    assert status == 200, answer
    wait_until(lambda: os.path.exists(moved), 5, "the new error log")
    version = answer["version"]

    def audited_in_moved() -> bool:
        nonlocal version
        version += 1
        admin.json("PATCH", "/config", {"graceful_timeout": version}, headers=patch)
        return audit_in(moved, version)
    wait_until(audited_in_moved, 10, "an audit line in the moved error log", interval=0.2)
    assert os.path.getsize(rotated) == size
