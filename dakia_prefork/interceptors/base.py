"""The interceptor base class, its phases, and the registry of interceptors by name.

Phases, in the order a request meets them (DESIGN.md, "Request path"):

========================  ===================================================================
``init``                  first, for every interceptor of the request, before any answers:
                          set up what later phases need (``ctx.vars``)
``request_filter``        inspect the client's request; answer on its own (auth, CORS
                          preflight, short-circuit)
``upstream_proxy_filter`` the last word before the upstream is called: answer, or let it go
``pre_upstream_request``  a node is chosen (``ctx.node``): change the request it will get
``post_upstream_response`` the upstream's response head is in: change status, headers, body
``pre_downstream_response`` every response the client gets, the gateway's own answers too
========================  ===================================================================

The four request-side hooks return ``Reply | None``: a Reply is sent instead of calling the
upstream, and the remaining request-side hooks are skipped. The two response-side hooks
change ``ctx.response`` in place. Hooks run in config order within a phase; an interceptor
runs for a request when its ``filter`` (if any) holds for the request as the client sent
it, decided once, so one that ran ``request_filter`` also sees the response.

An interceptor's config is validated when the config loads: ``schema.json`` gives the
shape of its ``config`` (and of Dakia's ``rewrite`` and ``response`` maps where it takes
them), then ``check`` does what a schema cannot (regexes compile, hashes parse, files
read) and may normalise the entry in place (a plaintext password becomes a hash). The
constructor builds from that normalised entry in each worker, for each config version.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .registry import BUILTINS, IMPLEMENTED

if TYPE_CHECKING:
    from .context import Context, Reply
    from .resources import Resources

PHASES: tuple[str, ...] = ("init", "request_filter", "upstream_proxy_filter",
                           "pre_upstream_request", "post_upstream_response",
                           "pre_downstream_response")
REQUEST_PHASES = PHASES[:4]
"""The phases whose hooks may answer with a Reply."""

Problem = tuple[str, str]
"""A config problem: (location relative to the interceptor entry, message)."""

Hook = Callable[["Context"], Any]


class ConfigProblems(ValueError):
    """Every problem found while building an interceptor from its entry."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{where}: {message}" for where, message in problems))
        self.problems = problems


class Problems:
    """Collects an interceptor's config problems so one run reports them all."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.found.append((where, message))

    def raise_any(self) -> None:
        if self.found:
            raise ConfigProblems(self.found)


def problems_of(error: ValueError) -> list[Problem]:
    """The problems a constructor raised: ConfigProblems, or ``"where: message"`` text."""
    if isinstance(error, ConfigProblems):
        return error.problems
    where, sep, message = str(error).partition(": ")
    return [(where, message)] if sep else [("config", str(error))]


class Interceptor:
    """Subclasses set ``name`` and override the hooks they need (the others cost nothing:
    a chain calls only the hooks a class overrides)."""

    name: ClassVar[str] = ""

    def __init__(self, entry: dict[str, Any]) -> None:
        """Build from a normalised config entry (``name``, ``enabled``, ``filter``,
        ``config`` and, where given, ``rewrite`` / ``response``). Raise ValueError with a
        message starting with the key at fault (``config.htpasswd_file: ...``) if the
        entry cannot be used after all (a file gone since the config was checked)."""
        self.entry = entry

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        """The problems of a schema-valid ``entry``; may normalise it in place. Relative
        paths in it resolve against ``base_dir``.

        The default builds the interceptor and reports what its constructor raised:
        building is the most complete check there is. A subclass that normalises (hashes
        a plaintext password, makes a path absolute) does so, then calls this.
        """
        try:
            cls(entry)
        except ValueError as exc:
            return problems_of(exc)
        return []

    def attach(self, resources: Resources, ident: str) -> None:
        """Called once after construction, in the process that will run the chain, with
        that worker's ``resources`` (resources.py: shared memory, per-worker pools) and a
        stable identity of this entry, ``<gateway name>/<index in its interceptors>``,
        the same in every worker and on every machine running the same config. The
        default ignores both; building must not depend on them (``check`` never calls
        this)."""
        return None

    def init(self, ctx: Context) -> Reply | None:
        return None

    def request_filter(self, ctx: Context) -> Reply | None:
        return None

    def upstream_proxy_filter(self, ctx: Context) -> Reply | None:
        return None

    def pre_upstream_request(self, ctx: Context) -> Reply | None:
        return None

    def post_upstream_response(self, ctx: Context) -> None:
        return None

    def pre_downstream_response(self, ctx: Context) -> None:
        return None


def hooks_of(interceptor: Interceptor) -> tuple[Hook | None, ...]:
    """The bound hook of each phase that ``interceptor``'s class overrides, else None."""
    cls = type(interceptor)
    return tuple(getattr(interceptor, phase)
                 if getattr(cls, phase) is not getattr(Interceptor, phase) else None
                 for phase in PHASES)


class Registry(MutableMapping[str, type[Interceptor]]):
    """Interceptor classes by config name: every built-in this version implements
    (registry.py), whose module is imported the first time it is looked up, and every class
    given to ``register``. Iterating lists names without importing anything."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Interceptor]] = {}

    def __getitem__(self, name: str) -> type[Interceptor]:
        try:
            return self._classes[name]
        except KeyError:
            pass
        builtin = BUILTINS.get(name)
        if builtin is None or builtin.path is None:
            raise KeyError(name)
        module_name, _, attribute = builtin.path.partition(":")
        cls: type[Interceptor] = getattr(importlib.import_module(module_name), attribute)
        return self._classes.setdefault(name, cls)     # the module's @register put it there

    def __setitem__(self, name: str, cls: type[Interceptor]) -> None:
        self._classes[name] = cls

    def __delitem__(self, name: str) -> None:
        del self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in IMPLEMENTED

    def __iter__(self) -> Iterator[str]:
        yield from self._classes
        yield from sorted(IMPLEMENTED.difference(self._classes))

    def __len__(self) -> int:
        return len(IMPLEMENTED.union(self._classes))


REGISTRY = Registry()
"""The interceptors this version implements, by config name."""


def register(cls: type[Interceptor]) -> type[Interceptor]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no name")
    REGISTRY[cls.name] = cls
    return cls
