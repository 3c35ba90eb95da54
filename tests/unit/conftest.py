"""Unit-test fixtures shared by several modules."""
from __future__ import annotations

import pytest

from children import SPAWNED, kill


@pytest.fixture(autouse=True)
def no_child_survives():
    """A failing test must not leave a child waiting in ``signal.pause``."""
    yield
    while SPAWNED:
        kill(SPAWNED[-1])
