"""How a node with an etcd ``config_source`` gets a config: what the loader child runs
(master/reloader.py, bounded by ``config_load``), in each of three cases.

- **start** (:func:`start_loader`): read the key from etcd and validate its document with
  the local file. When etcd cannot be reached (or the key is absent), fall back to the
  newest version persisted in state_dir that was made from the same key: the node starts
  on what it served last, and its follower catches up once etcd answers. With no such
  version, the start is refused with a clear error: a node never starts on nothing.
- **a document the follower handed over** (:func:`document_loader`): the file it wrote,
  with its revision.
- **HUP** (:func:`hup_loader`): the local file again (node-level settings), with the
  shared document the node serves now (its source in the store): a HUP never waits on
  etcd, and never moves the node to another revision; the follower does that.

Each returns a :class:`Loaded` whose ``source`` is the shared document as etcd holds it
(before ``${NAME}`` substitution: what ``GET /config`` returns on every node) and whose
``revision`` is the key's mod_revision. Only the start loader talks to etcd, and it runs
in the loader child, so neither the network nor the client library reaches the master.
"""
from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import Any

from ..config.bounds import read_bounded
from ..config.errors import ConfigError
from ..config.fleet import parse_shared, validate_combined
from ..config.model import EtcdSettings, Settings
from ..config.store import ConfigStore
from ..master.checks import runtime_errors
from ..master.reloader import Loaded, ReloadJob


def _loaded(config_path: str, document: dict[str, Any], revision: int | None,
            notices: list[str] | None = None) -> Loaded:
    try:
        config, more = validate_combined(config_path, document)
    except ConfigError as exc:
        return Loaded(errors=_with_revision(exc.errors, revision))
    errors = runtime_errors(config)
    if errors:
        return Loaded(errors=_with_revision(errors, revision))
    return Loaded(config=config, notices=[*(notices or []), *more], source=document,
                  revision=revision)


def _with_revision(errors: list[str], revision: int | None) -> list[str]:
    if revision is None:
        return errors
    return [f"etcd revision {revision}: {error}" for error in errors]


def document_loader(config_path: str, revision: int | None) -> Callable[[str], Loaded]:
    """The loader of the document file the follower wrote for ``revision`` (or the admin
    process for a check: None)."""
    def load(path: str) -> Loaded:
        try:
            with open(path, "rb") as stream:
                raw = read_bounded("the shared document", stream)
            document = parse_shared(raw, None)      # the prefix below names the revision
        except ConfigError as exc:
            return Loaded(errors=_with_revision(exc.errors, revision))
        except OSError as exc:
            return Loaded(errors=_with_revision(
                [f"the document cannot be read: {exc.strerror or exc}"], revision))
        return _loaded(config_path, document, revision)
    return load


def hup_loader(store: ConfigStore, version: int, revision: int | None
               ) -> Callable[[str], Loaded]:
    """The loader of a HUP: the local file at the path it is given, with the shared
    document of the running ``version``."""
    def load(path: str) -> Loaded:
        try:
            document = store.read_source(version)
        except (OSError, ValueError) as exc:
            return Loaded(errors=[f"the shared document of v{version} cannot be read from "
                                  f"the store: {exc}"])
        return _loaded(path, document, revision)
    return load


def start_loader(settings: EtcdSettings, state_dir: str) -> Callable[[str], Loaded]:
    """The loader of a start: the key from etcd, else the newest persisted version of
    that key."""
    def load(path: str) -> Loaded:
        from .etcd import Etcd, EtcdError     # the client only in the loader child
        etcd = Etcd(settings)
        try:
            entry = etcd.get()
        except EtcdError as exc:
            return _persisted(path, settings, state_dir, f"etcd cannot be read ({exc})")
        finally:
            etcd.close()
        if entry.value is None:
            return _persisted(path, settings, state_dir,
                              f"the key {settings.key} does not exist in etcd (put a "
                              "document there: dakia-master config push)")
        try:
            document = parse_shared(entry.value, None)
        except ConfigError as exc:
            return Loaded(errors=_with_revision(exc.errors, entry.mod_revision))
        return _loaded(path, document, entry.mod_revision)
    return load


def _persisted(path: str, settings: EtcdSettings, state_dir: str, why: str) -> Loaded:
    store = ConfigStore(state_dir)
    for version in reversed(store.versions()):
        etcd = store.read_meta(version).get("etcd")
        if not isinstance(etcd, dict) or etcd.get("key") != settings.key:
            continue
        revision = store.etcd_revision(version)
        try:
            document = store.read_source(version)
        except (OSError, ValueError):
            continue
        return _loaded(path, document, revision, notices=[
            f"config_source: {why}; starting on the persisted v{version} (etcd revision "
            f"{revision}); the node follows etcd once it answers"])
    return Loaded(errors=[f"config_source: {why}, and {os.path.join(state_dir, 'config')} "
                          f"has no version of {settings.key} to start on: not started"])


def load_for_start(config_path: str, settings: Settings) -> Loaded:
    """Run :func:`start_loader` in a loader child, bounded by ``config_load`` as a reload
    is, and wait for its verdict (before the master's loop: nothing to supervise yet, but
    the etcd client and the network stay out of the master's process all the same)."""
    assert settings.etcd is not None
    job = ReloadJob.start(config_path, settings.config_load, time.monotonic(),
                          lambda: None, start_loader(settings.etcd, settings.state_dir))
    while True:
        if job.running:
            select.select([job.fd], [], [], 0.1)
        if job.status is None:
            pid, status = os.waitpid(job.pid, os.WNOHANG)
            if pid:
                job.status = status
        verdict = job.poll(time.monotonic())
        if verdict is not None:
            if job.status is None:
                os.waitpid(job.pid, 0)          # killed at the deadline, or about to exit
            return verdict
        if not job.running and job.status is None:
            time.sleep(0.01)
