"""The router index (routing/index.py, routing/conditions.py): same answers as a scan.

The property test builds many random gateways (indexable and non-indexable filters,
overlapping prefixes, duplicates, routers without filters, a default upstream) and checks
``GatewayRouter.route()`` against a reference linear scan on many random requests. The
targeted tests pin the prefix tree and the edge cases of case, operands and order (the
analysis rules are in test_router_conditions.py).
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from dakia_prefork.routing import router as router_module
from dakia_prefork.routing.conditions import HOST, METHOD, PATH, Alternatives
from dakia_prefork.routing.filters import FilterError, Predicate, compile_filter
from dakia_prefork.routing.index import PrefixTree, RouteIndex
from dakia_prefork.routing.router import GatewayRouter


@dataclass
class Subject:
    method: str = "GET"
    path: str = "/"
    scheme: str = "http"
    host: str = "a.com"
    remote_addr: str = "127.0.0.1"
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query(self, name: str) -> str | None:
        return self.params.get(name)


def linear_route(gateway: Mapping[str, Any], subject: Subject) -> str | None:
    """The reference: compile every filter, try every router in order."""
    filters: dict[str, Predicate] = {}
    for spec in gateway.get("filters") or ():
        body = {key: value for key, value in spec.items() if key != "name"}
        filters[spec["name"]] = compile_filter(body, spec["name"])
    routers = gateway.get("routers") or ()
    if not routers:
        return next((u["name"] for u in gateway["upstreams"] if u.get("default")), None)
    for router in routers:
        name = router.get("filter")
        if name is None or filters[name](subject):
            return str(router["upstream"])
    return None


def make_gateway(filters: list[dict[str, Any]], routers: Sequence[str | None],
                 default: bool = False) -> dict[str, Any]:
    """Router ``i`` goes to upstream ``r<i>`` through the filter named in ``routers[i]``."""
    upstreams = [{"name": f"r{i}", "default": False} for i in range(len(routers))]
    upstreams.append({"name": "fallback", "default": default})
    return {
        "name": "gw",
        "downstreams": [],
        "upstreams": upstreams,
        "routers": [{"upstream": f"r{i}", "filter": name} for i, name in enumerate(routers)],
        "filters": filters,
    }


@pytest.fixture(params=["indexed", "default"])
def scan_up_to(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a test with the index on every gateway, and with the default threshold."""
    if request.param == "indexed":
        monkeypatch.setattr(router_module, "SCAN_UP_TO", 0)
    return router_module.SCAN_UP_TO


def route_both(gateway: dict[str, Any], subject: Subject) -> tuple[str | None, str | None]:
    return GatewayRouter(gateway).route(subject), linear_route(gateway, subject)


# --- the property: indexed == linear ---------------------------------------------------

PATHS = ["", "/", "/a", "/ab", "/a/", "/a/b", "/abc", "/b", "/B", "/A", "/a/b/c", "1",
         "true", "*", "/é", "/a%2Fb"]
HOSTS = ["a.com", "A.com", "b.com", "", "x.a.com", "1"]
METHODS = ["GET", "get", "POST", "PUT", "1"]
PARTS = {
    "path": PATHS, "ds.req.path": PATHS, "req.path": PATHS,
    "method": METHODS, "req.method": METHODS,
    "host": HOSTS, "header.host": HOSTS, "ds.req.header.Host": HOSTS,
    "scheme": ["http", "https"], "header.x": ["1", "y", ""], "query.q": ["1", "", "z"],
}


class Generator:
    """Random filter specs and requests over small alphabets, so that they collide often."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def operand(self, values: list[str]) -> Any:
        value = self.rng.choice(values)
        if value == "1" and self.rng.random() < 0.5:
            return 1            # an integer operand compares as its text
        if value == "true" and self.rng.random() < 0.5:
            return True
        return value

    def condition(self, values: list[str], depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            return self.operand(values)
        if roll < 0.85 or depth >= 2:
            ops = rng.sample(["$eq", "$in", "$starts_with", "$ne", "$nin", "$contains",
                              "$not_starts_with", "$ends_with", "$matches", "$exists"],
                             rng.choice([1, 1, 1, 2, 3]))
            result: dict[str, Any] = {}
            for op in ops:
                if op in ("$in", "$nin"):
                    result[op] = [self.operand(values) for _ in range(rng.randrange(0, 4))]
                elif op == "$matches":
                    result[op] = rng.choice(["^/a", "b$", "^A", "."])
                elif op == "$exists":
                    result[op] = rng.random() < 0.7
                else:
                    result[op] = self.operand(values)
            return result
        combinator = rng.choice(["$and", "$or", "$not"])
        if combinator == "$not":
            return {"$not": self.condition(values, depth + 1)}
        return {combinator: [self.condition(values, depth + 1)
                             for _ in range(rng.randrange(1, 4))]}

    def spec(self, depth: int = 0) -> dict[str, Any]:
        rng = self.rng
        spec: dict[str, Any] = {}
        for part in rng.sample(sorted(PARTS), rng.choice([1, 1, 2, 2, 3])):
            spec[part] = self.condition(PARTS[part])
        if depth < 2 and rng.random() < 0.3:
            combinator = rng.choice(["$and", "$or", "$not"])
            if combinator == "$not":
                spec["$not"] = self.spec(depth + 1)
            else:
                spec[combinator] = [self.spec(depth + 1) for _ in range(rng.randrange(1, 4))]
        return spec

    def valid_spec(self) -> dict[str, Any]:
        while True:
            spec = self.spec()
            try:
                compile_filter(spec, "f")
            except FilterError:
                continue    # e.g. path and ds.req.path at one level
            return spec

    def gateway(self) -> dict[str, Any]:
        rng = self.rng
        filters = [{"name": f"f{i}", **self.valid_spec()} for i in range(rng.randrange(1, 12))]
        names = [spec["name"] for spec in filters]
        routers: list[str | None] = []
        for _ in range(rng.choice([0, 1, 3, 5, 10, 25, 40])):
            routers.append(None if rng.random() < 0.04 else rng.choice(names))
        return make_gateway(filters, routers, default=rng.random() < 0.5)

    def text(self, values: list[str]) -> str:
        rng = self.rng
        if rng.random() < 0.6:
            return rng.choice(values)
        return rng.choice(values) + "".join(rng.choice("/abB1") for _ in range(rng.randrange(4)))

    def subject(self) -> Subject:
        rng = self.rng
        headers = {"x": rng.choice(["1", "y", ""])} if rng.random() < 0.5 else {}
        params = {"q": rng.choice(["1", "", "z"])} if rng.random() < 0.5 else {}
        return Subject(method=rng.choice(METHODS + ["DELETE"]), path=self.text(PATHS),
                       scheme=rng.choice(["http", "https"]),
                       host=rng.choice(HOSTS + ["A.COM", "c.com"]),
                       headers=headers, params=params)


@pytest.mark.parametrize("seed", range(12))
def test_indexed_routing_equals_the_linear_scan(seed: int, scan_up_to: int) -> None:
    generate = Generator(seed)
    for _ in range(40):
        gateway = generate.gateway()
        router = GatewayRouter(gateway)
        for _ in range(60):
            subject = generate.subject()
            assert router.route(subject) == linear_route(gateway, subject), (gateway, subject)


def test_the_property_test_exercises_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard the generator: most random gateways must really go through an index."""
    monkeypatch.setattr(router_module, "SCAN_UP_TO", 0)
    generate = Generator(0)
    gateways = [GatewayRouter(generate.gateway()) for _ in range(100)]
    assert sum(router._index is not None for router in gateways) > 50


def exact(*values: str) -> Alternatives:
    return Alternatives(exact=frozenset(values))


def prefixes(*values: str) -> Alternatives:
    return Alternatives(prefixes=frozenset(values))


# --- the prefix tree -------------------------------------------------------------------

def test_prefix_tree_unites_every_prefix_of_the_value() -> None:
    tree = PrefixTree()
    for bit, prefix in enumerate(["/api/v1", "/api/v2/", "/api", "/ap", "", "/static",
                                  "/api/v1/users", "/api"]):
        tree.add(prefix, 1 << bit)
    tree.freeze()
    assert tree.lookup("") == 0b10000
    assert tree.lookup("/a") == 0b10000
    assert tree.lookup("/ap") == 0b11000
    assert tree.lookup("/api") == 0b10011100
    assert tree.lookup("/api/v1/users/42") == 0b11011101
    assert tree.lookup("/api/v1/user") == 0b10011101
    assert tree.lookup("/api/v2") == 0b10011100
    assert tree.lookup("/api/v2/x") == 0b10011110
    assert tree.lookup("/static") == 0b100000 | 0b10000
    assert tree.lookup("/stat") == 0b10000
    assert tree.lookup("x/api") == 0b10000


def test_prefix_tree_matches_a_brute_force_union() -> None:
    rng = random.Random(7)
    keys = ["".join(rng.choice("ab/") for _ in range(rng.randrange(6))) for _ in range(60)]
    tree = PrefixTree()
    for bit, key in enumerate(keys):
        tree.add(key, 1 << bit)
    tree.freeze()
    for _ in range(500):
        value = "".join(rng.choice("ab/c") for _ in range(rng.randrange(8)))
        expected = sum(1 << bit for bit, key in enumerate(keys) if value.startswith(key))
        assert tree.lookup(value) == expected, value


def test_prefix_tree_refuses_prefixes_once_frozen() -> None:
    tree = PrefixTree()
    tree.freeze()
    with pytest.raises(RuntimeError):
        tree.add("/a", 1)


def test_route_index_candidates_and_unconstrained_routers() -> None:
    index = RouteIndex([
        {PATH: prefixes("/a")},
        None,                                   # no filter: every request
        {HOST: exact("a.com"), METHOD: exact("GET", "HEAD")},
        {},                                     # nothing indexable
        {PATH: exact("/a/b"), HOST: exact("b.com")},
    ])
    assert index.indexed
    assert index.candidates(Subject(path="/a/b", host="b.com", method="GET")) == 0b11011
    assert index.candidates(Subject(path="/a/b", host="a.com", method="GET")) == 0b01111
    assert index.candidates(Subject(path="/x", host="a.com", method="POST")) == 0b01010
    assert not RouteIndex([None, {}]).indexed


# --- edge cases, through GatewayRouter -------------------------------------------------

def many(filters: list[dict[str, Any]], routers: list[str | None]) -> dict[str, Any]:
    """A gateway padded in front with non-matching indexable routers, so it is indexed."""
    padding = [{"name": f"pad{i}", "path": f"/pad{i}"} for i in range(8)]
    padded: list[str | None] = [f"pad{i}" for i in range(8)]
    return make_gateway(padding + filters, padded + routers)


def test_first_match_order_is_kept_across_index_buckets(scan_up_to: int) -> None:
    gateway = many([
        {"name": "by_method", "method": "GET"},
        {"name": "by_host", "host": "a.com"},
        {"name": "by_path", "path": {"$starts_with": "/a"}},
        {"name": "regex", "path": {"$matches": "^/"}},
    ], ["by_path", "regex", "by_host", "by_method"])
    assert route_both(gateway, Subject(path="/a/x")) == ("r8", "r8")
    assert route_both(gateway, Subject(path="/b", method="POST")) == ("r9", "r9")
    assert route_both(gateway, Subject(path="b", method="GET")) == ("r10", "r10")
    assert route_both(gateway, Subject(path="b", host="c.com", method="GET")) == ("r11", "r11")
    assert route_both(gateway, Subject(path="b", host="c.com", method="PUT")) == (None, None)


def test_a_router_without_filter_in_the_middle_shadows_the_rest(scan_up_to: int) -> None:
    gateway = many([{"name": "p", "path": "/p"}], ["p", None, "p"])
    assert route_both(gateway, Subject(path="/p")) == ("r8", "r8")
    assert route_both(gateway, Subject(path="/q")) == ("r9", "r9")


def test_method_is_case_sensitive_as_in_the_filter(scan_up_to: int) -> None:
    gateway = many([{"name": "get", "method": "GET"}, {"name": "lower", "method": "get"}],
                   ["get", "lower"])
    assert route_both(gateway, Subject(method="GET")) == ("r8", "r8")
    assert route_both(gateway, Subject(method="get")) == ("r9", "r9")
    assert route_both(gateway, Subject(method="Get")) == (None, None)


def test_host_operands_fold_but_the_subject_host_is_read_as_given(scan_up_to: int) -> None:
    # The proxy hands in a lower-case host; the filter lower-cases its operands and compares
    # the subject's host as it is. The index must do exactly the same.
    gateway = many([{"name": "h", "host": "A.Com"},
                    {"name": "hh", "header.host": {"$in": ["B.com"]}}], ["h", "hh"])
    assert route_both(gateway, Subject(host="a.com")) == ("r8", "r8")
    assert route_both(gateway, Subject(host="b.com")) == ("r9", "r9")
    assert route_both(gateway, Subject(host="A.Com")) == (None, None)


def test_empty_host_has_no_value(scan_up_to: int) -> None:
    gateway = many([{"name": "empty", "host": ""}, {"name": "none", "host": {"$exists": False}}],
                   ["empty", "none"])
    assert route_both(gateway, Subject(host="")) == ("r9", "r9")


def test_path_is_compared_raw_not_normalised(scan_up_to: int) -> None:
    gateway = many([{"name": "enc", "path": {"$starts_with": "/a%2F"}},
                    {"name": "dbl", "path": "//a"},
                    {"name": "upper", "path": {"$starts_with": "/A"}}], ["enc", "dbl", "upper"])
    assert route_both(gateway, Subject(path="/a%2Fb")) == ("r8", "r8")
    assert route_both(gateway, Subject(path="/a/b")) == (None, None)
    assert route_both(gateway, Subject(path="//a")) == ("r9", "r9")
    assert route_both(gateway, Subject(path="/a")) == (None, None)
    assert route_both(gateway, Subject(path="/Ab")) == ("r10", "r10")


def test_operands_compare_as_their_text(scan_up_to: int) -> None:
    gateway = many([{"name": "int", "path": {"$in": [1, "2"]}},
                    {"name": "bool", "method": True}], ["int", "bool"])
    assert route_both(gateway, Subject(path="1")) == ("r8", "r8")
    assert route_both(gateway, Subject(path="2")) == ("r8", "r8")
    assert route_both(gateway, Subject(method="true")) == ("r9", "r9")


def test_empty_in_and_empty_prefix(scan_up_to: int) -> None:
    gateway = many([{"name": "never", "path": {"$in": []}},
                    {"name": "always", "path": {"$starts_with": ""}}], ["never", "always"])
    assert route_both(gateway, Subject(path="")) == ("r9", "r9")
    assert route_both(gateway, Subject(path="/x")) == ("r9", "r9")


def test_an_exact_path_also_gets_the_prefixes_of_it(scan_up_to: int) -> None:
    filters: list[dict[str, Any]] = [{"name": "pre", "path": {"$starts_with": "/a"}},
                                     {"name": "eq", "path": "/ab"}]
    gateway = many(filters, ["pre", "eq"])
    assert route_both(gateway, Subject(path="/ab")) == ("r8", "r8")
    gateway = many(filters, ["eq", "pre"])
    assert route_both(gateway, Subject(path="/ab")) == ("r8", "r8")
    assert route_both(gateway, Subject(path="/abc")) == ("r9", "r9")


def test_or_of_prefixes_is_indexed_and_routes_both_branches(scan_up_to: int) -> None:
    gateway = many([{"name": "ps", "path": {"$or": [{"$starts_with": "/payment"},
                                                    {"$starts_with": "/search"}]}}], ["ps"])
    assert route_both(gateway, Subject(path="/search?q")) == ("r8", "r8")
    assert route_both(gateway, Subject(path="/payment/1")) == ("r8", "r8")
    assert route_both(gateway, Subject(path="/pay")) == (None, None)


def test_duplicate_routers_and_shared_filters(scan_up_to: int) -> None:
    gateway = many([{"name": "a", "path": {"$starts_with": "/a"}}], ["a", "a", "a"])
    assert route_both(gateway, Subject(path="/a")) == ("r8", "r8")


def test_a_thousand_routes_are_indexed_and_the_last_one_is_found() -> None:
    filters = [{"name": f"f{i}", "host": f"h{i}.example.com",
                "path": {"$starts_with": f"/svc{i}/"}, "method": {"$in": ["GET", "POST"]}}
               for i in range(1000)]
    gateway = make_gateway(filters, [f"f{i}" for i in range(1000)])
    router = GatewayRouter(gateway)
    assert router._index is not None
    subject = Subject(path="/svc999/x", host="h999.example.com", method="POST")
    assert router.route(subject) == "r999"
    assert router.route(Subject(path="/svc999/x", host="h998.example.com")) is None
    assert router._index.candidates(subject) == 1 << 999


def test_few_routers_are_scanned_not_indexed() -> None:
    gateway = make_gateway([{"name": "p", "path": "/p"}], ["p"] * router_module.SCAN_UP_TO)
    assert GatewayRouter(gateway)._index is None
    gateway = make_gateway([{"name": "p", "path": {"$matches": "^/p"}}], ["p"] * 50)
    assert GatewayRouter(gateway)._index is None     # nothing to index: a scan it is
