"""The package as a user gets it: an sdist built from the project's files, installed with pip
into a new virtualenv, must run and carry its files (LICENSE, the sample configuration, the
init files, the JSON Schema).

The sdist is built from a copy of the project's files (tests/integration/project.py), so
nothing of the checkout's own build state (.venv, build/, egg-info) can leak into it. pip fetches the build backend and the dependencies from the package
index; pip's cache keeps a repeated run short. Every step has a timeout.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from .project import project_copy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(600)

INIT_FILES = sorted(p.name for p in (ROOT / "tools" / "init").iterdir())


def run(*argv: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (argv, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel pip builds from it (as `pip install SDIST` does)."""
    tmp = tmp_path_factory.mktemp("package")
    source = project_copy(tmp / "src")
    out = tmp / "dist"
    # `python -m build` (no --sdist/--wheel): the sdist first, then the wheel built from
    # the unpacked sdist, so a file missing from the sdist is missing from the wheel too.
    run(sys.executable, "-m", "build", "--outdir", out, source, timeout=480)
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv (no system site-packages) with the sdist installed by pip."""
    env = tmp_path_factory.mktemp("venv") / "v"
    run(sys.executable, "-m", "venv", env, timeout=120)
    sdist = next(dist.glob("*.tar.gz"))
    run(env / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", sdist,
        timeout=480)
    return env


def test_sdist_has_what_the_build_needs(dist: Path) -> None:
    sdist = next(dist.glob("dakia_prefork-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = {"LICENSE", "README.md", "CHANGELOG.md", "setup.cfg", "setup.py",
                "pyproject.toml", "etc/dakia/dakia.yaml", "dakia_prefork/config/schema.json",
                *(f"tools/init/{name}" for name in INIT_FILES)}
    assert expected <= names, sorted(expected - names)


def test_wheel_carries_license_sample_init_files_and_schema(dist: Path) -> None:
    wheel = next(dist.glob("dakia_prefork-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("dakia_prefork/data/dakia.yaml") == \
            (ROOT / "etc/dakia/dakia.yaml").read_bytes()
        for name in INIT_FILES:
            assert archive.read(f"dakia_prefork/data/init/{name}") == \
                (ROOT / "tools/init" / name).read_bytes()
        assert archive.read("dakia_prefork/config/schema.json") == \
            (ROOT / "dakia_prefork/config/schema.json").read_bytes()
        # The dashboard's page, script and style sheet (no CDN: the wheel has them all).
        for name in ("index.html", "dashboard.js", "dashboard.css"):
            assert archive.read(f"dakia_prefork/dashboard/static/{name}") == \
                (ROOT / "dakia_prefork/dashboard/static" / name).read_bytes()
        license_name = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert archive.read(license_name) == (ROOT / "LICENSE").read_bytes()
        metadata = archive.read(next(n for n in names
                                     if n.endswith(".dist-info/METADATA"))).decode()
    assert "License: Apache-2.0" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and not any("multiprocess" in line for line in requires), requires


def test_installed_sdist_writes_and_checks_its_sample(venv: Path, tmp_path: Path) -> None:
    master = venv / "bin" / "dakia-master"
    assert run(master, "version").startswith("dakia-prefork 0.1.0 (request path: ")
    config = tmp_path / "etc" / "dakia" / "dakia.yaml"
    run(master, "init-config", config)
    assert config.read_bytes() == (ROOT / "etc/dakia/dakia.yaml").read_bytes()
    assert f"{config}: configuration is valid" in run(master, "check", "-c", config)
    init = tmp_path / "init"
    run(master, "init-files", init)
    assert sorted(p.name for p in init.iterdir()) == INIT_FILES
    assert (init / "dakia").stat().st_mode & 0o111   # the SysV script is executable


def test_installed_files_come_from_the_package(venv: Path) -> None:
    # The installed copy reads its data from site-packages, not from this checkout.
    probe = ("import json, dakia_prefork, dakia_prefork.samples as s\n"
             "from importlib.resources import files\n"
             "print(json.dumps({'package': dakia_prefork.__file__,\n"
             "  'sample': str(s.sample_config()),\n"
             "  'init': sorted(s.init_files()),\n"
             "  'schema': files('dakia_prefork.config').joinpath('schema.json').is_file()}))")
    found = json.loads(run(venv / "bin" / "python", "-c", probe, cwd=venv))
    site = str(venv / "lib")
    assert found["package"].startswith(site), found
    assert found["sample"].startswith(site) and found["sample"].endswith("data/dakia.yaml")
    assert found["init"] == INIT_FILES
    assert found["schema"] is True
