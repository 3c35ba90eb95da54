"""A reload that fails fails alone: against the real master, each fault of issue 9 point 8.

Disk full (a tiny tmpfs as state_dir), a read-only file system (a read-only bind mount),
permission denied (a directory the master may not write; as root, the master runs without
CAP_DAC_OVERRIDE so that permissions apply to it), a 100,000-deep nesting, a 50 MB file, a
load that outlives ``config_load.timeout`` and one that needs more than
``config_load.max_memory_bytes``. Each time: the master lives, keeps its version, reports
the failure (``dakia-master reload``, the control block), its workers keep serving; and the
next good reload works. The mounts need root, which CI has.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterator

import pytest
import requests

from dakia_prefork.shm.control import ControlBlock
from dakia_prefork.shm.segment import Segment, segment_name

from .harness import ROOT, Gateway, node, wait_until

pytestmark = pytest.mark.timeout(180)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests mount file systems: run them as root (CI does)")


def last_reload(gw: Gateway) -> dict[str, Any] | None:
    segment = Segment(segment_name(gw.config["state_dir"], gw.master_pid, "control"), 0,
                      create=False)
    try:
        return ControlBlock(segment).last_reload()
    finally:
        segment.close()


def hup_and_wait(gw: Gateway, timeout: float = 30.0) -> dict[str, Any]:
    """HUP the master directly (not through the CLI, which refuses a bad file itself)."""
    before = (last_reload(gw) or {}).get("at", 0)
    gw.signal(signal.SIGHUP)
    return wait_until(lambda: _newer(last_reload(gw), before), timeout,
                      f"the master's reload verdict (log: {gw.log_text()})")


def _newer(result: dict[str, Any] | None, before: float) -> dict[str, Any] | None:
    return result if result is not None and result["at"] > before else None


def assert_still_serving(gw: Gateway, version: int) -> None:
    assert gw.process is not None and gw.process.poll() is None, gw.log_text()
    workers = gw.workers()
    assert workers and all(w["state"] == "ready" and w["config_version"] == version
                           for w in workers), workers
    assert gw.status()["master"]["config_version"] == version
    for _ in range(4):
        response = requests.get(gw.url + "/", timeout=5)
        assert response.status_code == 200 and response.text == "app"


def reload_cli(gw: Gateway) -> subprocess.CompletedProcess:
    return gw.cli("reload", timeout=90)


def touch_config(gw: Gateway) -> None:
    """A real change, so the reload has a new version to write."""
    gw.config["graceful_timeout"] = gw.config.get("graceful_timeout", 10) + 1
    gw.write_config()


@pytest.fixture
def serving(upstreams: Callable[..., Any],
            gateways: Callable[..., Gateway]) -> Callable[..., Gateway]:
    def make(**kwargs: Any) -> Gateway:
        up = upstreams(name="app")
        return gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], workers=2,
                        **kwargs)
    return make


@contextlib.contextmanager
def mounted(args: list[str], target: str) -> Iterator[None]:
    subprocess.run(["mount", *args, target], check=True, capture_output=True, timeout=10)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=10)


# -- state_dir faults ---------------------------------------------------------------------
def test_disk_full_in_state_dir_fails_that_reload_alone(serving, gateways, tmp_path):
    _require_root()
    gw: Gateway = serving(start=False)
    state_dir = gw.config["state_dir"]
    os.makedirs(state_dir)
    with mounted(["-t", "tmpfs", "-o", "size=2m", "tmpfs"], state_dir):
        gw.start()
        # Fill the file system to the last byte.
        fd = os.open(os.path.join(state_dir, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError) as full:
                while True:
                    os.write(fd, b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
        finally:
            os.close(fd)
        touch_config(gw)
        result = reload_cli(gw)
        assert result.returncode == 1, result.stdout
        assert "No space left on device" in result.stderr
        assert "keeps serving config v1" in result.stderr
        assert "Traceback" not in gw.log_text()
        assert_still_serving(gw, 1)
        verdict = last_reload(gw)
        assert verdict is not None and verdict["ok"] is False and verdict["version"] == 1
        # No half-written temp file is left to fill the disk further.
        assert not [n for n in os.listdir(os.path.join(state_dir, "config"))
                    if n.endswith(".tmp")]
        os.unlink(os.path.join(state_dir, "filler"))
        result = reload_cli(gw)
        assert result.returncode == 0, result.stderr
        assert "serves config v2" in result.stdout
        wait_until(lambda: all(w["config_version"] == 2 for w in gw.workers()), 10,
                   "the workers to take v2")
        gw.stop()


def test_read_only_state_dir_fails_that_reload_alone(serving):
    _require_root()
    gw: Gateway = serving()
    state_dir = gw.config["state_dir"]
    with mounted(["--bind", state_dir], state_dir):
        subprocess.run(["mount", "-o", "remount,bind,ro", state_dir], check=True,
                       capture_output=True, timeout=10)
        touch_config(gw)
        result = reload_cli(gw)
        assert result.returncode == 1, result.stdout
        assert "Read-only file system" in result.stderr
        assert_still_serving(gw, 1)
        assert "Traceback" not in gw.log_text()
        # Again, by a bare HUP: still one verdict, still v1.
        verdict = hup_and_wait(gw)
        assert verdict["ok"] is False and "Read-only file system" in verdict["errors"][0]
        assert_still_serving(gw, 1)
    result = reload_cli(gw)
    assert result.returncode == 0, result.stderr


def test_permission_denied_in_state_dir_fails_that_reload_alone(serving):
    prefix = []
    if os.geteuid() == 0:
        # Root ignores file permissions through CAP_DAC_OVERRIDE: run the master without
        # it (and without CAP_DAC_READ_SEARCH), so a mode bit stops it as it stops anyone.
        prefix = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                  "--bounding-set=-dac_override,-dac_read_search", "--"]
    gw: Gateway = serving(start=False)
    gw.command_prefix = prefix
    gw.start()
    config_dir = os.path.join(gw.config["state_dir"], "config")
    os.chmod(config_dir, 0o500)
    os.chmod(gw.config["state_dir"], 0o500)
    try:
        touch_config(gw)
        result = reload_cli(gw)
        assert result.returncode == 1, result.stdout
        assert "Permission denied" in result.stderr
        assert_still_serving(gw, 1)
        assert "Traceback" not in gw.log_text()
    finally:
        os.chmod(config_dir, 0o700)
        os.chmod(gw.config["state_dir"], 0o700)
    result = reload_cli(gw)
    assert result.returncode == 0, result.stderr


def test_a_store_path_taken_by_a_file_fails_that_reload_alone(serving):
    gw: Gateway = serving()
    store = os.path.join(gw.config["state_dir"], "config")
    os.rename(store, store + ".moved")
    with open(store, "w") as f:
        f.write("not a directory")
    try:
        touch_config(gw)
        result = reload_cli(gw)
        assert result.returncode == 1, result.stdout
        assert "state_dir: cannot write the new version" in result.stderr
        assert_still_serving(gw, 1)
        # `status` shows the refused reload too (from the control block).
        text = gw.cli("status")
        assert text.returncode == 0
        assert "last reload" in text.stdout and "refused: state_dir: cannot write" in text.stdout
        report = json.loads(gw.cli("status", "--json").stdout)
        assert report["last_reload"]["ok"] is False and report["last_reload"]["version"] == 1
    finally:
        os.unlink(store)
        os.rename(store + ".moved", store)
    assert reload_cli(gw).returncode == 0
    assert "ok: config v2" in gw.cli("status").stdout


# -- hostile files ------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "workers: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "gateways:\n" + "".join("  " * i + "- k:\n" for i in range(1, 2000)),
])
def test_deep_nesting_fails_that_reload_alone(serving, text):
    gw: Gateway = serving()
    with open(gw.config_path, "w") as f:
        f.write(text)
    result = reload_cli(gw)          # the CLI checks the file first: a located error
    assert result.returncode == 1
    assert "nested deeper than 64 levels" in result.stderr and "line " in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 3
    verdict = hup_and_wait(gw, timeout=15)   # and the master, sent HUP directly
    assert verdict["ok"] is False and "nested deeper than 64 levels" in verdict["errors"][0]
    assert_still_serving(gw, 1)
    assert "RecursionError" not in gw.log_text() and "Traceback" not in gw.log_text()


@pytest.mark.parametrize("text", [
    "workers: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 10) + "]\n"
        for i in range(1, 9)),
])
def test_start_refuses_a_hostile_file_with_one_located_line(serving, text):
    gw: Gateway = serving(start=False)
    gw.write_config()
    with open(gw.config_path, "w") as f:
        f.write(text)
    done = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "start", "-c",
                           gw.config_path], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "RecursionError" not in done.stderr
    assert f"{gw.config_path}: line " in done.stderr
    assert len(done.stderr.splitlines()) == 2, done.stderr      # the error, "not started"


@pytest.mark.parametrize("size", [50 * 1024 * 1024, 9 * 1024 * 1024])
def test_an_oversized_file_fails_that_reload_alone_at_once(serving, size):
    gw: Gateway = serving()
    with open(gw.config_path, "ab") as f:
        f.write(b"\n# " + b"x" * (size - f.tell() - 4) + b"\n")
    started = time.monotonic()
    verdict = hup_and_wait(gw, timeout=15)
    assert time.monotonic() - started < 10
    assert verdict["ok"] is False
    assert verdict["errors"] == [f"{gw.config_path}: the file is larger than 8 MiB; a config "
                                 "file may have at most that"]
    assert_still_serving(gw, 1)
    result = reload_cli(gw)
    assert result.returncode == 1 and "larger than 8 MiB" in result.stderr


def test_billion_laughs_fails_that_reload_alone(serving):
    gw: Gateway = serving()
    lines = ["x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with open(gw.config_path, "a") as f:
        f.write("\n".join(lines) + "\n")
    verdict = hup_and_wait(gw, timeout=15)
    assert verdict["ok"] is False and "once aliases are expanded" in verdict["errors"][0]
    assert_still_serving(gw, 1)


# -- the loader's own bounds: the master supervises while it loads -------------------------
def _slow_file(path: str, config_text: str) -> None:
    """A file within every bound that takes pure-Python YAML many seconds to parse."""
    with open(path, "w") as f:
        f.write(config_text + "\npadding: [" + ", ".join(["1"] * 900_000) + "]\n")


def test_a_slow_load_is_killed_at_the_timeout_and_the_master_supervises_meanwhile(serving):
    # 6 s: the slow file takes pure-Python YAML far longer than that (about 30 s here).
    gw: Gateway = serving(extra={"config_load": {"timeout": 6}})
    with open(gw.config_path) as f:
        original = f.read()
    _slow_file(gw.config_path, original)
    before = (last_reload(gw) or {}).get("at", 0)
    gw.signal(signal.SIGHUP)
    wait_until(lambda: "HUP: loading " in gw.log_text(), 5, "the load to start")
    started = time.monotonic()
    # While the loader works, a worker dies: the master reaps it and forks its replacement
    # at once, long before the verdict.
    victim = next(w for w in gw.workers() if w["slot"] == 0)["pid"]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: any(w["slot"] == 0 and w["pid"] != victim for w in gw.workers()), 4,
               "a replacement while the load runs")
    assert _newer(last_reload(gw), before) is None, "the replacement came after the verdict"
    assert requests.get(gw.url + "/", timeout=5).status_code == 200
    verdict = wait_until(lambda: _newer(last_reload(gw), before), 30, "the verdict")
    elapsed = time.monotonic() - started
    assert 5.0 <= elapsed < 20, elapsed
    assert verdict["ok"] is False
    assert "loading took longer than config_load.timeout (6s)" in verdict["errors"][0]
    wait_until(lambda: any(w["slot"] == 0 and w["pid"] != victim and w["state"] == "ready"
                           for w in gw.workers()), 20, "the replacement to serve")
    assert_still_serving(gw, 1)
    with open(gw.config_path, "w") as f:
        f.write(original)
    assert hup_and_wait(gw)["ok"] is True


def test_a_load_needing_more_memory_than_allowed_fails_that_reload_alone(serving):
    gw: Gateway = serving(extra={"config_load": {"max_memory_bytes": 64 * 1024 * 1024}})
    with open(gw.config_path) as f:
        original = f.read()
    _slow_file(gw.config_path, original)
    verdict = hup_and_wait(gw, timeout=60)
    assert verdict["ok"] is False
    assert verdict["errors"] == [f"{gw.config_path}: loading it needs more memory than "
                                 "config_load.max_memory_bytes (67108864)"], verdict
    assert_still_serving(gw, 1)


def test_a_hup_during_a_load_loads_the_file_again_after_it(serving):
    gw: Gateway = serving(extra={"config_load": {"timeout": 3}})
    with open(gw.config_path) as f:
        original = f.read()
    _slow_file(gw.config_path, original)
    gw.signal(signal.SIGHUP)
    wait_until(lambda: "HUP: loading " in gw.log_text(), 10, "the first load to start")
    gw.signal(signal.SIGHUP)
    wait_until(lambda: "the file is loaded again after it" in gw.log_text(), 10,
               "the second HUP to be noted")
    touch_config(gw)               # the good file the second HUP is about
    wait_until(lambda: "loading took longer than config_load.timeout" in gw.log_text(), 20,
               "the first load to time out")
    verdict = wait_until(lambda: (last_reload(gw) or {}).get("ok") and last_reload(gw), 30,
                         "the second load's verdict")
    assert verdict["version"] == 2
    wait_until(lambda: all(w["config_version"] == 2 for w in gw.workers()), 10,
               "the workers to take v2")
