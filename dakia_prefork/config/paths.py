"""Relative file paths in a config are relative to the config file's directory."""
from __future__ import annotations

import os


def resolve(path: str, base_dir: str) -> str:
    """``path`` made absolute against ``base_dir`` and normalised (``..`` collapsed).

    Nothing is required to exist: a config checked on one machine may name paths that
    only exist where it runs.
    """
    return os.path.normpath(os.path.join(os.path.abspath(base_dir), path))
