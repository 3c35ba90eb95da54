"""A copy of the project's files, as a clone has them, for tests that build, install or
run the project somewhere else (test_package.py, test_readme.py).

In a git checkout: the tracked files and the new ones git does not ignore. Without git (a
release tarball, ``git archive`` in tools/fresh-machine): the tree without what
.gitignore names, which is what a build or a run leaves behind.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# .gitignore's entries, for a tree without git.
_IGNORED = (".git", ".venv", "__pycache__", "*.egg-info", "var", "build", "dist",
            ".pytest_cache", ".mypy_cache", "*.so", ".hypothesis")


def _listed() -> list[str] | None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return None
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=True).stdout
    return [name for name in listed.split("\0") if name]


def project_copy(dest: Path) -> Path:
    names = _listed()
    if names is None:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*_IGNORED), symlinks=True)
        shutil.rmtree(dest / "etc" / "dakia" / "tls", ignore_errors=True)
        return dest
    for name in names:
        source = ROOT / name
        if source.is_file():   # a deleted, still tracked file is not part of the tree
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest
