"""Necessary conditions of filter specs (routing/conditions.py): what the index may use.

Every expected value here is a condition that any request matching the spec satisfies;
``{}`` means the spec constrains nothing the index looks up.
"""
from __future__ import annotations

from typing import Any

import pytest

from dakia_prefork.routing.conditions import (
    HOST,
    METHOD,
    PATH,
    Alternatives,
    necessary_conditions,
)
from dakia_prefork.routing.filters import compile_filter


def exact(*values: str) -> Alternatives:
    return Alternatives(exact=frozenset(values))


def prefixes(*values: str) -> Alternatives:
    return Alternatives(prefixes=frozenset(values))


@pytest.mark.parametrize(("spec", "expected"), [
    ({"path": "/a"}, {PATH: exact("/a")}),
    ({"ds.req.path": {"$eq": "/a"}}, {PATH: exact("/a")}),
    ({"path": {"$starts_with": "/a"}}, {PATH: prefixes("/a")}),
    ({"path": {"$in": ["/a", "/b"]}}, {PATH: exact("/a", "/b")}),
    ({"path": {"$in": []}}, {PATH: exact()}),
    ({"path": 1}, {PATH: exact("1")}),
    ({"path": {"$eq": True}}, {PATH: exact("true")}),
    # Several operators or keys: all hold, the narrowest is kept.
    ({"path": {"$starts_with": "/a", "$eq": "/a/b"}}, {PATH: exact("/a/b")}),
    ({"path": {"$starts_with": "/a", "$and": [{"$starts_with": "/a/b"}]}},
     {PATH: prefixes("/a/b")}),
    ({"path": {"$starts_with": "/a"}, "method": "GET", "host": "A.Example"},
     {PATH: prefixes("/a"), METHOD: exact("GET"), HOST: exact("a.example")}),
    ({"$and": [{"path": {"$starts_with": "/a"}}, {"header.host": {"$in": ["X.com"]}}]},
     {PATH: prefixes("/a"), HOST: exact("x.com")}),
    ({"ds.req.header.Host": "b.com", "host": {"$in": ["b.com", "c.com"]}},
     {HOST: exact("b.com")}),
    # $or: only what every branch constrains, united.
    ({"$or": [{"path": {"$starts_with": "/a"}, "method": "GET"}, {"path": "/b"}]},
     {PATH: Alternatives(exact=frozenset(["/b"]), prefixes=frozenset(["/a"]))}),
    ({"path": {"$or": [{"$starts_with": "/a"}, {"$starts_with": "/b"}]}},
     {PATH: prefixes("/a", "/b")}),
    ({"path": {"$or": [{"$starts_with": "/a"}, {"$ne": "/b"}]}}, {}),
    ({"$or": [{"path": "/a"}, {"method": "GET"}]}, {}),
    ({"$or": [{"path": "/a"}], "method": "GET"}, {PATH: exact("/a"), METHOD: exact("GET")}),
    # Not analysable: negations, other operators, other parts.
    ({"$not": {"path": "/a"}}, {}),
    ({"path": {"$not": {"$eq": "/a"}}}, {}),
    ({"path": {"$ne": "/a"}}, {}),
    ({"path": {"$nin": ["/a"]}}, {}),
    ({"path": {"$matches": "^/a"}}, {}),
    ({"path": {"$contains": "/a"}}, {}),
    ({"path": {"$ends_with": "/a"}}, {}),
    ({"path": {"$exists": True}}, {}),
    ({"host": {"$starts_with": "a."}}, {}),
    ({"method": {"$starts_with": "G"}}, {}),
    ({"scheme": "https", "remote_addr": "127.0.0.1", "header.x": "1", "query.q": "1"}, {}),
])
def test_necessary_conditions(spec: dict[str, Any], expected: dict[str, Alternatives]) -> None:
    compile_filter(spec, "f")
    assert necessary_conditions(spec) == expected


def test_breadth_orders_exact_before_prefixes_and_long_prefixes_first() -> None:
    assert exact("/a", "/b").breadth() < prefixes("/abc").breadth()
    assert exact("/a").breadth() < exact("/a", "/b").breadth()
    assert prefixes("/abc").breadth() < prefixes("/a").breadth()
    assert prefixes("/abc").breadth() < prefixes("/abc", "/").breadth()
