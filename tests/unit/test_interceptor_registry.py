"""interceptors/registry.py: the leaf list of built-ins agrees with their implementations."""
from __future__ import annotations

import importlib

import pytest

from dakia_prefork.config.interceptors import KNOWN_INTERCEPTORS
from dakia_prefork.interceptors.base import REGISTRY, Interceptor
from dakia_prefork.interceptors.registry import BUILTINS, IMPLEMENTED, NAMES


@pytest.mark.parametrize("name", sorted(IMPLEMENTED))
def test_each_path_is_the_registered_class_of_that_name(name: str) -> None:
    builtin = BUILTINS[name]
    assert builtin.path is not None
    module, _, attribute = builtin.path.partition(":")
    cls = getattr(importlib.import_module(module), attribute)
    assert issubclass(cls, Interceptor) and cls.name == name
    assert REGISTRY[name] is cls


@pytest.mark.parametrize("name", sorted(IMPLEMENTED))
def test_pure_means_attach_takes_nothing_from_the_worker(name: str) -> None:
    overrides = REGISTRY[name].attach is not Interceptor.attach
    assert BUILTINS[name].pure is not overrides, (
        f"{name}: the registry says pure={BUILTINS[name].pure}, and its class "
        f"{'overrides' if overrides else 'does not override'} attach")


def test_config_knows_exactly_the_registry_names() -> None:
    assert KNOWN_INTERCEPTORS == NAMES
    # Every name this version knows is implemented (a name may be reserved with no path).
    assert NAMES == IMPLEMENTED
    assert set(REGISTRY) >= IMPLEMENTED
    with pytest.raises(KeyError):
        REGISTRY["no-such-interceptor"]
