"""Necessary conditions of a filter: what a request must have for the filter to hold.

The router index (:mod:`.index`) looks routers up by path, host and method. To know where
to file a router, this module reads its filter *spec* (the compiled closures cannot be read)
and derives, for each of those three *dimensions*, a set of :class:`Alternatives` that every
matching request satisfies: "the path equals one of E or starts with one of P". A dimension
left out is unconstrained (anything may match). The result is only ever a necessary
condition, never a sufficient one: the router still evaluates the whole filter.

The rules, by what the spec says (soundness is all that matters; a rule missing only
costs pruning):

- ``path``: a scalar or ``$eq`` → one exact value; ``$in`` → its values (an empty ``$in``
  holds for nothing, and so do empty alternatives); ``$starts_with`` → one prefix.
- ``host`` and ``header.host`` (the same value): ``$eq``/``$in`` as for the path, operands
  lower-cased exactly as the filter compiler does; prefixes are not indexed.
- ``method``: ``$eq``/``$in``, case-sensitive like the filter.
- Several keys or operators at one level, and ``$and``: every one must hold, so each
  yields a necessary condition; per dimension the narrowest is kept.
- ``$or``: a dimension is constrained only when *every* branch constrains it, by the union
  of the branches' alternatives.
- ``$not``, negative operators (``$ne``, ``$nin``, ``$not_*``), ``$contains``,
  ``$ends_with``, ``$matches``, ``$exists``, and every other part: no condition.

Operands go through :func:`.filters.operand_text`, the compiler's own conversion, so the
keys are the very strings the compiled filter compares with (``1`` → ``"1"``, ``true`` →
``"true"``, hosts lower-cased).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .filters import HOST_PARTS, FilterError, canonical_part, operand_text

PATH = "path"
HOST = "host"
METHOD = "method"
DIMENSIONS = (PATH, HOST, METHOD)

_DIMENSION_OF_PART = {"path": PATH, "method": METHOD, **{part: HOST for part in HOST_PARTS}}


@dataclass(frozen=True)
class Alternatives:
    """A value satisfies these when it equals one of ``exact`` or starts with a ``prefix``."""

    exact: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()

    def union(self, other: Alternatives) -> Alternatives:
        return Alternatives(self.exact | other.exact, self.prefixes | other.prefixes)

    def breadth(self) -> tuple[int, int]:
        """A sort key: the smaller, the fewer requests are likely to satisfy these.

        Exact values only beat anything with a prefix; among exact sets, fewer values;
        among prefixed ones, a longer shortest prefix.
        """
        if not self.prefixes:
            return (0, len(self.exact))
        return (1, -min(len(prefix) for prefix in self.prefixes))


Conditions = Mapping[str, Alternatives]
"""Dimension (:data:`PATH`, :data:`HOST`, :data:`METHOD`) → what it must satisfy."""


def necessary_conditions(spec: Mapping[str, Any]) -> dict[str, Alternatives]:
    """The necessary conditions of a filter spec that compiles (without its ``name``)."""
    return _of_spec(spec)


def _of_spec(spec: Any) -> dict[str, Alternatives]:
    if not isinstance(spec, Mapping):
        return {}
    found: list[dict[str, Alternatives]] = []
    for key, condition in spec.items():
        if key == "$and" and isinstance(condition, list):
            found.extend(_of_spec(item) for item in condition)
        elif key == "$or" and isinstance(condition, list):
            found.append(_any_of([_of_spec(item) for item in condition]))
        elif isinstance(key, str) and not key.startswith("$"):
            dimension = _DIMENSION_OF_PART.get(canonical_part(key) or "")
            if dimension is not None:
                alternatives = _of_condition(condition, fold=dimension == HOST,
                                             prefixes=dimension == PATH)
                if alternatives is not None:
                    found.append({dimension: alternatives})
        # $not and anything else: no necessary condition.
    return _all_of(found)


def _of_condition(condition: Any, fold: bool, prefixes: bool) -> Alternatives | None:
    """What one part's value must satisfy under ``condition``; None when unconstrained."""
    if isinstance(condition, list):
        return None
    if not isinstance(condition, Mapping):
        return _exact([condition], fold)
    found: list[Alternatives | None] = []
    for op, operand in condition.items():
        if op == "$eq":
            found.append(_exact([operand], fold))
        elif op == "$in" and isinstance(operand, list):
            found.append(_exact(operand, fold))
        elif op == "$starts_with" and prefixes:
            found.append(_prefix(operand, fold))
        elif op == "$and" and isinstance(operand, list):
            found.extend(_of_condition(item, fold, prefixes) for item in operand)
        elif op == "$or" and isinstance(operand, list) and operand:
            branches = [_of_condition(item, fold, prefixes) for item in operand]
            found.append(_union(branches))
    return _narrowest(a for a in found if a is not None)


def _exact(operands: list[Any], fold: bool) -> Alternatives | None:
    try:
        return Alternatives(exact=frozenset(operand_text(o, fold) for o in operands))
    except FilterError:
        return None


def _prefix(operand: Any, fold: bool) -> Alternatives | None:
    try:
        return Alternatives(prefixes=frozenset([operand_text(operand, fold)]))
    except FilterError:
        return None


def _union(branches: list[Alternatives | None]) -> Alternatives | None:
    """Alternatives of an ``$or``: None (unconstrained) when any branch is."""
    result = Alternatives()
    for branch in branches:
        if branch is None:
            return None
        result = result.union(branch)
    return result


def _narrowest(candidates: Iterable[Alternatives]) -> Alternatives | None:
    return min(candidates, key=Alternatives.breadth, default=None)


def _all_of(found: list[dict[str, Alternatives]]) -> dict[str, Alternatives]:
    """Conditions that all hold: per dimension, the narrowest of them."""
    result: dict[str, Alternatives] = {}
    for conditions in found:
        for dimension, alternatives in conditions.items():
            kept = result.get(dimension)
            if kept is None or alternatives.breadth() < kept.breadth():
                result[dimension] = alternatives
    return result


def _any_of(branches: list[dict[str, Alternatives]]) -> dict[str, Alternatives]:
    """Conditions of which one holds: the dimensions every branch constrains, united."""
    if not branches:
        return {}
    result: dict[str, Alternatives] = {}
    for dimension in DIMENSIONS:
        alternatives = [branch.get(dimension) for branch in branches]
        united = _union(alternatives)
        if united is not None:
            result[dimension] = united
    return result
