"""Which build of the request path this installation runs: pure Python or mypyc-compiled.

A compiled build (setup.py, ``DAKIA_MYPYC=1``) puts C extensions beside the modules they
replace, and Python imports those first. Told by looking for the files rather than by
importing the modules, so the master can say it without loading the HTTP stack.
"""
from __future__ import annotations

import glob
import os

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def compiled() -> bool:
    """True when the request path's modules are the compiled ones."""
    return bool(glob.glob(os.path.join(_PACKAGE, "http", "exchange.*.so")))


def describe() -> str:
    return "compiled (mypyc)" if compiled() else "pure Python"
