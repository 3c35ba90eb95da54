"""The versioned config store: ``state_dir/config/v<N>.json``, immutable once written.

Each accepted config is written atomically (temp file in the same directory, fsync, rename,
fsync of the directory) so a reader never sees half a file, and a crash never leaves one.
Workers read a version by number when the master publishes it in shared memory. The newest
``keep`` versions are kept for rollback; older ones are pruned.

Beside each version, ``v<N>.source.json`` keeps the document it was made from, as its
source gave it: the file's mapping or the admin API's body, before ``${NAME}`` references
were substituted and defaults filled. That is what the admin API returns and edits, and
what ``?persist=true`` writes back, so secrets from the environment never reach the API or
the file. It is written before the version itself: a version file always has its source
(a version written by an older release may not; readers fall back to the normalised one).

``v<N>.meta.json``, when there is one, says where a version came from beyond its document:
on a node following etcd (fleet/), ``{"etcd": {"key": ..., "mod_revision": R}}``, the
revision of the key the version was made from, which is what ``status``, ``GET /config``
and the metrics show, so that the nodes of a fleet can be compared.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from ..files import remove_quietly, write_all
from . import dump_normalised

_VERSION_FILE = re.compile(r"^v(\d+)\.json$")
_SOURCE_SUFFIX = ".source.json"
_META_SUFFIX = ".meta.json"


class ConfigStore:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.directory = os.path.join(state_dir, "config")

    def path(self, version: int) -> str:
        return os.path.join(self.directory, f"v{version}.json")

    def source_path(self, version: int) -> str:
        return os.path.join(self.directory, f"v{version}{_SOURCE_SUFFIX}")

    def meta_path(self, version: int) -> str:
        return os.path.join(self.directory, f"v{version}{_META_SUFFIX}")

    def versions(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION_FILE.match, names) if m)

    def latest(self) -> int:
        versions = self.versions()
        return versions[-1] if versions else 0

    def write(self, config: dict[str, Any], keep: int,
              source: dict[str, Any] | None = None,
              meta: dict[str, Any] | None = None) -> int:
        """Store ``config`` (and the ``source`` document it came from, and its ``meta``) as
        the next version and return its number."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        version = self.latest() + 1
        if meta is not None:
            try:
                self._write_file(self.meta_path(version), dump_normalised(meta).encode())
            except OSError:
                remove_quietly(self.meta_path(version))
                raise
        if source is not None:
            try:
                self._write_file(self.source_path(version), dump_normalised(source).encode())
            except OSError:
                remove_quietly(self.source_path(version))
                remove_quietly(self.meta_path(version))
                raise
        try:
            self._write_file(self.path(version), dump_normalised(config).encode())
        except OSError:
            remove_quietly(self.source_path(version))
            remove_quietly(self.meta_path(version))
            raise
        self.prune(keep)
        return version

    def _write_file(self, path: str, data: bytes) -> None:
        tmp = os.path.join(self.directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError:
            # Disk full half-way, say: leave no partial temp file behind.
            remove_quietly(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


    def discard(self, version: int) -> None:
        """Remove a version that was written but never published (a reload refused after
        writing it); a failure is ignored, the next write simply takes a higher number."""
        remove_quietly(self.path(version))
        remove_quietly(self.source_path(version))
        remove_quietly(self.meta_path(version))

    def read(self, version: int) -> dict[str, Any]:
        with open(self.path(version), encoding="utf-8") as f:
            return json.load(f)

    def read_source(self, version: int) -> dict[str, Any]:
        """The document ``version`` was made from; its normalised form when no source was
        kept (itself a valid config). Raises OSError when the version is gone."""
        try:
            with open(self.source_path(version), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return self.read(version)

    def read_meta(self, version: int) -> dict[str, Any]:
        """What ``v<N>.meta.json`` says (``{}`` without one, or when it cannot be read)."""
        try:
            with open(self.meta_path(version), encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def etcd_revision(self, version: int) -> int | None:
        """The etcd mod_revision ``version`` was made from; None if not from etcd."""
        etcd = self.read_meta(version).get("etcd")
        revision = etcd.get("mod_revision") if isinstance(etcd, dict) else None
        return revision if isinstance(revision, int) else None

    def prune(self, keep: int) -> None:
        for version in self.versions()[:-keep] if keep > 0 else []:
            remove_quietly(self.path(version))
            remove_quietly(self.source_path(version))
            remove_quietly(self.meta_path(version))
