"""tools/system-deps: what `make run` and `make test` do on a machine without the packages.

The script runs with a PATH of stand-ins only, so every program it looks for is absent
unless a test puts it there: ``id`` says who we are, ``apt-get`` records its arguments and
"installs" a package by creating the programs it provides. The machine's own packages are
neither used nor touched.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "system-deps"

# The programs the script checks and the Debian package of each (the script's table).
PROGRAMS = {
    "make": "make", "cc": "gcc", "perl": "perl", "redis-server": "redis-server",
    "etcd": "etcd-server", "pebble": "pebble", "pebble-challtestsrv": "pebble",
    "curl": "curl", "mount": "mount", "setpriv": "util-linux", "unshare": "util-linux",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}
ALL_PACKAGES = ["make", "gcc", "perl", "redis-server", "etcd-server", "pebble", "curl",
                "mount", "util-linux", "chromium", "chromium-driver"]

FAKE_APT = """#!/bin/sh
echo "$*" >> "{log}"
[ -e "{fail}" ] && {{ echo "E: Unable to locate package" >&2; exit 100; }}
[ "$1" = install ] || exit 0
for arg in "$@"; do
    for program in $(grep "^$arg " "{provides}" | cut -d' ' -f2-); do
        printf '#!/bin/sh\\nexit 0\\n' > "{bin}/$program"; chmod +x "{bin}/$program"
    done
done
"""


class Machine:
    """A PATH of stand-ins, an os-release, and a record of apt-get's calls."""

    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.apt_log = tmp / "apt.log"
        self.apt_fail = tmp / "apt.fail"
        self.os_release = tmp / "os-release"
        self.debian()
        self.uid(0)
        # What the script itself runs besides the programs it checks.
        for tool in ("mktemp", "tail", "rm", "grep", "cut", "chmod"):
            path = shutil.which(tool)
            assert path is not None, tool
            (self.bin / tool).symlink_to(path)
        provides = tmp / "provides"
        lines: dict[str, list[str]] = {}
        for program, package in PROGRAMS.items():
            lines.setdefault(package, []).append(program)
        provides.write_text("".join(f"{p} {' '.join(progs)}\n" for p, progs in lines.items()))
        self._script("apt-get", FAKE_APT.format(log=self.apt_log, fail=self.apt_fail,
                                                provides=provides, bin=self.bin))

    def _script(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def uid(self, uid: int) -> None:
        self._script("id", f"#!/bin/sh\necho {uid}\n")

    def debian(self, ident: str = "debian", like: str = "") -> None:
        self.os_release.write_text(f'ID={ident}\nID_LIKE="{like}"\nVERSION_ID="12"\n')

    def have(self, *programs: str) -> None:
        for program in programs:
            self._script(program, "#!/bin/sh\nexit 0\n")

    def apt_calls(self) -> list[str]:
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []

    def run(self, mode: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
        env = {"PATH": str(self.bin), "PYTHON": python,
               "SYSTEM_DEPS_OS_RELEASE": str(self.os_release)}
        return subprocess.run([shutil.which("bash") or "/bin/bash", str(SCRIPT), mode],
                              env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    python_h = Path(__import__("sysconfig").get_paths()["include"]) / "Python.h"
    if not python_h.exists():
        pytest.fail(f"{sys.executable} has no headers ({python_h}); tools/system-deps "
                    "test needs them too")
    return Machine(tmp_path)


def test_nothing_missing_installs_nothing(machine: Machine) -> None:
    machine.have(*PROGRAMS)
    result = machine.run("test")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert machine.apt_calls() == []


def test_not_root_on_debian_asks_once_with_the_exact_command(machine: Machine) -> None:
    machine.uid(1000)
    machine.have("make", "perl")
    result = machine.run("test")
    assert result.returncode == 1
    assert machine.apt_calls() == []
    wanted = [p for p in ALL_PACKAGES if p not in ("make", "perl")]
    lines = result.stderr.splitlines()
    assert lines[0] == "tools/system-deps: make test needs packages this machine does not have:"
    assert f"  sudo apt-get install {' '.join(wanted)}" in lines
    # One line per missing program, each naming its package; nothing about make or perl.
    for program, package in PROGRAMS.items():
        if program not in ("make", "perl"):
            assert any(line.startswith(f"  {program}: {package} (") for line in lines)
    assert not any(line.startswith(("  make:", "  perl:")) for line in lines)
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_root_on_debian_installs_what_is_missing(machine: Machine) -> None:
    machine.have("make", "cc", "perl", "curl", "mount", "setpriv", "unshare")
    result = machine.run("test")
    assert result.returncode == 0, result.stderr
    assert machine.apt_calls() == [
        "update -qq",
        "install -y -qq --no-install-recommends redis-server etcd-server pebble chromium "
        "chromium-driver"]
    # Installed now: a second run has nothing to do.
    assert machine.run("test").returncode == 0
    assert len(machine.apt_calls()) == 2


def test_ubuntu_counts_as_debian(machine: Machine) -> None:
    machine.debian("ubuntu", "debian")
    result = machine.run("test")
    assert result.returncode == 0, result.stderr
    assert machine.apt_calls()[1].endswith(" ".join(ALL_PACKAGES))


def test_root_elsewhere_names_debian_packages_and_installs_nothing(machine: Machine) -> None:
    machine.debian("fedora", "rhel centos")
    result = machine.run("test")
    assert result.returncode == 1
    assert machine.apt_calls() == []
    assert "install your system's equivalents" in result.stderr
    assert f"apt-get install {' '.join(ALL_PACKAGES)}" in result.stderr


def test_a_failed_apt_get_is_one_message(machine: Machine) -> None:
    machine.apt_fail.touch()
    result = machine.run("test")
    assert result.returncode == 1
    assert "E: Unable to locate package" in result.stderr
    assert "apt-get could not install them" in result.stderr
    assert f"sudo apt-get install {' '.join(ALL_PACKAGES)}" in result.stderr


def test_a_package_without_its_program_is_reported(machine: Machine) -> None:
    # apt-get "succeeds" but brings nothing: stated by the script, not by a test later.
    (machine.bin / "apt-get").write_text("#!/bin/sh\nexit 0\n")
    result = machine.run("test")
    assert result.returncode == 1
    assert "still missing after apt-get install:" in result.stderr


def test_run_needs_only_python_with_venv(machine: Machine, tmp_path: Path) -> None:
    # `make run` checks the interpreter, not the test programs (none are on this PATH).
    machine.uid(1000)
    assert machine.run("run").returncode == 0
    old = tmp_path / "python-3.9"
    old.write_text(f"#!/bin/sh\ncase \"$*\" in *version_info*) exit 1;; -V) echo "
                   f"'Python 3.9.2'; exit 0;; esac\nexec {sys.executable} \"$@\"\n")
    old.chmod(0o755)
    result = machine.run("run", python=str(old))
    assert result.returncode == 1
    assert f"  {old}: python3 (Python 3.11 or newer; it is Python 3.9.2)" in result.stderr
    no_venv = tmp_path / "python-no-venv"
    no_venv.write_text(f"#!/bin/sh\ncase \"$*\" in *ensurepip*) exit 1;; esac\n"
                       f"exec {sys.executable} \"$@\"\n")
    no_venv.chmod(0o755)
    result = machine.run("run", python=str(no_venv))
    assert result.returncode == 1
    assert "sudo apt-get install python3-venv" in result.stderr


def test_make_test_and_ci_run_go_through_it() -> None:
    # `make test` runs the script before anything else; .ci/run runs `make test`.
    plan = subprocess.run(["make", "-n", "--no-print-directory", "test"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MAKEFLAGS": ""}).stdout.splitlines()
    assert plan and "tools/system-deps test" in plan[0], plan[:3]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec make test" in ci and "apt-get" not in ci


def test_a_perl_without_its_modules_needs_the_perl_package(machine: Machine) -> None:
    # Debian's perl-base has /usr/bin/perl but not JSON::PP, which the plugin example uses.
    machine.have(*PROGRAMS)
    (machine.bin / "perl").write_text('#!/bin/sh\ncase "$*" in *JSON::PP*) exit 2;; esac\n')
    machine.uid(1000)
    result = machine.run("test")
    assert result.returncode == 1
    assert "  perl's JSON::PP: perl (the external-plugin example" in result.stderr
    assert "  sudo apt-get install perl" in result.stderr.splitlines()
