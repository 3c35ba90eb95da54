"""Apache htpasswd files: ``user:hash`` lines, read for basic_auth.

Blank lines and lines starting with ``#`` are skipped. Each hash must be a format
``passwords.parse_hash`` accepts; a line that is not is an error naming the file and line
number, never a silently unusable user. The file is read when the config loads (so
``check`` reports its problems) and again by each worker building that config version: to
pick up an edited file, reload.
"""
from __future__ import annotations

from .passwords import Verifier, parse_hash


class HtpasswdError(ValueError):
    """The file cannot be read or has a bad line; the message says where."""


def read_htpasswd(path: str) -> list[tuple[str, str, Verifier]]:
    """``(user, hash text, verifier)`` for every entry of the file at ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise HtpasswdError(f"cannot read {path}: {exc}") from None
    entries: list[tuple[str, str, Verifier]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise HtpasswdError(f"{path} line {number}: expected user:hash")
        if user in seen:
            raise HtpasswdError(f"{path} line {number}: user {user!r} appears twice")
        try:
            verifier = parse_hash(hashed)
        except ValueError as exc:
            raise HtpasswdError(f"{path} line {number} (user {user!r}): {exc}") from None
        seen.add(user)
        entries.append((user, hashed, verifier))
    return entries
