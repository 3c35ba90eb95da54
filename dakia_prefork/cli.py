"""``dakia-master``: start the gateway, or talk to a running master through its pid file.

Exit codes follow the LSB init-script conventions where they apply: 0 success, 1 generic
error (invalid config, cannot bind...), 3 for ``status`` when no master is running.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

from . import __version__
from .config import ConfigError, load
from .config.model import Settings
from .config.store import ConfigStore
from .master import pidfile
from .master.checks import certificate_report, runtime_errors
from .procs import set_title

_CHECKOUT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "etc", "dakia", "dakia.yaml")
_INSTALLED_CONFIG = "/etc/dakia/dakia.yaml"


def default_config_path() -> str:
    return _CHECKOUT_CONFIG if os.path.exists(_CHECKOUT_CONFIG) else _INSTALLED_CONFIG


def _fail(message: str, code: int = 1) -> int:
    print(f"dakia-master: {message}", file=sys.stderr)
    return code


def _load(path: str, *, quiet_notices: bool = False) -> tuple[dict[str, Any] | None, int]:
    """Load and validate; print every error with its path. Returns (config, exit code)."""
    try:
        config, notices = load(path)
    except ConfigError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        return None, 1
    if not quiet_notices:
        for notice in notices:
            print(f"notice: {notice}", file=sys.stderr)
    return config, 0


# -- commands ---------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    config, code = _load(args.config)
    if config is None:
        print(f"{args.config}: configuration is invalid", file=sys.stderr)
        return code
    for problem in runtime_errors(config):
        print(f"warning: {problem} (start will refuse this)", file=sys.stderr)
    lines, warnings = certificate_report(config)
    for line in lines:
        print(f"certificate {line}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    etcd = Settings.from_config(config).etcd
    if etcd is not None:
        print(f"note: the gateways come from {etcd.describe()}; `dakia-master config push "
              f"--dry-run -c {args.config} --file DOC` checks a document with this file",
              file=sys.stderr)
    print(f"{args.config}: configuration is valid")
    return 0


def cmd_cert(args: argparse.Namespace) -> int:
    """Write a self-signed certificate and its key (mode 0600) for development and tests."""
    from .tls.certs import write_self_signed
    names = [name.strip() for name in args.names.split(",") if name.strip()]
    if not names:
        return _fail("--names: give at least one name")
    if args.days < 1:
        return _fail("--days must be at least 1")
    try:
        cert_path, key_path = write_self_signed(args.out, names, args.days)
    except (OSError, ValueError) as exc:
        return _fail(f"cert: {exc}")
    print(f"certificate {cert_path} for {', '.join(names)}, valid {args.days} days")
    print(f"key {key_path} (mode 0600)")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    config, code = _load(args.config)
    if config is None:
        return _fail("not started: the configuration is invalid", code)
    problems = runtime_errors(config)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return _fail("not started: the configuration cannot run in this version")
    if args.workers is not None and args.workers < 1:
        return _fail("--workers must be at least 1")
    running = find_master(config)
    if running is not None:
        return _fail(f"already running (pid {running.pid}, {running.pid_file})")
    from .logs import detach_stdio, detached, detached_target_problem, setup_logging
    from .master.arbiter import Master, StartError

    settings = Settings.from_config(config)
    shared: Any = None
    if settings.etcd is not None:
        # The gateways come from etcd (or, when it cannot be read, from the version this
        # node persisted last): fleet/loaders.py, in a loader child.
        from .fleet.loaders import load_for_start
        shared = load_for_start(os.path.abspath(args.config), settings)
        if shared.config is None:
            for error in shared.errors:
                print(error, file=sys.stderr)
            return _fail("not started: no valid shared config to serve")
        for notice in shared.notices:
            if not notice.startswith("config_source: "):
                print(f"notice: {notice}", file=sys.stderr)
        config = shared.config
        settings = Settings.from_config(config)
    # --daemon, or a new master exec'd by a daemon's binary upgrade (stdio on /dev/null).
    detach = args.daemon or detached()
    problems = [problem for problem in (
        detached_target_problem("error_log", settings.error_log, detach),
        detached_target_problem("access_log", settings.access_log, detach)) if problem]
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return _fail("not started: a daemon needs its logs in files")
    try:
        setup_logging(settings)
    except OSError as exc:
        return _fail(f"error_log: cannot open {config['error_log']}: {exc.strerror or exc}")
    for notice in shared.notices if shared is not None else []:
        if notice.startswith("config_source: "):
            # Starting on a persisted version while etcd is away: the log must say so.
            logging.getLogger("dakia.master").warning("%s", notice)
    ready_w = -1
    if args.daemon:
        ready_r, ready_w = os.pipe()
        if os.fork() > 0:
            # Return once every worker serves (the master writes "ok"), or with the reason
            # it could not start; the pipe closes empty if the daemon died on the way.
            os.close(ready_w)
            answer = _read_ready(ready_r, _DAEMON_READY_TIMEOUT)
            if answer is None:
                return _fail(f"the daemon is not ready after {_DAEMON_READY_TIMEOUT:.0f}s "
                             "(its workers keep failing?); see the error log")
            if answer.startswith("ok"):
                return 0
            return _fail(answer or "the daemon exited before it was ready; see the error log")
        os.close(ready_r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        detach_stdio()
    try:
        master = Master(os.path.abspath(args.config), config, args.workers, ready_fd=ready_w,
                        settings=settings,
                        source=shared.source if shared is not None else None,
                        revision=shared.revision if shared is not None else None)
        master.setup()
    except StartError as exc:
        if ready_w >= 0:
            os.write(ready_w, str(exc).encode())
            os.close(ready_w)
        logging.getLogger("dakia.master").error("%s", exc)
        return _fail(str(exc)) if ready_w < 0 else 1
    set_title(f"master -c {os.path.abspath(args.config)}")
    return master.run()


_DAEMON_READY_TIMEOUT = 60.0


def _read_ready(fd: int, timeout: float) -> str | None:
    """What the daemon wrote before closing ``fd``; None if it is still silent at timeout."""
    import select
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(chunk)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class RunningMaster:
    """A live master as the CLI found it: its pid, and the restart-only paths it runs with
    (the file may name others since: see config/model.py RESTART_ONLY)."""

    pid: int
    pid_file: str
    state_dir: str


def find_master(config: dict[str, Any]) -> RunningMaster | None:
    """The running master of ``config``, or None.

    Found through the pid file the config names or, when that holds no live master,
    through the pid file the master runs with: ``pid_file`` is restart-only, so after the
    file changed it the master still runs with the one its newest published version
    (under ``state_dir``) records. When the file changed ``state_dir``, the master's
    reload result there names the one it runs with.
    """
    pid_file = config["pid_file"]
    state_dir = config["state_dir"]
    pid = pidfile.read(pid_file)
    if pid is None:
        store = ConfigStore(state_dir)
        try:
            latest = store.latest()
            recorded = store.read(latest)["pid_file"] if latest else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(recorded, str) or recorded == pid_file:
            return None
        pid, pid_file = pidfile.read(recorded), recorded
        if pid is None:
            return None
    result = _last_reload(state_dir)
    if result.get("master") == pid and isinstance(result.get("state_dir"), str):
        state_dir = result["state_dir"]
    return RunningMaster(pid, pid_file, state_dir)


def _running_master(args: argparse.Namespace) -> tuple[dict[str, Any] | None,
                                                        RunningMaster | None]:
    config, _code = _load(args.config, quiet_notices=True)
    if config is None:
        return None, None
    return config, find_master(config)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pidfile.alive(pid):
            return True
        time.sleep(0.05)
    return False


def _cmd_stop(args: argparse.Namespace, sig: int, wait: float) -> int:
    config, running = _running_master(args)
    if config is None:
        return 1
    if running is None:
        return _fail(f"not running (no live pid in {config['pid_file']})")
    pid = running.pid
    os.kill(pid, sig)
    if args.no_wait:
        return 0
    if not _wait_gone(pid, wait):
        return _fail(f"master {pid} still running after {wait:.0f}s")
    print(f"stopped master {pid}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    return _cmd_stop(args, signal.SIGTERM, 15.0)


def cmd_quit(args: argparse.Namespace) -> int:
    config, _ = _running_master(args)
    if config is None:
        return 1
    return _cmd_stop(args, signal.SIGQUIT, float(config["graceful_timeout"]) + 10.0)


def _last_reload(state_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(state_dir, "last_reload.json"), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def cmd_reload(args: argparse.Namespace) -> int:
    config, running = _running_master(args)
    if config is None:
        return _fail("reload refused: the configuration is invalid; nothing changed")
    problems = runtime_errors(config)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return _fail("reload refused: the configuration cannot run; nothing changed")
    if running is None:
        return _fail(f"not running (no live pid in {config['pid_file']})")
    pid = running.pid
    # The master publishes its verdict in its control block (readable whatever state_dir
    # allows: disk full, read-only, permission denied) and writes it in its state_dir and,
    # when the file names another one (a restart-only change), there too.
    before = _last_reload(config["state_dir"]).get("at", 0)
    control = _control_block(running.state_dir, pid)
    sequence = control[0].reload_sequence if control else 0
    os.kill(pid, signal.SIGHUP)
    # The master gives its loader config_load.timeout (the running config's; the file's
    # is the best guess we have), then applies the verdict.
    wait = float(config["config_load"]["timeout"]) + 30.0
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            result: dict[str, Any] | None = None
            if control and control[0].reload_sequence > sequence:
                result = control[0].last_reload()
            if result is None:
                result = _last_reload(config["state_dir"])
                if not (result.get("master") == pid and result.get("at", 0) > before):
                    result = None
            if result is not None and result.get("origin", "HUP") != "HUP":
                # A change made over the admin API in the meantime: not our verdict.
                before = max(before, result.get("at", 0))
                sequence = control[0].reload_sequence if control else sequence
                result = None
            if result is not None:
                return _report_reload(pid, result)
            time.sleep(0.05)
    finally:
        if control:
            control[1].close()
    return _fail(f"master {pid} did not answer the reload in {wait:.0f}s; see its error log")


def _control_block(state_dir: str, pid: int) -> tuple[Any, Any] | None:
    """The running master's control block and its segment, or None (an older master)."""
    from .shm.control import ControlBlock
    from .shm.segment import Segment, segment_name
    try:
        segment = Segment(segment_name(state_dir, pid, "control"), 0, create=False)
    except Exception:  # noqa: BLE001 - fall back to the file
        return None
    if segment.size < ControlBlock.SIZE:
        segment.close()
        return None
    return ControlBlock(segment), segment


def _report_reload(pid: int, result: dict[str, Any]) -> int:
    if result["ok"]:
        print(f"reloaded: master {pid} serves config v{result['version']}")
        # Settings the file changes that the master kept (restart-only ones).
        for change in result.get("not_applied", []):
            print(change["line"])
        return 0
    for error in result["errors"]:
        print(error, file=sys.stderr)
    return _fail(f"reload refused by the master; nothing changed, it keeps serving config "
                 f"v{result['version']}")


def cmd_upgrade(args: argparse.Namespace) -> int:
    """USR2, wait for the new master to serve, then QUIT the old one (nginx's sequence)."""
    config, _code = _load(args.config, quiet_notices=True)
    if config is None:
        return _fail("upgrade refused: the configuration is invalid, a new master could "
                     "not start on it; nothing changed")
    found = find_master(config)
    if found is None:
        return _fail(f"not running (no live pid in {config['pid_file']})")
    # The old master moves its own pid file; the new one writes the file's (they differ
    # when the file changed pid_file, which only an upgrade or a restart applies).
    old, running_pid_file = found.pid, found.pid_file
    new_pid_file = config["pid_file"]
    oldbin = running_pid_file + ".oldbin"
    if pidfile.read(oldbin) is not None:
        return _fail(f"an upgrade is already in progress ({oldbin} exists)")
    os.kill(old, signal.SIGUSR2)
    started = time.monotonic()
    seen_oldbin = False
    new: int | None = None
    while True:
        if time.monotonic() - started > args.timeout:
            if new is not None:
                os.kill(new, signal.SIGTERM)     # the old master restores its pid file
            return _fail(f"the new master was not ready within {args.timeout:.0f}s and was "
                         f"stopped; master {old} keeps serving")
        if not pidfile.alive(old):
            return _fail(f"master {old} exited during the upgrade; see its error log")
        seen_oldbin = seen_oldbin or pidfile.read(oldbin) == old
        current = pidfile.read(new_pid_file)
        if current is not None and current != old:
            new = current
            if status_report(config, new)["master"].get("ready"):
                break
        elif (seen_oldbin and pidfile.read(running_pid_file) == old
              and not os.path.exists(oldbin)):
            return _fail(f"the new master failed to start (see the error log); master {old} "
                         "keeps serving and the pid file is restored")
        elif not seen_oldbin and time.monotonic() - started > 5.0:
            return _fail(f"master {old} did not start an upgrade; see its error log")
        time.sleep(0.05)
    print(f"new master {new} is serving; stopping the old master {old} gracefully")
    os.kill(old, signal.SIGQUIT)
    grace = float(config["graceful_timeout"]) + 10.0
    if not _wait_gone(old, grace):
        return _fail(f"old master {old} still running after {grace:.0f}s")
    print(f"upgraded: master {old} -> {new}")
    return 0


def status_report(config: dict[str, Any], pid: int) -> dict[str, Any]:
    """What ``status --json`` prints for master ``pid`` (see dakia_prefork/status.py)."""
    from .status import collect
    return collect(config["state_dir"], pid)


def cmd_status(args: argparse.Namespace) -> int:
    config, running = _running_master(args)
    if config is None:
        return 1
    if running is None:
        if args.json:
            print(json.dumps({"running": False}))
        else:
            print(f"dakia-master is not running (pid file {config['pid_file']})")
        return 3
    report = status_report({**config, "state_dir": running.state_dir}, running.pid)
    if args.json:
        print(json.dumps({"running": True, **report}, indent=2))
        return 0
    from .status import render
    print("\n".join(render(report)))
    return 0


def _etcd_of(args: argparse.Namespace) -> tuple[Any, int]:
    """The etcd settings of the local file ``-c`` names, or (None, exit code)."""
    config, code = _load(args.config, quiet_notices=True)
    if config is None:
        return None, code
    settings = Settings.from_config(config)
    if settings.etcd is None:
        print(f"dakia-master: {args.config} has no config_source: its gateways are in the "
              "file itself", file=sys.stderr)
        return None, 1
    return settings.etcd, 0


def cmd_config_push(args: argparse.Namespace) -> int:
    """Validate a shared document with the local file, as a node would, and write it to
    etcd (only over ``--if-match REVISION`` when given)."""
    from .config.fleet import validate_combined
    from .config.source import load_source
    etcd_settings, code = _etcd_of(args)
    if etcd_settings is None:
        return code
    try:
        document = load_source(args.file)
        _config, notices = validate_combined(os.path.abspath(args.config), document)
        errors = runtime_errors(_config)
    except ConfigError as exc:
        errors, notices = exc.errors, []
    for notice in notices:
        print(f"notice: {notice}", file=sys.stderr)
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        return _fail(f"{args.file}: the document is invalid; etcd is unchanged")
    if args.dry_run:
        print(f"{args.file}: the document is valid with {args.config}")
        return 0
    from .fleet.etcd import Etcd, EtcdError
    etcd = Etcd(etcd_settings)
    try:
        done, revision = etcd.put(json.dumps(document, indent=2, ensure_ascii=False).encode(),
                                  args.if_match)
    except EtcdError as exc:
        return _fail(f"etcd: {exc}; nothing changed")
    finally:
        etcd.close()
    if not done:
        return _fail(f"{etcd_settings.key} is at revision {revision}, not {args.if_match}; "
                     "nothing changed", 2)
    print(f"pushed {args.file} to {etcd_settings.key}: revision {revision}")
    return 0


def cmd_config_pull(args: argparse.Namespace) -> int:
    """Print (or write to ``--file``) the shared document as etcd holds it."""
    etcd_settings, code = _etcd_of(args)
    if etcd_settings is None:
        return code
    from .fleet.etcd import Etcd, EtcdError
    etcd = Etcd(etcd_settings)
    try:
        entry = etcd.get()
    except EtcdError as exc:
        return _fail(f"etcd: {exc}")
    finally:
        etcd.close()
    if entry.value is None:
        return _fail(f"{etcd_settings.key} does not exist in etcd")
    text = entry.value.decode("utf-8", "replace")
    if not text.endswith("\n"):
        text += "\n"
    if args.file:
        from .files import write_temporary
        directory = os.path.dirname(os.path.abspath(args.file))
        os.replace(write_temporary(directory, text.encode(), 0o600), args.file)
    else:
        sys.stdout.write(text)
    print(f"{etcd_settings.key}: revision {entry.mod_revision}", file=sys.stderr)
    return 0


def cmd_init_config(args: argparse.Namespace) -> int:
    """Write the sample configuration (the one ``make run`` serves) to start from."""
    from .samples import WriteError, sample_token_path, write_sample_config, write_token
    try:
        written = write_sample_config(args.path, force=args.force)
    except WriteError as exc:
        return _fail(f"init-config: {exc}")
    print(f"{written.path}: the sample configuration (mode {written.mode:04o}); "
          f"`dakia-master check -c {written.path}` validates it")
    token_path = sample_token_path(written.path)
    if os.path.lexists(token_path):
        print(f"{token_path}: kept (the admin API's token)")
        return 0
    try:
        token = write_token(token_path)
    except WriteError as exc:
        return _fail(f"init-config: {exc}")
    print(f"{token.path}: a new admin API token (mode {token.mode:04o}); the dashboard at "
          f"the admin address asks for it")
    return 0


def cmd_init_token(args: argparse.Namespace) -> int:
    """Write a new random admin token; an existing file is kept (exit 1)."""
    from .samples import WriteError, write_token
    try:
        written = write_token(args.path)
    except WriteError as exc:
        return _fail(f"init-token: {exc}")
    print(f"{written.path}: a new admin API token (mode {written.mode:04o})")
    return 0


def cmd_init_files(args: argparse.Namespace) -> int:
    """Write the init files (systemd unit and socket, SysV script, logrotate snippet)."""
    from .samples import WriteError, write_init_files
    try:
        written = write_init_files(args.directory, force=args.force)
    except WriteError as exc:
        return _fail(f"init-files: {exc}")
    for item in written:
        print(f"{item.path} (mode {item.mode:04o})")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    from .build import describe
    print(f"dakia-prefork {__version__} (request path: {describe()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dakia-master",
                                     description="dakia-prefork API gateway master")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("-c", "--config", default=default_config_path(),
                       help="config file (default: %(default)s)")
        p.set_defaults(func=func)
        return p

    start = command("start", cmd_start, "start the gateway (foreground unless --daemon)")
    start.add_argument("--workers", type=int, default=None, help="override `workers`")
    start.add_argument("--daemon", action="store_true", help="detach; return once serving")
    for name, func, text in (("stop", cmd_stop, "fast stop (TERM)"),
                             ("quit", cmd_quit, "graceful stop (QUIT)")):
        p = command(name, func, text)
        p.add_argument("--no-wait", action="store_true", help="signal and return at once")
    command("reload", cmd_reload, "validate, then reload the configuration (HUP)")
    upgrade = command("upgrade", cmd_upgrade,
                      "binary upgrade (USR2): start a new master on the same sockets, then "
                      "stop the old one gracefully")
    upgrade.add_argument("--timeout", type=float, default=60.0,
                         help="seconds to wait for the new master (default: %(default)s)")
    status = command("status", cmd_status, "show the master and its workers")
    status.add_argument("--json", action="store_true")
    command("check", cmd_check, "validate a configuration file and exit")
    shared = sub.add_parser("config", help="the shared document of an etcd config_source "
                                           "(see README, Fleet)")
    shared_sub = shared.add_subparsers(dest="config_command", required=True)
    push = shared_sub.add_parser("push", help="validate a document with the local file and "
                                              "write it to etcd")
    pull = shared_sub.add_parser("pull", help="print the document etcd holds")
    for p, func in ((push, cmd_config_push), (pull, cmd_config_pull)):
        p.add_argument("-c", "--config", default=default_config_path(),
                       help="the local file naming config_source (default: %(default)s)")
        p.set_defaults(func=func)
    push.add_argument("--file", required=True, help="the document (JSON or YAML)")
    push.add_argument("--if-match", type=int, default=None, metavar="REVISION",
                      help="write only if the key is at this mod_revision (the ETag of "
                           "GET /config); 0: only if it does not exist")
    push.add_argument("--dry-run", action="store_true", help="validate only")
    pull.add_argument("--file", default=None, help="write it there (mode 0600) instead of "
                                                   "to stdout")
    cert = sub.add_parser("cert", help="make a self-signed certificate and key (for "
                                       "development and tests)")
    cert.add_argument("--names", required=True,
                      help="comma-separated DNS names (wildcards too) or IP addresses; the "
                           "first is the subject's CN")
    cert.add_argument("--out", required=True,
                      help="directory for cert.pem and key.pem (made if missing; existing "
                           "files are not overwritten)")
    cert.add_argument("--days", type=int, default=90,
                      help="days of validity (default: %(default)s)")
    cert.set_defaults(func=cmd_cert)
    init_config = sub.add_parser("init-config", help="write the sample configuration to "
                                                     "start from")
    init_config.add_argument("path", help="the file to write, e.g. /etc/dakia/dakia.yaml "
                                          "(missing directories are made)")
    init_config.set_defaults(func=cmd_init_config)
    init_token = sub.add_parser("init-token", help="write a new random admin API token "
                                                   "(refused if the file exists)")
    init_token.add_argument("path", help="the token file, e.g. /etc/dakia/admin.token")
    init_token.set_defaults(func=cmd_init_token)
    init_files = sub.add_parser("init-files", help="write the systemd unit and socket, the "
                                                   "SysV script and the logrotate snippet")
    init_files.add_argument("directory", help="where to write them (made if missing)")
    init_files.set_defaults(func=cmd_init_files)
    for p in (init_config, init_files):
        p.add_argument("--force", action="store_true", help="replace existing files")
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
