"""Where the config follower keeps its files, and its state as ``status`` reads it.

Apart from fleet/follower.py so that readers (``status``, the admin API) load neither
the etcd client nor ``requests``.
"""
from __future__ import annotations

import json
import os
from typing import Any

STATE_FILE = "follower.json"


def documents_dir(state_dir: str) -> str:
    """``state_dir/etcd``: the documents handed to the master, and the state file."""
    return os.path.join(state_dir, "etcd")


def read_state(state_dir: str) -> dict[str, Any] | None:
    """The follower's last written state, or None: ``state`` (following, unreachable,
    error, missing), ``since``, ``endpoint``, ``key``, ``error``, ``revision`` (the last
    one handed to the master)."""
    try:
        with open(os.path.join(documents_dir(state_dir), STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def stale_documents(state_dir: str) -> list[str]:
    """The document files in :func:`documents_dir` (everything but the state file): at a
    master's start none is wanted any more."""
    directory = documents_dir(state_dir)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return [os.path.join(directory, name) for name in names if name != STATE_FILE]
