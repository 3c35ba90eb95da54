"""A directory served to clients, and the one way a request path becomes a file in it.

Theory of operation
-------------------
Two defences, each sufficient against what the other might miss:

1. The request path is turned into segments *before* the file system sees it
   (``segments``): percent-decoded exactly once, as UTF-8; any ``..`` segment, NUL,
   backslash or other control character refuses the request (so ``%2e%2e/``, ``..%2f``,
   ``..\\`` and ``%00`` never reach ``open``); ``.`` and empty segments collapse. Names
   starting with a dot (``.git``, ``.htpasswd``) are refused unless ``hidden`` files are
   allowed. The segments are then joined below the root: nothing in them can climb.
2. Symbolic links inside the root may still point out of it, and a path check done before
   ``open`` could be raced by someone swapping a link. So the file is opened first and the
   check is made on what was opened: ``/proc/self/fd/N`` names the real path of the open
   file, which must lie below the root's real path; otherwise it is closed and reported
   absent. Nothing is ever read from a file that failed this check.

Opening uses ``O_NONBLOCK`` so that a FIFO planted in the root cannot hang a worker, and
only regular files are served. A directory is served by its index file, under the same
check. ``Root.writer`` (for ``try_file``) creates directories and files with the
``*at`` calls relative to descriptors it has checked, with ``O_NOFOLLOW``, and renames a
finished temporary file into place atomically.
"""
from __future__ import annotations

import errno
import os
import stat
import uuid
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .offload import run_blocking

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7f))


class BadPath(ValueError):
    """The request path tries to leave the root or carries what no file name should."""


class HiddenPath(BadPath):
    """The request path names a hidden file (a segment starting with a dot)."""


def segments(raw_path: str, hidden: bool = False) -> list[str]:
    """The path segments of the raw (percent-encoded) ``raw_path`` below a root.

    Raises BadPath for traversal (``..`` in any spelling), NUL, backslashes, control
    characters, invalid UTF-8, and (unless ``hidden``) names starting with a dot.
    """
    try:
        decoded = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("the path is not UTF-8") from None
    if "\\" in decoded or not _CONTROL.isdisjoint(decoded):
        raise BadPath("backslash or control character in the path")
    out = []
    for part in decoded.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise BadPath("'..' in the path")
        if part.startswith(".") and not hidden:
            raise HiddenPath("a hidden file")
        out.append(part)
    return out


@dataclass
class Opened:
    """A regular file opened below the root: its descriptor (the caller's to close) and
    its status."""

    fd: int
    stat: os.stat_result
    name: str            # the last segment actually opened (the index file's for a directory)


class IsDirectory(Exception):
    """The path names a directory but did not end with '/': the client should be sent to
    the path with the slash (so relative links in its index resolve)."""


class Root:
    """The directory files are served from (its real path, resolved once)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.real = os.path.realpath(path)

    def _inside(self, fd: int) -> bool:
        """Whether the open ``fd`` lies below the root (see the module docstring, 2.)."""
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return False
        return real == self.real or real.startswith(self.real.rstrip("/") + "/")

    def open(self, parts: list[str], index: str | None, slash: bool) -> Opened | None:
        """The regular file at ``parts`` (or the ``index`` of the directory there); None
        when there is none, or it resolves outside the root. ``slash``: the request path
        ended with '/'. Raises IsDirectory for a directory asked without its slash, and
        PermissionError when the file exists but cannot be read."""
        path = os.path.join(self.real, *parts)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
                return None
            raise
        try:
            if not self._inside(fd):
                return None
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                if index is None:
                    return None
                if not slash and parts:
                    raise IsDirectory()
                return self._open_index(fd, index)
            if not stat.S_ISREG(info.st_mode) or slash:
                return None
            opened, fd = Opened(fd, info, parts[-1] if parts else ""), -1
            return opened
        finally:
            if fd >= 0:
                os.close(fd)

    def _open_index(self, directory: int, index: str) -> Opened | None:
        try:
            fd = os.open(index, _OPEN_FLAGS, dir_fd=directory)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            info = os.fstat(fd)
            if not self._inside(fd) or not stat.S_ISREG(info.st_mode):
                return None
            opened, fd = Opened(fd, info, index), -1
            return opened
        finally:
            if fd >= 0:
                os.close(fd)

    def writer(self, parts: list[str]) -> "AtomicFile":
        """A temporary file in the directory of ``parts`` (created as needed, each level
        checked), to be renamed to ``parts[-1]`` by ``AtomicFile.commit``."""
        if not parts:
            raise BadPath("no file name")
        directory = os.open(self.real, _DIR_FLAGS)
        try:
            for part in parts[:-1]:
                try:
                    os.mkdir(part, 0o755, dir_fd=directory)
                except FileExistsError:
                    pass
                # O_NOFOLLOW: a symlink planted as a directory is refused, not followed.
                child = os.open(part, _DIR_FLAGS, dir_fd=directory)
                os.close(directory)
                directory = child
            if not self._inside(directory):
                raise BadPath("the directory resolves outside the root")
            return AtomicFile(directory, parts[-1])
        except BaseException:
            os.close(directory)
            raise


class AtomicFile:
    """A file written under a temporary name and renamed into place when complete, so a
    reader sees either the old file, or nothing, or the whole new one; never a part."""

    def __init__(self, directory: int, name: str) -> None:
        self.directory = directory
        self.name = name
        self.temp = f".{name}.{uuid.uuid4().hex}.tmp"
        self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, 0o644, dir_fd=directory)
        self.size = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.size += len(data)

    def commit(self) -> None:
        """Flush to disk and rename into place (atomic within the directory). The fsync
        comes first so a crash cannot leave a renamed but empty file; it runs on the
        thread pool, as a disk flush can take long enough to stall other connections."""
        run_blocking(os.fsync, self.fd)
        os.close(self.fd)
        self.fd = -1
        os.rename(self.temp, self.name, src_dir_fd=self.directory, dst_dir_fd=self.directory)
        self._close_directory()

    def abort(self) -> None:
        """Drop the temporary file (after an error or an unwanted response); safe to call
        after a commit that failed half-way."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            os.unlink(self.temp, dir_fd=self.directory)
        except FileNotFoundError:
            pass
        self._close_directory()

    def _close_directory(self) -> None:
        if self.directory >= 0:
            os.close(self.directory)
            self.directory = -1
