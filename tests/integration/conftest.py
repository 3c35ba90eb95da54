"""Fixtures that start real gateways and upstreams and always stop them."""
from __future__ import annotations

import importlib.util
from typing import Any, Callable, Iterator

import pytest

from .harness import Gateway, Upstream, free_port, gateway_config

ENGINES = ["h11", "httptools"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each HTTP-path test runs under both parser engines."""
    if request.param == "httptools" and importlib.util.find_spec("httptools") is None:
        pytest.fail("httptools is not installed: pip install -e '.[fast,test]'")
    return request.param


@pytest.fixture
def upstreams() -> Iterator[Callable[..., Upstream]]:
    made: list[Upstream] = []

    def make(*args: Any, **kwargs: Any) -> Upstream:
        up = Upstream(*args, **kwargs)
        made.append(up)
        return up

    yield make
    for up in made:
        up.close()


@pytest.fixture
def gateways(tmp_path) -> Iterator[Callable[..., Gateway]]:
    made: list[Gateway] = []

    def make(upstream_specs: list[dict[str, Any]], *, engine: str = "h11", workers: int = 1,
             extra: dict[str, Any] | None = None, gateway: dict[str, Any] | None = None,
             start: bool = True, args: list[str] | None = None) -> Gateway:
        directory = tmp_path / f"gw{len(made)}"
        directory.mkdir()
        config = gateway_config(str(directory), free_port(), upstream_specs, engine=engine,
                                workers=workers, extra=extra, gateway=gateway)
        gw = Gateway(str(directory), config, extra_args=args or [])
        made.append(gw)
        return gw.start() if start else gw

    yield make
    for gw in made:
        gw.stop()
