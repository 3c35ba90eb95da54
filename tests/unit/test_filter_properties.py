"""Properties of the filter language (routing/filters.py), checked with hypothesis.

Specs and requests are drawn from a tiny alphabet so that values collide often: a property
that holds only when nothing ever matches would prove nothing. Derandomized, so CI runs
the same examples every time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dakia_prefork.routing.filters import compile_filter

_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None)

_PARTS = ["path", "method", "host", "header.x-a", "query.q"]
_TEXT = st.text(alphabet="ab/", max_size=3)
_POSITIVE = ["$eq", "$contains", "$starts_with", "$ends_with"]
_NEGATED = {"$ne": "$eq", "$nin": "$in", "$not_contains": "$contains",
            "$not_starts_with": "$starts_with", "$not_ends_with": "$ends_with"}


@dataclass
class Subject:
    method: str = "GET"
    path: str = "/"
    scheme: str = "http"
    host: str = ""
    remote_addr: str = "127.0.0.1"
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query(self, name: str) -> str | None:
        return self.params.get(name)

    def value(self, part: str) -> str | None:
        """What the filter sees of ``part``: None when it is missing."""
        if part == "header.x-a":
            return self.headers.get("x-a")
        if part == "query.q":
            return self.params.get("q")
        if part == "host":
            return self.host or None
        return str(getattr(self, part))


@st.composite
def subjects(draw: st.DrawFn) -> Subject:
    headers = {"x-a": draw(_TEXT)} if draw(st.booleans()) else {}
    params = {"q": draw(_TEXT)} if draw(st.booleans()) else {}
    return Subject(method=draw(st.sampled_from(["GET", "POST", "a"])), path=draw(_TEXT),
                   host=draw(st.text(alphabet="ab.", max_size=3)), headers=headers,
                   params=params)


def _leaf(part: str, op: str, operand: Any) -> dict[str, Any]:
    return {part: {op: operand}}


_SCALAR_OPS = _POSITIVE + [op for op in _NEGATED if op != "$nin"]
leaves = st.builds(_leaf, st.sampled_from(_PARTS), st.sampled_from(_SCALAR_OPS), _TEXT) \
    | st.builds(_leaf, st.sampled_from(_PARTS), st.sampled_from(["$in", "$nin"]),
                st.lists(_TEXT, min_size=1, max_size=3)) \
    | st.builds(_leaf, st.sampled_from(_PARTS), st.just("$exists"), st.booleans())

specs = st.recursive(
    leaves,
    lambda inner: (st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3))
                   | st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3))
                   | st.builds(lambda x: {"$not": x}, inner)),
    max_leaves=6)


def holds(spec: dict[str, Any], subject: Subject) -> bool:
    return compile_filter(spec, "f")(subject)


@_SETTINGS
@given(specs, specs, subjects())
def test_and_or_not_are_boolean_algebra(a: dict[str, Any], b: dict[str, Any],
                                        subject: Subject) -> None:
    x, y = holds(a, subject), holds(b, subject)
    assert holds({"$and": [a, b]}, subject) == (x and y)
    assert holds({"$or": [a, b]}, subject) == (x or y)
    assert holds({"$not": a}, subject) == (not x)
    assert holds({"$not": {"$not": a}}, subject) == x
    # De Morgan, both ways.
    assert holds({"$not": {"$and": [a, b]}}, subject) == \
        holds({"$or": [{"$not": a}, {"$not": b}]}, subject)
    assert holds({"$not": {"$or": [a, b]}}, subject) == \
        holds({"$and": [{"$not": a}, {"$not": b}]}, subject)
    # One-element combinators are the element.
    assert holds({"$and": [a]}, subject) == x == holds({"$or": [a]}, subject)


@_SETTINGS
@given(st.sampled_from(_PARTS), _TEXT, _TEXT, subjects())
def test_keys_at_one_level_are_an_and(part: str, v: str, w: str, subject: Subject) -> None:
    a, b = {part: {"$contains": v}}, {"path": {"$starts_with": w}}
    together = {part: {"$contains": v}} | ({"path": {"$starts_with": w}} if part != "path"
                                           else {})
    expected = holds(a, subject) and (part == "path" or holds(b, subject))
    assert holds(together, subject) == expected
    # Several operators on one part, too.
    both = {part: {"$contains": v, "$ends_with": w}}
    assert holds(both, subject) == (holds(a, subject) and holds({part: {"$ends_with": w}},
                                                               subject))


@_SETTINGS
@given(st.sampled_from(_PARTS), _TEXT, st.lists(_TEXT, min_size=1, max_size=4), subjects())
def test_eq_in_and_scalars_agree(part: str, v: str, values: list[str],
                                 subject: Subject) -> None:
    assert holds({part: v}, subject) == holds({part: {"$eq": v}}, subject)
    assert holds({part: {"$in": [v]}}, subject) == holds({part: {"$eq": v}}, subject)
    assert holds({part: {"$in": values}}, subject) == \
        holds({"$or": [{part: {"$eq": x}} for x in values]}, subject)
    assert holds({part: {"$in": values + values}}, subject) == \
        holds({part: {"$in": values}}, subject)


@_SETTINGS
@given(st.sampled_from(_PARTS), st.sampled_from(sorted(_NEGATED)), _TEXT, subjects())
def test_each_negative_operator_is_the_not_of_its_positive(part: str, negative: str, v: str,
                                                           subject: Subject) -> None:
    operand: Any = [v] if negative == "$nin" else v
    assert holds({part: {negative: operand}}, subject) == \
        holds({"$not": {part: {_NEGATED[negative]: operand}}}, subject)
    assert holds({part: {"$exists": False}}, subject) == \
        holds({"$not": {part: {"$exists": True}}}, subject)


@_SETTINGS
@given(st.sampled_from(_PARTS), _TEXT, subjects())
def test_operators_mean_what_python_means(part: str, v: str, subject: Subject) -> None:
    value = subject.value(part)
    if part == "host":
        v = v.lower()
    assert holds({part: {"$exists": True}}, subject) == (value is not None)
    assert holds({part: {"$eq": v}}, subject) == (value == v)
    assert holds({part: {"$contains": v}}, subject) == (value is not None and v in value)
    assert holds({part: {"$starts_with": v}}, subject) == \
        (value is not None and value.startswith(v))
    assert holds({part: {"$ends_with": v}}, subject) == \
        (value is not None and value.endswith(v))
    # $matches (on RE2) with an escaped literal agrees with the string operators.
    literal = re.escape(v)
    assert holds({part: {"$matches": literal}}, subject) == holds({part: {"$contains": v}},
                                                                  subject)
    assert holds({part: {"$matches": "^" + literal}}, subject) == \
        holds({part: {"$starts_with": v}}, subject)
    assert holds({part: {"$matches": literal + "$"}}, subject) == \
        holds({part: {"$ends_with": v}}, subject)
    assert holds({part: {"$matches": "^" + literal + "$"}}, subject) == \
        holds({part: {"$eq": v}}, subject)


@_SETTINGS
@given(st.text(alphabet="abAB.", max_size=4), st.text(alphabet="ab.", max_size=4))
def test_host_compares_without_case(operand: str, host: str) -> None:
    subject = Subject(host=host)
    lower = operand.lower()
    for op in ("$eq", "$contains", "$starts_with", "$ends_with", "$ne"):
        assert holds({"host": {op: operand}}, subject) == holds({"host": {op: lower}}, subject)
        assert holds({"header.host": {op: operand}}, subject) == \
            holds({"host": {op: lower}}, subject)
    assert holds({"host": {"$matches": re.escape(operand)}}, subject) == \
        holds({"host": {"$contains": lower}}, subject)
    # Every other part keeps case.
    path_subject = Subject(path=host)
    assert holds({"path": {"$eq": operand}}, path_subject) == (host == operand)
