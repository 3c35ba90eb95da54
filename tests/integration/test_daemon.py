"""`dakia-master start --daemon` and its logs, through the real CLI: stdout and stderr are
refused as log targets (a daemon's are /dev/null), at start, on reload and in a new master
of a binary upgrade; with files, the daemon's stderr is the error log."""
from __future__ import annotations

import os
import signal
from typing import Any, Callable

import requests

from dakia_prefork.master import pidfile

from .harness import Gateway, node, wait_until

ERROR_STDERR = ("error_log: stderr is /dev/null for a master started with --daemon, so its "
                "lines would be lost; set error_log to a file (e.g. /var/log/dakia/error.log), "
                "or start in the foreground")
ACCESS_STDOUT = ("access_log: stdout is /dev/null for a master started with --daemon, so "
                 "its lines would be lost; set access_log to a file or off (e.g. "
                 "/var/log/dakia/access.log), or start in the foreground")


def fd_target(pid: int, fd: int) -> str:
    return os.readlink(f"/proc/{pid}/fd/{fd}")


def daemon(gw: Gateway, request: Any) -> int:
    """Start ``gw`` with --daemon; the finalizer stops it. Returns the master's pid."""
    gw.write_config()

    def stop() -> None:
        pid = pidfile.read(gw.config["pid_file"])
        if pid is not None and gw.cli("stop").returncode != 0:
            os.kill(pid, signal.SIGKILL)
    request.addfinalizer(stop)
    started = gw.cli("start", "--daemon", timeout=60)
    assert started.returncode == 0, started.stderr
    pid = pidfile.read(gw.config["pid_file"])
    assert pid is not None
    return pid


def log_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def test_daemon_refuses_logs_on_stdout_or_stderr_and_says_what_to_set(
        upstreams: Callable[..., Any], gateways: Callable[..., Gateway]) -> None:
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False,
                  extra={"access_log": "stdout"})           # and the harness's stderr
    gw.write_config()
    refused = gw.cli("start", "--daemon")
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        ERROR_STDERR + " (systemd, a container or a supervisor keeps stderr)",
        ACCESS_STDOUT + " (systemd, a container or a supervisor keeps stdout)",
        "dakia-master: not started: a daemon needs its logs in files"]
    assert gw.cli("status").returncode == 3
    assert not os.path.exists(gw.config["pid_file"])
    # One fixed, the other still named.
    gw.config["error_log"] = os.path.join(gw.tmp, "error.log")
    gw.write_config()
    refused = gw.cli("start", "--daemon")
    assert refused.returncode == 1 and ACCESS_STDOUT in refused.stderr
    assert "error_log" not in refused.stderr
    assert gw.cli("status").returncode == 3


def test_a_daemons_stderr_is_its_error_log_and_follows_usr1(upstreams, gateways, request):
    up = upstreams()
    gw: Gateway = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False)
    error_log = gw.config["error_log"] = os.path.join(gw.tmp, "error.log")
    master = daemon(gw, request)
    [worker] = [w["pid"] for w in gw.workers()]
    assert requests.get(gw.url + "/", timeout=5).status_code == 200
    for pid in (master, worker):
        assert fd_target(pid, 0) == fd_target(pid, 1) == os.devnull
        assert fd_target(pid, 2) == error_log
    assert any(f"dakia-master {master}: config v1" in line for line in log_lines(error_log))
    # logrotate: the file moves away, USR1; stderr follows the error log to the new file.
    os.rename(error_log, error_log + ".1")
    os.kill(master, signal.SIGUSR1)
    wait_until(lambda: all(fd_target(pid, 2) == error_log for pid in (master, worker)), 5,
               "stderr on the new error log")
    # The master logs the reopen after it has signalled the workers: it may come later.
    wait_until(lambda: any("USR1: log files reopened" in line for line in log_lines(error_log)),
               5, "the master's line in the new error log")


def test_a_daemon_refuses_a_reload_or_an_upgrade_to_stderr(upstreams, gateways, request):
    up = upstreams()
    gw: Gateway = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False)
    error_log = gw.config["error_log"] = os.path.join(gw.tmp, "error.log")
    master = daemon(gw, request)
    gw.config["error_log"] = "stderr"
    gw.write_config()
    reload = gw.cli("reload", timeout=60)
    assert reload.returncode == 1 and ERROR_STDERR in reload.stderr, reload.stderr
    wait_until(lambda: any("reload refused" in line and ERROR_STDERR in line
                           for line in log_lines(error_log)), 5, "the refusal in the log")
    assert gw.status()["master"]["config_version"] == 1
    # A new master exec'd by the upgrade is detached too: it refuses, says why on the
    # stderr it inherited (the error log), and the old master keeps serving.
    upgrade = gw.cli("upgrade", "--timeout", "30", timeout=60)
    assert upgrade.returncode == 1, upgrade.stdout + upgrade.stderr
    assert "master %d keeps serving" % master in upgrade.stderr
    wait_until(lambda: any(line.startswith(ERROR_STDERR) for line in log_lines(error_log)), 5,
               "the new master's refusal in the error log")
    assert pidfile.read(gw.config["pid_file"]) == master
    assert requests.get(gw.url + "/", timeout=5).status_code == 200
