"""The filter language (routing/filters.py): operators, parts, combinators, errors."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from dakia_prefork.routing.filters import (
    OPERATORS,
    FilterError,
    canonical_part,
    compile_filter,
    normalise_filter_spec,
)
from dakia_prefork.routing.subject import FilterSubject


@dataclass
class FakeSubject:
    """A FilterSubject with plain values; headers keyed by lower-case name."""

    method: str = "GET"
    path: str = "/payment/42"
    scheme: str = "http"
    host: str = "example.com"
    remote_addr: str = "10.1.2.3"
    client_subject: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query(self, name: str) -> str | None:
        return self.params.get(name)


def matches(spec: dict[str, Any], subject: FilterSubject | None = None) -> bool:
    return compile_filter(spec, "f")(subject if subject is not None else FakeSubject())


def error_of(spec: Any) -> FilterError:
    with pytest.raises(FilterError) as info:
        compile_filter(spec, "gateways[0].filters[2]")
    return info.value


def test_fake_subject_satisfies_the_protocol() -> None:
    subject: FilterSubject = FakeSubject()
    assert subject.header("x") is None


# --- operators: a present value --------------------------------------------------------

@pytest.mark.parametrize(("condition", "expected"), [
    ("/payment/42", True),
    ("/payment", False),
    ({"$eq": "/payment/42"}, True),
    ({"$eq": "/PAYMENT/42"}, False),
    ({"$ne": "/payment/42"}, False),
    ({"$ne": "/other"}, True),
    ({"$in": ["/a", "/payment/42"]}, True),
    ({"$in": ["/a", "/b"]}, False),
    ({"$in": []}, False),
    ({"$nin": ["/a", "/payment/42"]}, False),
    ({"$nin": ["/a", "/b"]}, True),
    ({"$contains": "ment/4"}, True),
    ({"$contains": "xyz"}, False),
    ({"$not_contains": "ment/4"}, False),
    ({"$not_contains": "xyz"}, True),
    ({"$starts_with": "/payment"}, True),
    ({"$starts_with": "/search"}, False),
    ({"$not_starts_with": "/payment"}, False),
    ({"$not_starts_with": "/search"}, True),
    ({"$ends_with": "/42"}, True),
    ({"$ends_with": "/43"}, False),
    ({"$not_ends_with": "/42"}, False),
    ({"$not_ends_with": "/43"}, True),
    ({"$matches": "^/payment/[0-9]+$"}, True),
    ({"$matches": "[0-9]{3}"}, False),
    ({"$matches": "ment"}, True),
    ({"$exists": True}, True),
    ({"$exists": False}, False),
])
def test_operator_on_a_present_value(condition: Any, expected: bool) -> None:
    assert matches({"path": condition}) is expected


# --- operators: a missing part (Mongo semantics) ---------------------------------------

@pytest.mark.parametrize(("condition", "expected"), [
    ("x", False),
    ({"$eq": "x"}, False),
    ({"$ne": "x"}, True),
    ({"$in": ["x"]}, False),
    ({"$nin": ["x"]}, True),
    ({"$contains": "x"}, False),
    ({"$not_contains": "x"}, True),
    ({"$starts_with": "x"}, False),
    ({"$not_starts_with": "x"}, True),
    ({"$ends_with": "x"}, False),
    ({"$not_ends_with": "x"}, True),
    ({"$matches": ".*"}, False),
    ({"$exists": True}, False),
    ({"$exists": False}, True),
    ({"$not": {"$eq": "x"}}, True),
    ({"$not": {"$exists": False}}, False),
])
@pytest.mark.parametrize("part", ["header.x-missing", "query.missing"])
def test_operator_on_a_missing_part(part: str, condition: Any, expected: bool) -> None:
    assert matches({part: condition}) is expected


def test_every_operator_is_covered_by_the_tables_above() -> None:
    assert OPERATORS == {"$eq", "$ne", "$in", "$nin", "$contains", "$not_contains",
                         "$starts_with", "$not_starts_with", "$ends_with",
                         "$not_ends_with", "$matches", "$exists"}


def test_empty_host_and_remote_addr_count_as_missing() -> None:
    no_host = FakeSubject(host="", remote_addr="")
    assert matches({"host": {"$exists": False}}, no_host)
    assert matches({"header.host": {"$exists": False}}, no_host)
    assert matches({"remote_addr": {"$exists": False}}, no_host)
    assert matches({"remote_addr": {"$ne": "10.1.2.3"}}, no_host)
    assert not matches({"host": {"$exists": False}})
    assert matches({"remote_addr": {"$exists": True}})


def test_present_but_empty_header_exists() -> None:
    subject = FakeSubject(headers={"x-empty": ""})
    assert matches({"header.x-empty": {"$exists": True}}, subject)
    assert matches({"header.x-empty": ""}, subject)
    assert not matches({"header.x-empty": {"$contains": "a"}}, subject)


# --- parts ------------------------------------------------------------------------------

def test_each_part_reads_its_value() -> None:
    subject = FakeSubject(method="POST", path="/p", scheme="https", host="api.example.com",
                          remote_addr="::1", headers={"x-api-key": "k"},
                          params={"page": "2"})
    assert matches({"method": "POST", "path": "/p", "scheme": "https",
                    "host": "api.example.com", "remote_addr": "::1",
                    "header.x-api-key": "k", "query.page": "2"}, subject)
    for part, wrong in [("method", "GET"), ("path", "/q"), ("scheme", "http"),
                        ("host", "example.com"), ("remote_addr", "127.0.0.1"),
                        ("header.x-api-key", "j"), ("query.page", "3")]:
        assert not matches({part: wrong}, subject), part


def test_prefixes_are_stripped() -> None:
    subject = FakeSubject(headers={"x-a": "1"}, params={"q": "v"})
    assert matches({"ds.req.path": {"$starts_with": "/payment"}}, subject)
    assert matches({"req.path": {"$starts_with": "/payment"}}, subject)
    assert matches({"ds.req.header.x-a": "1", "req.query.q": "v"}, subject)
    assert not matches({"ds.req.method": "POST"}, subject)


def test_header_names_are_case_insensitive() -> None:
    subject = FakeSubject(headers={"x-api-key": "secret"})
    assert matches({"header.X-API-Key": "secret"}, subject)
    assert matches({"header.x-api-key": "secret"}, subject)
    assert not matches({"header.X-Api-Key": "SECRET"}, subject)


def test_header_host_is_the_normalised_host_not_the_raw_header() -> None:
    subject = FakeSubject(host="example.net", headers={"host": "Example.NET:8080"})
    assert matches({"header.host": "example.net"}, subject)
    assert matches({"header.Host": "Example.Net"}, subject)
    assert matches({"ds.req.header.host": "example.net"}, subject)


def test_host_comparisons_ignore_case() -> None:
    subject = FakeSubject(host="api.example.com")
    assert matches({"host": "API.Example.COM"}, subject)
    assert matches({"host": {"$in": ["X.com", "API.EXAMPLE.COM"]}}, subject)
    assert matches({"host": {"$ends_with": ".Example.com"}}, subject)
    assert matches({"host": {"$starts_with": "API."}}, subject)
    assert matches({"host": {"$contains": "EXAMPLE"}}, subject)
    assert matches({"host": {"$matches": "^API\\."}}, subject)
    assert not matches({"host": {"$ne": "API.example.com"}}, subject)
    assert not matches({"host": {"$nin": ["Api.Example.Com"]}}, subject)


def test_other_comparisons_are_case_sensitive() -> None:
    assert not matches({"method": "get"})
    assert not matches({"path": {"$matches": "PAYMENT"}})


def test_query_names_are_case_sensitive_and_values_come_decoded() -> None:
    subject = FakeSubject(params={"Page": "a b/c"})
    assert matches({"query.Page": "a b/c"}, subject)
    assert not matches({"query.page": {"$exists": True}}, subject)


# --- operands ---------------------------------------------------------------------------

def test_integers_and_booleans_compare_as_text() -> None:
    subject = FakeSubject(headers={"x-n": "42", "x-flag": "true", "x-off": "false"},
                          params={"n": "7"})
    assert matches({"header.x-n": 42, "header.x-flag": True, "header.x-off": False}, subject)
    assert matches({"header.x-n": {"$in": [1, 42]}, "query.n": {"$eq": 7}}, subject)
    assert matches({"header.x-n": {"$starts_with": 4}}, subject)
    assert not matches({"header.x-flag": False}, subject)
    assert not matches({"header.x-flag": "True"}, subject)


def test_matches_uses_search_not_fullmatch() -> None:
    assert matches({"path": {"$matches": "[0-9]+"}})
    assert not matches({"path": {"$matches": "^[0-9]+"}})


# --- combinators ------------------------------------------------------------------------

def test_several_keys_at_one_level_all_must_hold() -> None:
    assert matches({"path": {"$starts_with": "/payment"}, "method": "GET"})
    assert not matches({"path": {"$starts_with": "/payment"}, "method": "POST"})
    assert not matches({"path": {"$starts_with": "/x"}, "method": "GET"})


def test_several_operators_on_one_part_all_must_hold() -> None:
    assert matches({"path": {"$starts_with": "/pay", "$ends_with": "42", "$ne": "/x"}})
    assert not matches({"path": {"$starts_with": "/pay", "$ends_with": "43"}})


def test_top_level_and_or_not() -> None:
    assert matches({"$and": [{"method": "GET"}, {"path": {"$contains": "pay"}}]})
    assert not matches({"$and": [{"method": "GET"}, {"path": {"$contains": "x"}}]})
    assert matches({"$or": [{"method": "POST"}, {"path": {"$contains": "pay"}}]})
    assert not matches({"$or": [{"method": "POST"}, {"path": {"$contains": "x"}}]})
    assert matches({"$not": {"method": "POST"}})
    assert not matches({"$not": {"method": "GET"}})


def test_or_and_not_with_many_branches_short_circuit_correctly() -> None:
    branches = [{"method": m} for m in ("PUT", "PATCH", "DELETE", "GET")]
    assert matches({"$or": branches})
    assert not matches({"$or": branches[:3]})
    assert matches({"$and": [{"scheme": "http"}, {"method": "GET"}, {"host": "example.com"}]})
    assert not matches({"$and": [{"scheme": "http"}, {"method": "PUT"}, {"host": "x"}]})


def test_part_level_combinators() -> None:
    assert matches({"path": {"$or": [{"$starts_with": "/search"}, {"$ends_with": "/42"}]}})
    assert not matches({"path": {"$or": [{"$starts_with": "/search"}, "/x"]}})
    assert matches({"path": {"$or": ["/x", "/payment/42"]}})
    assert matches({"path": {"$and": [{"$contains": "pay"}, {"$contains": "42"}]}})
    assert not matches({"path": {"$and": [{"$contains": "pay"}, {"$contains": "43"}]}})
    assert matches({"path": {"$not": {"$starts_with": "/search"}}})
    assert not matches({"path": {"$not": "/payment/42"}})


def test_nested_combinators() -> None:
    spec = {
        "$or": [
            {"$and": [{"method": "POST"}, {"path": {"$starts_with": "/payment"}}]},
            {"$not": {"$or": [{"scheme": "http"}, {"header.x-internal": {"$exists": True}}]}},
        ],
        "host": {"$not": {"$in": ["blocked.example"]}},
    }
    assert not matches(spec, FakeSubject(method="GET"))
    assert matches(spec, FakeSubject(method="POST"))
    assert matches(spec, FakeSubject(method="GET", scheme="https"))
    assert not matches(spec, FakeSubject(method="GET", scheme="https",
                                         headers={"x-internal": "1"}))
    assert not matches(spec, FakeSubject(method="POST", host="blocked.example"))


def test_combinators_mixed_with_parts_at_one_level() -> None:
    spec = {"method": "GET", "$or": [{"query.a": "1"}, {"query.b": "2"}]}
    assert matches(spec, FakeSubject(params={"b": "2"}))
    assert not matches(spec, FakeSubject(params={"c": "3"}))
    assert not matches(spec, FakeSubject(method="PUT", params={"a": "1"}))


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "path", "message"), [
    ({"path": {"$matches": "(("}}, "gateways[0].filters[2].path.$matches",
     "invalid regex: missing ): (("),
    ({"ds.req.path": {"$matches": "[a"}}, "gateways[0].filters[2].ds.req.path.$matches",
     "invalid regex: missing ]: [a"),
    ({"path": {"$matches": "(?<=/)x"}}, "gateways[0].filters[2].path.$matches",
     "invalid regex: invalid perl operator: (?<=: RE2 does not support this"),
    ({"pth": "/x"}, "gateways[0].filters[2].pth", "unknown filter part 'pth'"),
    ({"header.": "x"}, "gateways[0].filters[2].header.", "unknown filter part"),
    ({"header.bad name": "x"}, "gateways[0].filters[2].header.bad name",
     "unknown filter part"),
    ({"query.": "x"}, "gateways[0].filters[2].query.", "unknown filter part"),
    ({"path": {"$regex": "x"}}, "gateways[0].filters[2].path.$regex",
     "unknown operator '$regex'"),
    ({"path": {"starts_with": "x"}}, "gateways[0].filters[2].path.starts_with",
     "expected an operator"),
    ({"$nor": []}, "gateways[0].filters[2].$nor", "unknown combinator '$nor'"),
    ({"$eq": "x"}, "gateways[0].filters[2].$eq", "unknown combinator '$eq'"),
    ({"path": {"$in": "/x"}}, "gateways[0].filters[2].path.$in", "expected a list"),
    ({"path": {"$nin": {"a": 1}}}, "gateways[0].filters[2].path.$nin", "expected a list"),
    ({"path": {"$in": ["/a", ["/b"]]}}, "gateways[0].filters[2].path.$in[1]",
     "expected a string, integer or boolean"),
    ({"path": {"$exists": "yes"}}, "gateways[0].filters[2].path.$exists",
     "expected true or false"),
    ({"path": {"$matches": 5}}, "gateways[0].filters[2].path.$matches",
     "expected a regex string"),
    ({"path": {"$contains": {"a": 1}}}, "gateways[0].filters[2].path.$contains",
     "expected a string, integer or boolean"),
    ({"header.x-v": 1.5}, "gateways[0].filters[2].header.x-v", "quote it"),
    ({"header.x-v": None}, "gateways[0].filters[2].header.x-v", "$exists: false"),
    ({"path": ["/a", "/b"]}, "gateways[0].filters[2].path", "use {$in: [...]}"),
    ({"path": {}}, "gateways[0].filters[2].path", "empty condition"),
    ({}, "gateways[0].filters[2]", "empty filter"),
    ({"$and": []}, "gateways[0].filters[2].$and", "expects a non-empty list"),
    ({"$or": {"path": "/x"}}, "gateways[0].filters[2].$or", "expects a non-empty list"),
    ({"$or": [{"path": "/x"}, {"bad": 1}]}, "gateways[0].filters[2].$or[1].bad",
     "unknown filter part 'bad'"),
    ({"$or": [{"path": "/x"}, "/y"]}, "gateways[0].filters[2].$or[1]",
     "expected a mapping of parts to conditions"),
    ({"$not": {"path": {"$matches": "("}}}, "gateways[0].filters[2].$not.path.$matches",
     "invalid regex"),
    ({"path": {"$or": [{"$eq": "/a"}, {"$bogus": 1}]}},
     "gateways[0].filters[2].path.$or[1].$bogus", "unknown operator '$bogus'"),
    ({"path": {"$not": {"$in": 3}}}, "gateways[0].filters[2].path.$not.$in",
     "expected a list"),
    ({"path": "/a", "ds.req.path": "/b"}, "gateways[0].filters[2].ds.req.path",
     "part 'path' is also given as 'path'"),
    ({"header.X-A": "1", "header.x-a": "2"}, "gateways[0].filters[2].header.x-a",
     "part 'header.x-a' is also given as 'header.X-A'"),
])
def test_errors_carry_the_path(spec: Any, path: str, message: str) -> None:
    error = error_of(spec)
    assert error.path == path
    assert message in error.message
    assert str(error) == f"{error.path}: {error.message}"


def test_spec_that_is_not_a_mapping() -> None:
    assert error_of(["path"]).path == "gateways[0].filters[2]"


# --- canonical form ---------------------------------------------------------------------

@pytest.mark.parametrize(("key", "expected"), [
    ("path", "path"),
    ("ds.req.path", "path"),
    ("req.method", "method"),
    ("header.Host", "header.host"),
    ("ds.req.header.X-Api-Key", "header.x-api-key"),
    ("query.Page", "query.Page"),
    ("req.query.q", "query.q"),
    ("remote_addr", "remote_addr"),
    ("us.req.path", None),
    ("header", None),
    ("Path", None),
])
def test_canonical_part(key: str, expected: str | None) -> None:
    assert canonical_part(key) == expected


def test_normalise_filter_spec_rewrites_keys_recursively_and_copies() -> None:
    condition = {"$in": ["a", True, 3]}
    spec = {
        "ds.req.path": {"$starts_with": "/controller"},
        "header.Host": "localhost",
        "$or": [{"req.header.X-A": condition}, {"$not": {"ds.req.query.k": "v"}}],
    }
    result = normalise_filter_spec(spec)
    assert result == {
        "path": {"$starts_with": "/controller"},
        "header.host": "localhost",
        "$or": [{"header.x-a": {"$in": ["a", True, 3]}}, {"$not": {"query.k": "v"}}],
    }
    assert result["$or"][0]["header.x-a"] is not condition
    assert matches(result) == matches(spec)
