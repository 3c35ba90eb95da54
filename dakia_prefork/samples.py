"""The files the package ships for setting up a gateway: the sample configuration (the
checkout's ``etc/dakia/dakia.yaml``) and the init files (``tools/init/``: systemd unit and
socket, SysV script, logrotate snippet, their README).

The project keeps one copy of each where a checkout uses it; ``setup.py``'s build step
copies them into the package as ``dakia_prefork/data/``, so a wheel or an sdist install
has them beside the code. An editable install (``make``'s .venv) runs from the checkout and
has no ``data/``: there they are read where the project keeps them.

``dakia-master init-config PATH`` and ``init-files DIR`` write them out. The sample's admin
API reads its token from ``admin.token`` beside it: ``init-config`` (and ``init-token``, which
``make run`` calls) writes a new random one there unless a token file is already there.
"""
from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from .files import remove_quietly, write_all, write_temporary

_CHECKOUT = Path(__file__).resolve().parent.parent


def _packaged(*parts: str) -> Traversable | None:
    item = files("dakia_prefork").joinpath("data", *parts)
    return item if item.is_file() or item.is_dir() else None


def sample_config() -> Traversable:
    """The sample configuration: the one ``make run`` serves, valid as it is."""
    return _packaged("dakia.yaml") or _CHECKOUT / "etc" / "dakia" / "dakia.yaml"


def init_files() -> dict[str, Traversable]:
    """The init files by name (``dakia.service``, ``dakia``...)."""
    directory = _packaged("init") or _CHECKOUT / "tools" / "init"
    return {item.name: item for item in sorted(directory.iterdir(), key=lambda i: i.name)
            if item.is_file()}


class WriteError(Exception):
    """Why a file was not written, in words for the command line."""


@dataclass(frozen=True)
class Written:
    path: str
    mode: int


def write_new(path: str, data: bytes, mode: int, *, force: bool) -> Written:
    """Write ``data`` to ``path`` with ``mode``, making missing parent directories.

    An existing file is kept unless ``force``; then it is replaced in one rename, so a
    reader never sees half a file. Every refusal is a WriteError naming the path.
    """
    if os.path.isdir(path):
        raise WriteError(f"{path} is a directory; give the file's path")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, mode=0o755, exist_ok=True)
    except FileExistsError:   # makedirs' answer when a component is a file
        raise WriteError(f"{path}: a parent of it is not a directory") from None
    except OSError as exc:
        raise WriteError(f"cannot make {parent}: {exc.strerror or exc}") from None
    try:
        if force:
            temporary = write_temporary(parent, data, mode)
            try:
                os.replace(temporary, path)
            except BaseException:
                remove_quietly(temporary)
                raise
        else:
            # O_EXCL: refused by the kernel if the file exists, even if it appeared just now.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                os.fchmod(fd, mode)   # the umask must not decide what the file allows
                write_all(fd, data)
            finally:
                os.close(fd)
    except FileExistsError:
        raise WriteError(f"{path} exists; --force replaces it") from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise WriteError(f"{path}: a parent of it is not a directory") from None
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None
    return Written(path, mode)


def write_sample_config(path: str, *, force: bool) -> Written:
    # 0644 as nginx.conf is: the gateway's user must read it, and the sample holds no
    # secret. A config that gets secrets (basic_auth hashes, tokens) can be made 0640.
    return write_new(path, sample_config().read_bytes(), 0o644, force=force)


SAMPLE_TOKEN_FILE = "admin.token"
"""The sample's ``admin.token_file``, relative to the config's directory."""


def write_token(path: str) -> Written:
    """A new random admin token (64 hex digits, 256 bits) in ``path``, mode 0600. An
    existing file is never replaced: rotating a token is a decision, not a side effect."""
    token = secrets.token_hex(32).encode() + b"\n"
    try:
        return write_new(path, token, 0o600, force=False)
    except WriteError as exc:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise WriteError(f"{path} exists; a token is never replaced (remove the file "
                             f"first to make a new one)") from None
        raise


def sample_token_path(config_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), SAMPLE_TOKEN_FILE)


def write_init_files(directory: str, *, force: bool) -> list[Written]:
    """Every init file into ``directory``; the SysV script stays executable. Nothing is
    written unless every file can be (an existing one without ``force`` refuses all)."""
    items = init_files()
    if not force:
        for name in items:
            target = os.path.join(directory, name)
            if os.path.lexists(target):
                raise WriteError(f"{target} exists; --force replaces it")
    written = []
    for name, item in items.items():
        mode = 0o755 if name == "dakia" else 0o644
        written.append(write_new(os.path.join(directory, name), item.read_bytes(), mode,
                                 force=force))
    return written
