"""The init scripts in tools/init, run for real against real gateways: the SysV script
through every action (upgrade included), the systemd unit's own Exec lines with a notify
socket standing in for systemd, ``systemd-analyze verify`` when it exists and a structural
check of both units always, and the logrotate snippet (by logrotate when it exists, else by
its own postrotate script) against a gateway that must reopen its access log.

Every master started here is stopped in a finalizer, by the pids recorded when it started.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest
import requests
import yaml

from dakia_prefork.master import pidfile

from .harness import ROOT, Upstream, free_port, gateway_config, node, wait_until

INIT = os.path.join(ROOT, "tools", "init")
SYSV = os.path.join(INIT, "dakia")
SERVICE = os.path.join(INIT, "dakia.service")
SOCKET = os.path.join(INIT, "dakia.socket")
LOGROTATE = os.path.join(INIT, "dakia.logrotate")
# The venv's dakia-master: the program the scripts are pointed at through DAKIA_BIN.
DAKIA_BIN = os.path.join(os.path.dirname(sys.executable), "dakia-master")

# LSB exit codes the script promises.
LSB_USAGE, LSB_STOPPED, LSB_UNKNOWN = 2, 3, 4
LSB_NOT_INSTALLED, LSB_NOT_CONFIGURED, LSB_NOT_RUNNING = 5, 6, 7


# -- the SysV script against a real gateway --------------------------------------------------
class Site:
    """A config in tmp_path, two upstreams ("a" and "b"), and the SysV script's environment."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.up_a = Upstream(name="a")
        self.up_b = Upstream(name="b")
        self.log_dir = os.path.join(tmp, "logs")
        self.run_dir = os.path.join(tmp, "run")
        os.makedirs(self.log_dir)
        self.conf = os.path.join(tmp, "dakia.yaml")
        self.masters: list[tuple[int, int]] = []       # (pid, process group) of each start
        # The defaults file: a setting only it gives (two workers where the config says
        # one) shows that the script reads it. DAKIA_USER goes through setpriv when root.
        self.defaults = os.path.join(tmp, "default-dakia")
        with open(self.defaults, "w") as f:
            f.write(f'DAKIA_START_OPTS="--workers 2"\n'
                    f"DAKIA_USER={shlex.quote(pwd.getpwuid(os.getuid()).pw_name)}\n"
                    f"DAKIA_RUNDIR={shlex.quote(self.run_dir)}\n")
        self.env = {**os.environ, "DAKIA_BIN": DAKIA_BIN, "DAKIA_CONF": self.conf,
                    "DAKIA_DEFAULTS": self.defaults}
        self.write(default="a")
        # `dakia-master status` reads pid_file and state_dir from a config: a valid copy,
        # for the moments the test leaves an invalid file at DAKIA_CONF.
        self.status_conf = self.write(default="a", path=os.path.join(tmp, "status.yaml"))

    def config(self, default: str) -> dict[str, Any]:
        ups = [{"name": "a", "upstream_nodes": [node(self.up_a.port)], "default": default == "a"},
               {"name": "b", "upstream_nodes": [node(self.up_b.port)], "default": default == "b"}]
        return gateway_config(self.tmp, self.port, ups, workers=1, extra={
            "pid_file": os.path.join(self.run_dir, "dakia.pid"),
            "access_log": os.path.join(self.log_dir, "access.log"),
            "error_log": os.path.join(self.log_dir, "error.log")})

    def write(self, default: str = "a", config: dict[str, Any] | None = None,
              path: str | None = None) -> str:
        path = path or self.conf
        with open(path, "w") as f:
            yaml.safe_dump(config or self.config(default), f)
        return path

    def write_invalid(self, path: str | None = None) -> str:
        config = self.config("a")
        config["gateways"][0]["routers"] = [{"upstream": "nowhere"}]
        return self.write(config=config, path=path)

    @property
    def pid_file(self) -> str:
        return os.path.join(self.run_dir, "dakia.pid")

    def sysv(self, action: str, timeout: float = 90, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run([SYSV, action], env={**self.env, **env}, capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if action in ("start", "restart") and result.returncode == 0:
            self.record_master()
        return result

    def record_master(self) -> None:
        pid = pidfile.read(self.pid_file)
        if pid is not None:
            self.masters.append((pid, os.getpgid(pid)))

    def status_json(self) -> dict[str, Any]:
        result = subprocess.run([DAKIA_BIN, "status", "--json", "-c", self.status_conf],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode in (0, 3), result.stderr
        return json.loads(result.stdout)

    def get(self) -> str:
        response = requests.get(f"http://127.0.0.1:{self.port}/", timeout=5)
        assert response.status_code == 200, response.text
        return response.text

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.log_dir, "error.log"), errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        recorded = self.masters + ([(p, os.getpgid(p))] if (p := pidfile.read(self.pid_file))
                                   else [])
        for pid, _group in recorded:
            if pidfile.alive(pid):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for pid, group in recorded:
            while pidfile.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            try:                       # whatever is left of that master and its workers
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.up_a.close()
        self.up_b.close()


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    made = Site(str(tmp_path))
    try:
        yield made
    finally:
        made.cleanup()


def _versions(report: dict[str, Any]) -> tuple[int, list[int]]:
    return report["master"]["config_version"], [w["config_version"] for w in report["workers"]]


def test_sysv_script_lifecycle(site: Site):
    assert os.access(DAKIA_BIN, os.X_OK), f"{DAKIA_BIN}: run the tests from the venv"

    # configtest: a valid file, and an invalid one with the path of its error.
    ok = site.sysv("configtest")
    assert ok.returncode == 0, ok.stderr
    assert "configuration is valid" in ok.stdout
    bad_conf = site.write_invalid(os.path.join(site.tmp, "bad.yaml"))
    bad = site.sysv("configtest", DAKIA_CONF=bad_conf)
    assert bad.returncode == 1
    assert "gateways[0].routers[0]" in bad.stderr and "invalid" in bad.stderr

    # Not running yet: status 3, reload 7, and an invalid file does not start (6).
    assert site.sysv("status").returncode == LSB_STOPPED
    assert site.sysv("reload").returncode == LSB_NOT_RUNNING
    assert site.sysv("upgrade").returncode == LSB_NOT_RUNNING
    refused = site.sysv("start", DAKIA_CONF=bad_conf)
    assert refused.returncode == LSB_NOT_CONFIGURED, refused.stderr
    assert "gateways[0].routers[0]" in refused.stderr
    assert site.sysv("status").returncode == LSB_STOPPED

    # start: returns once serving; the defaults file's --workers 2 is used.
    started = site.sysv("start")
    assert started.returncode == 0, started.stderr + site.error_log()
    first_master = pidfile.read(site.pid_file)
    assert first_master is not None
    status = site.sysv("status")
    assert status.returncode == 0, status.stderr
    assert f"pid {first_master}" in status.stdout
    report = site.status_json()
    assert report["running"] and len(report["workers"]) == 2
    assert site.get() == "a"
    again = site.sysv("start")
    assert again.returncode == 0 and "already running" in again.stdout
    assert pidfile.read(site.pid_file) == first_master

    # reload: the new file takes effect on every worker, the version goes up, and every
    # request on the way is answered.
    before, _ = _versions(site.status_json())
    site.write(default="b")
    reloaded = site.sysv("reload")
    assert reloaded.returncode == 0, reloaded.stderr + site.error_log()
    wait_until(lambda: site.get() == "b", 5, "the reloaded route")

    def all_on_new_version() -> bool:
        master_v, worker_vs = _versions(site.status_json())
        return master_v == before + 1 and len(worker_vs) == 2 and set(worker_vs) == {master_v}
    wait_until(all_on_new_version, 5, "every worker on the new version")
    assert pidfile.read(site.pid_file) == first_master       # no restart

    # reload with an invalid file: refused with the error, nothing changes.
    site.write_invalid()
    refused = site.sysv("reload")
    assert refused.returncode != 0
    assert "gateways[0].routers[0]" in refused.stderr
    assert _versions(site.status_json())[0] == before + 1
    assert site.get() == "b"

    # restart refuses an invalid file and leaves the gateway running.
    refused = site.sysv("restart")
    assert refused.returncode == LSB_NOT_CONFIGURED
    assert pidfile.read(site.pid_file) == first_master and site.get() == "b"

    # restart with a valid file: a new master.
    site.write(default="b")
    restarted = site.sysv("restart")
    assert restarted.returncode == 0, restarted.stderr + site.error_log()
    second_master = pidfile.read(site.pid_file)
    assert second_master is not None and second_master != first_master
    assert not pidfile.alive(first_master)
    assert site.get() == "b"

    # upgrade (USR2 through `dakia-master upgrade`): a new master on the same sockets, the
    # old one gone, the pid file back in place.
    upgraded = site.sysv("upgrade")
    assert upgraded.returncode == 0, upgraded.stderr + site.error_log()
    upgraded_master = pidfile.read(site.pid_file)
    assert upgraded_master is not None and upgraded_master != second_master
    site.record_master()
    wait_until(lambda: not pidfile.alive(second_master), 15, "the old master to exit")
    assert not os.path.exists(site.pid_file + ".oldbin")
    assert site.get() == "b"
    assert site.sysv("status").returncode == 0

    # graceful-stop (QUIT), then start and stop (TERM); stop is idempotent.
    quit_ = site.sysv("graceful-stop")
    assert quit_.returncode == 0, quit_.stderr
    assert not pidfile.alive(upgraded_master)
    assert site.sysv("status").returncode == LSB_STOPPED
    assert site.sysv("start").returncode == 0
    third_master = pidfile.read(site.pid_file)
    assert third_master is not None and site.get() == "b"
    stopped = site.sysv("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not pidfile.alive(third_master)
    assert not os.path.exists(site.pid_file)
    final = site.sysv("status")
    assert final.returncode == LSB_STOPPED and "not running" in final.stdout
    assert site.status_json() == {"running": False}
    again = site.sysv("stop")
    assert again.returncode == 0 and "not running" in again.stdout


def test_sysv_script_usage_header_and_missing_program(tmp_path):
    env = {**os.environ, "DAKIA_DEFAULTS": str(tmp_path / "none"),
           "DAKIA_CONF": str(tmp_path / "none.yaml")}
    for args in ([], ["frobnicate"]):
        result = subprocess.run([SYSV, *args], env=env, capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == LSB_USAGE and "Usage:" in result.stderr
    missing = {**env, "DAKIA_BIN": str(tmp_path / "no-such-dakia-master")}
    for action, code in (("status", LSB_UNKNOWN), ("start", LSB_NOT_INSTALLED)):
        result = subprocess.run([SYSV, action], env=missing, capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == code and "not installed" in result.stderr

    with open(SYSV) as f:
        text = f.read()
    assert text.startswith("#!/bin/sh\n")
    header = re.search(r"^### BEGIN INIT INFO\n(.*?)^### END INIT INFO$", text, re.S | re.M)
    assert header, "no LSB header"
    fields = dict(re.findall(r"^# ([A-Za-z-]+):\s+(.*)$", header.group(1), re.M))
    assert fields["Provides"] == "dakia"
    assert fields["Default-Start"].split() == ["2", "3", "4", "5"]
    assert fields["Default-Stop"].split() == ["0", "1", "6"]
    for key in ("Required-Start", "Required-Stop", "Short-Description"):
        assert fields.get(key), key
    # POSIX sh: parsed by dash when present (the strictest common /bin/sh), and clean for
    # shellcheck in sh mode when it is installed.
    for shell in ("dash", "sh"):
        if shutil.which(shell):
            syntax = subprocess.run([shell, "-n", SYSV], capture_output=True, text=True)
            assert syntax.returncode == 0, syntax.stderr
    if shutil.which("shellcheck"):
        lint = subprocess.run(["shellcheck", "-s", "sh", SYSV], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout


# -- systemd ------------------------------------------------------------------------------
def parse_unit(path: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values...]}}: keys may repeat, lines may continue."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                current = sections.setdefault(stripped[1:-1], {})
                continue
            assert current is not None, f"{path}: {line!r} outside any section"
            key, sep, value = stripped.partition("=")
            assert sep, f"{path}: not key=value: {line!r}"
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, f"{section}.{key} given {len(values)} times"
    return values[0]


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", value)
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)


def _sysv_default(name: str) -> str:
    with open(SYSV) as f:
        match = re.search(rf"^{name}=\$\{{{name}:-([^}}]+)\}}$", f.read(), re.M)
    assert match, name
    return match.group(1)


def test_systemd_units():
    service = parse_unit(SERVICE)
    assert set(service) == {"Unit", "Service", "Install"}
    assert _one(service, "Unit", "Description")
    s = "Service"
    assert _one(service, s, "Type") == "notify"
    assert _one(service, s, "NotifyAccess") == "all"        # the upgraded master's READY=1
    program = _sysv_default("DAKIA_BIN")
    conf = _sysv_default("DAKIA_CONF")
    # Foreground start of the same program and config as the SysV script.
    assert shlex.split(_one(service, s, "ExecStart")) == [program, "start", "-c", conf]
    assert shlex.split(_one(service, s, "ExecReload")) == [program, "reload", "-c", conf]
    assert os.path.isabs(program)
    # The pid file lives in the runtime directory, and logrotate signals that same file.
    pid_file = _one(service, s, "PIDFile")
    assert pid_file == f"/run/{_one(service, s, 'RuntimeDirectory')}/dakia.pid"
    with open(LOGROTATE) as f:
        assert f"pid_file={pid_file}\n" in f.read()
    # Graceful stop: QUIT to the master only, for longer than graceful_timeout's default.
    assert _one(service, s, "KillSignal") == "SIGQUIT"
    assert _one(service, s, "KillMode") == "mixed"
    with open(os.path.join(ROOT, "dakia_prefork", "config", "schema.json")) as f:
        graceful_default = json.load(f)["properties"]["graceful_timeout"]["default"]
    assert _seconds(_one(service, s, "TimeoutStopSec")) > graceful_default
    # Hardening that would break /dev/shm sharing, SO_REUSEPORT or ctypes is absent.
    for key in ("PrivateNetwork", "RemoveIPC", "DynamicUser", "MemoryDenyWriteExecute",
                "PrivateIPC", "IPAddressDeny", "PrivateUsers"):
        assert key not in service[s], key
    assert "AF_UNIX" in _one(service, s, "RestrictAddressFamilies").split()
    assert _one(service, "Install", "WantedBy") == "multi-user.target"

    socket_unit = parse_unit(SOCKET)
    assert set(socket_unit) == {"Unit", "Socket", "Install"}
    assert _one(socket_unit, "Socket", "ReusePort") == "yes"
    assert _one(socket_unit, "Socket", "Service") == "dakia.service"
    assert socket_unit["Socket"]["ListenStream"]
    assert _one(socket_unit, "Install", "WantedBy") == "sockets.target"


def test_systemd_units_verify(tmp_path):
    """``systemd-analyze verify`` when it exists (the program path pointed at the venv's,
    which it checks is executable); otherwise the structure check above is the check, and
    this test checks what it can without systemd: the ExecStart line starts a gateway."""
    service = parse_unit(SERVICE)
    program = shlex.split(_one(service, "Service", "ExecStart"))[0]
    with open(SERVICE) as f:
        text = f.read().replace(program, DAKIA_BIN)
    (tmp_path / "dakia.service").write_text(text)
    shutil.copy(SOCKET, tmp_path / "dakia.socket")
    analyze = shutil.which("systemd-analyze")
    if analyze:
        result = subprocess.run(
            [analyze, "verify", "--man=no", str(tmp_path / "dakia.service"),
             str(tmp_path / "dakia.socket")], capture_output=True, text=True, timeout=60)
        ours = [line for line in (result.stdout + result.stderr).splitlines()
                if "dakia" in line]
        assert result.returncode == 0 and not ours, result.stdout + result.stderr
    # Without systemd-analyze (and with it): the ExecStart/ExecReload command lines are
    # accepted by the real CLI parser (a typo in an option would fail here).
    from dakia_prefork.cli import build_parser
    for key in ("ExecStart", "ExecReload"):
        argv = shlex.split(_one(service, "Service", key))[1:]
        args = build_parser().parse_args(argv)
        assert args.command == argv[0] and args.config == argv[argv.index("-c") + 1]
        assert not getattr(args, "daemon", False)                # Type=notify: foreground



class NotifySocket:
    """The service manager's end of sd_notify: a datagram socket in the abstract namespace
    that records each message with the sender's pid (SCM_CREDENTIALS, as systemd does)."""

    def __init__(self) -> None:
        self.name = f"@dakia-test-notify-{os.getpid()}-{time.monotonic_ns()}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.messages: list[tuple[int, dict[str, str]]] = []

    def wait_for(self, key: str, value: str, timeout: float,
                 sender: int | None = None) -> tuple[int, dict[str, str]]:
        """The first message (already received or arriving within ``timeout``) with
        ``key=value`` (from ``sender`` if given); messages are consumed in order."""
        deadline = time.monotonic() + timeout
        while True:
            for index, (pid, fields) in enumerate(self.messages):
                if fields.get(key) == value and sender in (None, pid):
                    del self.messages[:index + 1]
                    return pid, fields
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key}={value} from {sender} within {timeout}s; "
                                     f"got {self.messages}")
            self.sock.settimeout(left)
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(
                    4096, socket.CMSG_SPACE(struct.calcsize("3i")))
            except socket.timeout:
                continue
            pid = -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:struct.calcsize("3i")])[0]
            fields = dict(line.split("=", 1) for line in data.decode().splitlines()
                          if "=" in line)
            self.messages.append((pid, fields))

    def close(self) -> None:
        self.sock.close()


def test_systemd_exec_lines_drive_a_real_gateway(site: Site):
    """What the unit relies on, run for real with the unit's own command lines (program and
    config paths swapped for the venv's and the test's): ExecStart stays in the foreground
    and sends READY=1 with its MAINPID once it serves (Type=notify); ExecReload succeeds and
    is framed by RELOADING=1/READY=1; after `dakia-master upgrade` the new master sends
    READY=1 with MAINPID=itself and owns the PIDFile= (how systemd follows it); KillSignal=
    to the main process stops it gracefully, with STOPPING=1."""
    service = parse_unit(SERVICE)
    program = shlex.split(_one(service, "Service", "ExecStart"))[0]
    conf = _sysv_default("DAKIA_CONF")

    def command(key: str) -> list[str]:
        argv = shlex.split(_one(service, "Service", key))
        return [DAKIA_BIN if a == program else site.conf if a == conf else a for a in argv]

    notify = NotifySocket()
    site.write(default="a")
    env = {**os.environ, "NOTIFY_SOCKET": notify.name}
    log = open(os.path.join(site.log_dir, "foreground.log"), "ab")
    main = subprocess.Popen(command("ExecStart"), env=env, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    site.masters.append((main.pid, main.pid))
    try:
        sender, ready = notify.wait_for("READY", "1", 30)
        assert sender == main.pid and ready.get("MAINPID") == str(main.pid)
        assert site.get() == "a"                            # READY=1 means serving
        assert pidfile.read(site.pid_file) == main.pid

        site.write(default="b")
        reload = subprocess.run(command("ExecReload"), env=env, capture_output=True,
                                text=True, timeout=60)
        assert reload.returncode == 0, reload.stderr
        notify.wait_for("RELOADING", "1", 10, sender=main.pid)
        notify.wait_for("READY", "1", 10, sender=main.pid)
        wait_until(lambda: site.get() == "b", 5, "the reloaded route")

        upgrade = subprocess.run([DAKIA_BIN, "upgrade", "-c", site.conf], env=env,
                                 capture_output=True, text=True, timeout=90)
        assert upgrade.returncode == 0, upgrade.stderr + site.error_log()
        new = pidfile.read(site.pid_file)
        assert new is not None and new != main.pid
        sender, ready = notify.wait_for("READY", "1", 10, sender=new)
        assert ready.get("MAINPID") == str(new)
        assert main.wait(30) == 0                           # the old master quit cleanly
        assert site.get() == "b"
        # It handed the service over, so it must not have said STOPPING=1: under
        # NotifyAccess=all systemd would take that as the whole service stopping.
        with pytest.raises(AssertionError, match="no STOPPING=1"):
            notify.wait_for("STOPPING", "1", 1.0, sender=main.pid)

        os.kill(new, signal.Signals[_one(service, "Service", "KillSignal")])
        notify.wait_for("STOPPING", "1", 10, sender=new)
        stop_timeout = _seconds(_one(service, "Service", "TimeoutStopSec"))
        wait_until(lambda: not pidfile.alive(new), stop_timeout, "the new master to stop")
        assert not os.path.exists(site.pid_file)
    finally:
        notify.close()


# -- logrotate ----------------------------------------------------------------------------
def parse_logrotate(path: str) -> tuple[list[str], list[str], str]:
    """(log patterns, directives, postrotate script) of the snippet's single block."""
    with open(path) as f:
        lines = [ln.split("#", 1)[0].rstrip() if not ln.lstrip().startswith("#") else ""
                 for ln in f.read().splitlines()]
    text = "\n".join(ln for ln in lines if ln.strip())
    block = re.fullmatch(r"\s*([^{]+?)\s*\{\n(.*)\n\}\s*", text, re.S)
    assert block, f"{path}: expected one `patterns {{ ... }}` block"
    patterns = block.group(1).split()
    body = block.group(2)
    script = re.search(r"^\s*postrotate\n(.*?)\n\s*endscript$", body, re.S | re.M)
    assert script, "no postrotate ... endscript"
    directives = [ln.split()[0] for ln in
                  (body[:script.start()] + body[script.end():]).splitlines() if ln.strip()]
    return patterns, directives, script.group(1)


def test_logrotate_snippet_rotates_and_the_gateway_reopens(site: Site, tmp_path):
    patterns, directives, postrotate = parse_logrotate(LOGROTATE)
    assert patterns == ["/var/log/dakia/*.log"]
    assert {"missingok", "notifempty", "delaycompress", "sharedscripts"} <= set(directives)
    assert "copytruncate" not in directives          # the gateway reopens: USR1
    assert "kill -USR1" in postrotate
    syntax = subprocess.run(["sh", "-n"], input=postrotate, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr

    # Point the snippet at this gateway's logs and pid file.
    with open(LOGROTATE) as f:
        text = f.read().replace("/var/log/dakia", site.log_dir).replace(
            "/run/dakia/dakia.pid", site.pid_file)
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text)
    conf.chmod(0o644)

    started = site.sysv("start")
    assert started.returncode == 0, started.stderr + site.error_log()
    master = pidfile.read(site.pid_file)
    access = os.path.join(site.log_dir, "access.log")
    assert site.get() == "a"
    wait_until(lambda: os.path.exists(access) and os.path.getsize(access) > 0, 5,
               "the first access-log line")
    before = os.listdir(site.log_dir)

    logrotate = shutil.which("logrotate") or (
        "/usr/sbin/logrotate" if os.access("/usr/sbin/logrotate", os.X_OK) else None)
    state = str(tmp_path / "logrotate.state")
    if logrotate:
        debug = subprocess.run([logrotate, "-d", "-s", state, str(conf)],
                               capture_output=True, text=True, timeout=60)
        output = debug.stdout + debug.stderr
        assert debug.returncode == 0, output
        assert not re.search(r"^error:", output, re.M | re.I), output
        assert "rotating pattern: " + os.path.join(site.log_dir, "*.log") in output, output
        real = subprocess.run([logrotate, "-f", "-s", state, str(conf)],
                              capture_output=True, text=True, timeout=60)
        assert real.returncode == 0, real.stdout + real.stderr
    else:                          # do what logrotate would: rename, then the postrotate
        for name in before:
            os.rename(os.path.join(site.log_dir, name),
                      os.path.join(site.log_dir, name + "-rotated"))
        run = subprocess.run(["sh", "-c", text.split("postrotate\n", 1)[1]
                              .split("endscript", 1)[0]], capture_output=True, text=True,
                             timeout=30)
        assert run.returncode == 0, run.stderr

    rotated = [n for n in os.listdir(site.log_dir) if n.startswith("access.log") and
               n != "access.log"]
    assert rotated, os.listdir(site.log_dir)
    # After USR1 the workers write to a new access.log (no `create` in the snippet: the
    # gateway's reopen creates it); the master is the same one.
    def new_file_has_lines() -> bool:
        site.get()
        return os.path.exists(access) and os.path.getsize(access) > 0
    wait_until(new_file_has_lines, 5, "a line in the reopened access.log", interval=0.2)
    assert pidfile.read(site.pid_file) == master
    stopped = site.sysv("stop")
    assert stopped.returncode == 0, stopped.stderr
