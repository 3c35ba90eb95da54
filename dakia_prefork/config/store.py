"""The versioned config store: ``state_dir/config/v<N>.json``, immutable once written.

Each accepted config is written atomically (temp file in the same directory, fsync, rename,
fsync of the directory) so a reader never sees half a file, and a crash never leaves one.
Workers read a version by number when the master publishes it in shared memory. The newest
``keep`` versions are kept for rollback; older ones are pruned.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from . import dump_normalised

_VERSION_FILE = re.compile(r"^v(\d+)\.json$")


class ConfigStore:
    def __init__(self, state_dir: str) -> None:
        self.directory = os.path.join(state_dir, "config")

    def path(self, version: int) -> str:
        return os.path.join(self.directory, f"v{version}.json")

    def versions(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION_FILE.match, names) if m)

    def latest(self) -> int:
        versions = self.versions()
        return versions[-1] if versions else 0

    def write(self, config: dict[str, Any], keep: int) -> int:
        """Store ``config`` as the next version and return its number."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        version = self.latest() + 1
        data = dump_normalised(config).encode()
        tmp = os.path.join(self.directory, f".v{version}.json.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path(version))
        except OSError:
            # Disk full half-way, say: leave no partial temp file behind.
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.prune(keep)
        return version

    def discard(self, version: int) -> None:
        """Remove a version that was written but never published (a reload refused after
        writing it); a failure is ignored, the next write simply takes a higher number."""
        try:
            os.unlink(self.path(version))
        except OSError:
            pass

    def read(self, version: int) -> dict[str, Any]:
        with open(self.path(version), encoding="utf-8") as f:
            return json.load(f)

    def prune(self, keep: int) -> None:
        for version in self.versions()[:-keep] if keep > 0 else []:
            try:
                os.unlink(self.path(version))
            except FileNotFoundError:
                pass
