"""Path normalisation through the running gateway, on both engines: every spelling of
/admin meets the /admin guard, the upstream gets the canonical path (or the raw one with
forward_raw_path), and the settings change what they say, per gateway too."""
from __future__ import annotations

import re

import pytest

from .harness import node, raw_exchange


def _statuses(answer: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)]


def _get(gw, target: bytes) -> list[int]:
    return _statuses(raw_exchange(gw.port, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n"
                                                              b"Connection: close\r\n\r\n"))


_GUARD = {"filters": [{"name": "admin", "path": {"$starts_with": "/admin"}}],
          "interceptors": [{"name": "short_circuit", "filter": "admin",
                            "response": {"status": 403, "body": "guarded"}}]}


def _guarded(engine, upstreams, gateways, extra=None, gateway=None):
    up = upstreams()
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine,
                  extra=extra, gateway={**_GUARD, **(gateway or {})})
    return gw, up


# Each walked past `path: {$starts_with: /admin}` to the upstream before.
_ADMIN_SPELLINGS = [
    b"/admin", b"/x/../admin", b"/./admin", b"//admin", b"/%61dmin", b"/%61%64%6D%69%6E",
    b"/x/%2e%2e/admin", b"/x/%2E%2E/admin", b"/x/.%2e/admin", b"/%2e/admin", b"/%2E/admin",
    b"///admin//", b"/a/b/../../admin/x", b"/x/./../admin", b"/.//admin",
    b"/admin?x=/../public", b"http://a/x/../admin",
]


@pytest.mark.parametrize("target", _ADMIN_SPELLINGS)
def test_every_spelling_of_admin_meets_the_guard(engine, upstreams, gateways,
                                                 target: bytes) -> None:
    gw, up = _guarded(engine, upstreams, gateways)
    assert _get(gw, target) == [403]
    assert up.received == []


@pytest.mark.parametrize("target", [
    b"/..", b"/../admin", b"/x/../../admin", b"/%2e%2e/admin", b"/x/%2E%2E/%2e%2e/admin",
    b"/admin/..;/", b"/public/..;/admin", b"/public/.;/admin", b"/a%zz", b"/a%2",
])
def test_climbing_or_ambiguous_paths_are_400_and_close(engine, upstreams, gateways,
                                                       target: bytes) -> None:
    gw, up = _guarded(engine, upstreams, gateways)
    answer = raw_exchange(gw.port, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"
                                   b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n", half_close=True)
    assert _statuses(answer) == [400]
    assert up.received == []


@pytest.mark.parametrize(("target", "forwarded"), [
    (b"/x/../public", "/public"),
    (b"/%70ublic/./a//b", "/public/a/b"),
    (b"/Caf%c3%a9/%7e", "/Caf%C3%A9/~"),
    (b"/a/b/..", "/a/"),
    # The query string goes on untouched, dots, escapes and all.
    (b"/a/./b?x=/../%2e&y=%41//z", "/a/b?x=/../%2e&y=%41//z"),
    (b"/a?", "/a?"),
    # Backslashes and %5C are kept escaped (escaped_slashes: keep), never a separator.
    (b"/x\\..\\admin", "/x%5C..%5Cadmin"),
    (b"/x%5c..%5cadmin", "/x%5C..%5Cadmin"),
    (b"/x%2f..%2fadmin", "/x%2F..%2Fadmin"),
    (b"/.well-known/acme", "/.well-known/acme"),
])
def test_the_upstream_gets_the_canonical_path(engine, upstreams, gateways, target: bytes,
                                              forwarded: str) -> None:
    gw, up = _guarded(engine, upstreams, gateways)
    assert _get(gw, target) == [200]
    assert [r.target for r in up.received] == [forwarded]


def test_forward_raw_path_sends_the_raw_path_but_guards_the_canonical(engine, upstreams,
                                                                      gateways) -> None:
    gw, up = _guarded(engine, upstreams, gateways,
                      extra={"path_normalization": {"forward_raw_path": True}})
    assert _get(gw, b"/x/./public//a?q=/./") == [200]
    assert _get(gw, b"/x/../admin") == [403]
    assert _get(gw, b"/../x") == [400]
    assert [r.target for r in up.received] == ["/x/./public//a?q=/./"]


def test_merge_slashes_off(engine, upstreams, gateways) -> None:
    gw, up = _guarded(engine, upstreams, gateways,
                      extra={"path_normalization": {"merge_slashes": False}})
    # Opted out: "//admin" is another path, and goes on as it is.
    assert _get(gw, b"//admin") == [200]
    assert _get(gw, b"/a//../admin") == [200]
    assert _get(gw, b"/x/../admin") == [403]
    assert [r.target for r in up.received] == ["//admin", "/a/admin"]


def test_escaped_slashes_reject(engine, upstreams, gateways) -> None:
    gw, up = _guarded(engine, upstreams, gateways,
                      extra={"path_normalization": {"escaped_slashes": "reject"}})
    for target in (b"/a%2Fb", b"/a%2fb", b"/a%5Cb", b"/a\\b"):
        assert _get(gw, target) == [400], target
    assert _get(gw, b"/a%41b") == [200]
    assert [r.target for r in up.received] == ["/aAb"]


def test_escaped_slashes_decode(engine, upstreams, gateways) -> None:
    gw, up = _guarded(engine, upstreams, gateways,
                      extra={"path_normalization": {"escaped_slashes": "decode"}})
    for target in (b"/x%2F..%2Fadmin", b"/x%5c..%5cadmin", b"/x\\..\\admin", b"/%2Fadmin"):
        assert _get(gw, target) == [403], target
    assert _get(gw, b"/a%2Fb%5Cc") == [200]
    assert _get(gw, b"/..%2Fx") == [400]
    assert [r.target for r in up.received] == ["/a/b/c"]


def test_a_gateway_overrides_the_top_level_settings(engine, upstreams, gateways) -> None:
    gw, up = _guarded(engine, upstreams, gateways,
                      extra={"path_normalization": {"escaped_slashes": "reject",
                                                    "merge_slashes": False}},
                      gateway={"path_normalization": {"escaped_slashes": "decode"}})
    assert _get(gw, b"/x%2F..%2Fadmin") == [403]     # the gateway's decode
    assert _get(gw, b"//admin") == [200]             # the top level's merge_slashes
    assert [r.target for r in up.received] == ["//admin"]
