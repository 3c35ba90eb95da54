"""The seam between a worker and its interceptors: ``attach(resources, ident)``."""
from __future__ import annotations

from typing import Any

from dakia_prefork.interceptors import Interceptor, build_chain
from dakia_prefork.interceptors.base import REGISTRY
from dakia_prefork.interceptors.resources import Resources


class Recorder(Interceptor):
    name = "test_recorder"
    attached: list[tuple[Resources, str]] = []

    def attach(self, resources: Resources, ident: str) -> None:
        self.attached.append((resources, ident))


def test_every_built_interceptor_is_attached_with_a_stable_ident(monkeypatch: Any) -> None:
    monkeypatch.setitem(REGISTRY, "test_recorder", Recorder)
    Recorder.attached = []
    entry = {"name": "test_recorder", "enabled": True, "filter": None, "config": {}}
    gateway = {"name": "edge", "interceptors": [dict(entry, enabled=False), entry, entry]}
    resources = Resources()
    build_chain(gateway, {}, "gateways[0]", resources)
    assert [(r is resources, ident) for r, ident in Recorder.attached] == [
        (True, "edge/1"), (True, "edge/2")]
    Recorder.attached = []
    build_chain(gateway, {}, "gateways[0]")                  # as check does: no worker
    assert all(r.buckets is None for r, _ in Recorder.attached)


def test_kept_objects_outlive_chains() -> None:
    resources = Resources()
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    first = resources.keep(("pool", "redis://a"), make)
    assert resources.keep(("pool", "redis://a"), make) is first
    assert resources.keep(("pool", "redis://b"), make) is not first
    assert len(made) == 2
