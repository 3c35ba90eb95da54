"""Suite-wide guard: each run tests the build it is meant to.

``make test-compiled`` puts the mypyc extensions beside the modules and sets
DAKIA_EXPECT_COMPILED=1; any other run must see the pure-Python modules. Without this, a
run whose extensions did not load (or a pure run with leftover ones) would pass on the
wrong modules and prove nothing about the build it claims.
"""
from __future__ import annotations

import os

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    from dakia_prefork.http import exchange
    from dakia_prefork.http.engines import httptools_engine
    expected = os.environ.get("DAKIA_EXPECT_COMPILED") == "1"
    for module in (exchange, httptools_engine):
        if (module.__file__ or "").endswith(".so") != expected:
            raise pytest.UsageError(
                f"{module.__name__} is {module.__file__}, but this run is for the "
                f"{'compiled' if expected else 'pure-Python'} build (make uncompile removes "
                "leftover extensions; make test-compiled runs the compiled one)")
