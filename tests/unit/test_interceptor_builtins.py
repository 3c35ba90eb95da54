"""The built-in interceptors' logic through the chain, without sockets."""
from __future__ import annotations

import base64
import ipaddress
import re
from typing import Any

import pytest

from dakia_prefork.interceptors import Chain, build_chain
from dakia_prefork.interceptors.apikeys import hash_key
from dakia_prefork.interceptors.base import Problems
from dakia_prefork.interceptors.basic_auth import BasicAuth
from dakia_prefork.interceptors.ip_restriction import client_address, in_any, parse_networks
from dakia_prefork.interceptors.passwords import make_hash
from dakia_prefork.interceptors.pathrewrite import PathTemplate, strip_prefix
from dakia_prefork.http.events import RequestHead
from dakia_prefork.message.request import Request


def make_request(method: str = "GET", target: str = "/", headers: dict[str, str] | None = None,
                 peer: str = "127.0.0.1") -> Request:
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    head = RequestHead(method.encode(), target.encode(), b"1.1", raw, None, False, True, False)
    return Request(head, "example.com", "http", peer)


def chain(name: str, config: dict[str, Any] | None = None, **more: Any) -> Chain:
    entry = {"name": name, "enabled": True, "filter": None, "config": config or {}, **more}
    built = build_chain({"interceptors": [entry]}, {}, "g")
    assert built is not None
    return built


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- basic_auth -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def basic_chain() -> Chain:
    return chain("basic_auth", {"realm": "api", "hide_credentials": True, "users": [
        {"username": "alice", "password_hash": make_hash("wonderland", "pbkdf2-sha256")}]})


@pytest.mark.parametrize("authorization", [
    None, basic("alice", "wrong"), basic("mallory", "wonderland"), "Basic !!!notbase64",
    "Bearer abc", "Basic " + base64.b64encode(b"no-colon").decode(),
])
def test_basic_auth_refuses_with_a_challenge(basic_chain: Chain,
                                             authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    reply = basic_chain.start(make_request(headers=headers), "app").request_phases()
    assert reply is not None and reply.status == 401
    assert (b"www-authenticate", b'Basic realm="api", charset="UTF-8"') in reply.headers


def test_basic_auth_lets_the_user_in_and_hides_the_credentials(basic_chain: Chain) -> None:
    for _ in range(2):                       # the second time comes from the verified cache
        run = basic_chain.start(make_request(headers={
            "authorization": basic("alice", "wonderland")}), "app")
        assert run.request_phases() is None
        assert run.ctx.consumer == "alice"
        assert run.ctx.upstream_request.headers.get("authorization") is None


def test_basic_auth_cache_is_bound_to_the_password(basic_chain: Chain) -> None:
    ok = basic_chain.start(make_request(headers={
        "authorization": basic("alice", "wonderland")}), "app")
    assert ok.request_phases() is None
    wrong = basic_chain.start(make_request(headers={
        "authorization": basic("alice", "wonderland!")}), "app")
    assert wrong.request_phases() is not None


def test_basic_auth_check_hashes_plaintext_and_keeps_no_secret() -> None:
    entry = {"name": "basic_auth", "enabled": True, "filter": None,
             "config": {"username": "dakia", "password": "dakia",
                        "users": [{"username": "bob", "password": "builder"}]}}
    assert BasicAuth.check(entry, "/") == []
    users = entry["config"]["users"]
    assert [u["username"] for u in users] == ["bob", "dakia"]
    assert all(set(u) == {"username", "password_hash"} for u in users)
    assert "builder" not in repr(entry)                  # no plaintext left anywhere
    assert BasicAuth.check(entry, "/") == []            # normalised stays normalised
    run = Chain([(None, BasicAuth(entry))]).start(make_request(headers={
        "authorization": basic("dakia", "dakia")}), "app")
    assert run.request_phases() is None


def test_basic_auth_check_problems() -> None:
    entry = {"name": "basic_auth", "config": {"username": "x"}}
    assert BasicAuth.check(entry, "/") == [
        ("config.password", "Dakia's single user needs both username and password")]
    entry = {"name": "basic_auth", "config": {"users": [
        {"username": "a", "password": "p", "password_hash": "h"}]}}
    assert BasicAuth.check(entry, "/") == [("config.users[0]",
                                            "give password_hash or password, not both")]
    hashed = make_hash("p", "pbkdf2-sha256")
    entry = {"name": "basic_auth", "config": {"users": [
        {"username": "a", "password_hash": hashed}, {"username": "a", "password_hash": hashed}]}}
    assert BasicAuth.check(entry, "/") == [("config.users[1].username",
                                            "user 'a' is defined twice")]
    assert BasicAuth.check({"name": "basic_auth", "config": {}}, "/")[0][0] == "config"


# -- key_auth -------------------------------------------------------------------------------
KEY = "k3y-0123456789abcdef"


@pytest.fixture(scope="module")
def key_chain() -> Chain:
    return chain("key_auth", {"header": "X-API-Key", "query": "api_key", "realm": "api",
                              "hide_credentials": True,
                              "keys": [{"name": "ci", "key_hash": hash_key(KEY)}]})


def test_key_auth_missing_is_401_and_wrong_is_403(key_chain: Chain) -> None:
    missing = key_chain.start(make_request(), "app").request_phases()
    assert missing is not None and missing.status == 401
    assert (b"www-authenticate", b'Key realm="api"') in missing.headers
    empty = key_chain.start(make_request(headers={"x-api-key": ""}), "app").request_phases()
    assert empty is not None and empty.status == 401
    wrong = key_chain.start(make_request(headers={"x-api-key": KEY + "x"}),
                            "app").request_phases()
    assert wrong is not None and wrong.status == 403


def test_key_auth_header_or_query(key_chain: Chain) -> None:
    run = key_chain.start(make_request(headers={"x-api-key": KEY}), "app")
    assert run.request_phases() is None and run.ctx.consumer == "ci"
    assert run.ctx.upstream_request.headers.get("x-api-key") is None
    run = key_chain.start(make_request(target=f"/x?a=1&api_key={KEY}&b=2"), "app")
    assert run.request_phases() is None and run.ctx.consumer == "ci"
    assert run.ctx.upstream_request.query == "a=1&b=2"


# -- request_rewrite / response_rewrite -----------------------------------------------------
@pytest.mark.parametrize("pattern,replacement,path,expected", [
    (r"^/users/(\d+)$", "/v2/users/$1", "/users/42", "/v2/users/42"),
    (r"^/users/(\d+)$", "/v2/users/$1", "/users/x", "/users/x"),
    (r"^/(?P<a>\w+)/(?P<b>\w+)", "/${b}/${a}", "/one/two/three", "/two/one/three"),
    (r"/old/", "/new/", "/a/old/b", "/a/new/b"),
    (r"^/p/(.*)$", "/q/$1$$", "/p/x%2Fy", "/q/x%2Fy$"),
    (r"^/(a)?b", "/${1}c", "/b", "/c"),
])
def test_path_templates(pattern: str, replacement: str, path: str, expected: str) -> None:
    assert PathTemplate(pattern, replacement).apply(path) == expected


@pytest.mark.parametrize("pattern,replacement,message", [
    ("(", "/", "pattern: does not compile"),
    ("^/(a)$", "/$2", "replacement: $2 but the pattern has 1 group(s)"),
    ("^/(a)$", "/${name}", "replacement: the pattern has no group named 'name'"),
    ("^/$", "/a b", "characters a path cannot carry"),
    ("^/$", "/a?b", "characters a path cannot carry"),
    ("^/$", "/$x", "a '$' must start"),
])
def test_path_template_errors(pattern: str, replacement: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        PathTemplate(pattern, replacement)


@pytest.mark.parametrize("path,expected", [
    ("/api", "/"), ("/api/", "/"), ("/api/users", "/users"), ("/apix", "/apix"), ("/", "/"),
])
def test_strip_prefix_on_segment_boundaries(path: str, expected: str) -> None:
    assert strip_prefix(path, "/api") == expected


def test_request_rewrite_changes_only_the_upstream_request() -> None:
    rewrite = chain("request_rewrite", {
        "strip_prefix": "/api/", "path_regex": {"pattern": "^/users/(\\d+)", "replacement":
                                                "/v2/u/$1"},
        "method": "POST", "set_headers": {"X-Env": "prod"}, "add_headers": {"X-Via": "gw"},
        "remove_headers": ["Cookie"], "set_query": {"version": 2}, "remove_query": ["debug"],
    }, rewrite={"req.header.x-dakia": "yes", "header.x-drop": None, "query.q": "a b",
                "us.req.query.z": None})
    request = make_request("GET", "/api/users/7/x?debug=1&z=2&keep=%20",
                           {"cookie": "s=1", "x-drop": "1", "x-env": "dev"})
    run = rewrite.start(request, "app")
    assert run.request_phases() is None
    assert run.pre_upstream_request("n") is None
    head = run.upstream_head(request.head)
    assert head.method == b"POST"
    assert head.target == b"/v2/u/7/x?keep=%20&version=2&q=a%20b"
    assert dict(head.headers) == {b"x-env": b"prod", b"x-via": b"gw", b"x-dakia": b"yes"}
    assert request.path == "/api/users/7/x" and request.method == "GET"


def test_request_rewrite_dakia_path_and_head_stays_head() -> None:
    rewrite = chain("request_rewrite", {"method": "POST"}, rewrite={"path": "/fixed"})
    request = make_request("HEAD", "/anything?x=1")
    run = rewrite.start(request, "app")
    run.pre_upstream_request("n")
    head = run.upstream_head(request.head)
    assert (head.method, head.target) == (b"HEAD", b"/fixed?x=1")


def test_response_rewrite() -> None:
    rewrite = chain("response_rewrite", {"status": 202, "set_headers": {"Cache-Control":
                                                                        "no-store"},
                                         "remove_headers": ["X-Powered-By"],
                                         "add_headers": {"X-A": "1"}},
                    rewrite={"ds.res.header.x-from": "gw", "header.server": None})
    run = rewrite.start(make_request(), "app")
    response = run.upstream_response(200, b"OK", [(b"x-powered-by", b"php"),
                                                  (b"server", b"nginx"), (b"x-a", b"0")], True)
    assert response.status == 202 and response.reason == b""
    assert list(response.headers) == [("x-a", "0"), ("cache-control", "no-store"),
                                      ("x-from", "gw"), ("x-a", "1")]
    assert response.body is None
    body = chain("response_rewrite", {"body": "replaced"}).start(make_request(), "app")
    assert body.upstream_response(200, b"OK", [], True).body == b"replaced"


def test_response_rewrite_leaves_gateway_answers_alone() -> None:
    run = chain("response_rewrite", {"status": 202}).start(make_request(), "app")
    assert run.local_response(401, b"no", None).status == 401


# -- cors -------------------------------------------------------------------------------------
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def cors_chain() -> Chain:
    return chain("cors", {"allow_origins": [ORIGIN], "allow_methods": ["GET", "POST"],
                          "allow_headers": ["Authorization", "X-Trace"], "max_age": 600,
                          "allow_credentials": True, "expose_headers": ["X-Request-Id"]})


def preflight(origin: str, method: str = "POST", asked: str = "authorization") -> Request:
    return make_request("OPTIONS", "/x", {"origin": origin,
                                          "access-control-request-method": method,
                                          "access-control-request-headers": asked})


def test_cors_preflight_allowed(cors_chain: Chain) -> None:
    run = cors_chain.start(preflight(ORIGIN, asked="Authorization, x-trace"), "app")
    reply = run.request_phases()
    assert reply is not None and reply.status == 204
    headers = dict(run.local_response(reply.status, reply.body, reply.headers).headers)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-methods"] == "GET, POST"
    assert headers["access-control-allow-headers"] == "Authorization, X-Trace"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-allow-credentials"] == "true"
    assert "Origin" in headers["vary"]


@pytest.mark.parametrize("request_", [
    preflight("https://evil.example"), preflight(ORIGIN, method="DELETE"),
    preflight(ORIGIN, asked="x-secret"),
])
def test_cors_preflight_refused(cors_chain: Chain, request_: Request) -> None:
    reply = cors_chain.start(request_, "app").request_phases()
    assert reply is not None and reply.status == 403


def test_cors_plain_options_and_simple_requests(cors_chain: Chain) -> None:
    assert cors_chain.start(make_request("OPTIONS", "/x", {"origin": ORIGIN}),
                            "app").request_phases() is None
    run = cors_chain.start(make_request(headers={"origin": ORIGIN}), "app")
    response = run.upstream_response(200, b"OK", [(b"vary", b"Accept")], True)
    headers = response.headers
    assert headers.get("access-control-allow-origin") == ORIGIN
    assert headers.get("access-control-expose-headers") == "X-Request-Id"
    assert headers.get_all("vary") == ["Accept", "Origin"]
    run = cors_chain.start(make_request(headers={"origin": "https://evil.example"}), "app")
    response = run.upstream_response(200, b"OK", [
        (b"access-control-allow-origin", b"*")], True)
    assert response.headers.get("access-control-allow-origin") is None


def test_cors_any_origin_reflects_asked_headers() -> None:
    any_origin = chain("cors", {"allow_origins": ["*"]})
    reply = any_origin.start(preflight("https://x.example", "PUT", "X-One, X-Two"),
                             "app").request_phases()
    assert reply is not None and reply.status == 204
    headers = dict(reply.headers)
    assert headers[b"access-control-allow-origin"] == b"*"
    assert headers[b"access-control-allow-headers"] == b"X-One, X-Two"


# -- ip_restriction -----------------------------------------------------------------------
@pytest.mark.parametrize("peer,networks,expected", [
    ("10.1.2.3", ["10.0.0.0/8"], True),
    ("11.1.2.3", ["10.0.0.0/8"], False),
    ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),          # IPv4-mapped counts as IPv4
    ("2001:db8::1", ["2001:db8::/32"], True),
    ("2001:db9::1", ["2001:db8::/32"], False),
    ("10.1.2.3", ["2001:db8::/32"], False),
    ("192.0.2.7", ["192.0.2.7"], True),
    ("", ["0.0.0.0/0", "::/0"], False),                 # unix socket: no address
])
def test_cidr_matching(peer: str, networks: list[str], expected: bool) -> None:
    problems = Problems()
    parsed = parse_networks(networks, "allow", problems)
    assert not problems.found
    assert in_any(client_address(peer), parsed) is expected


def test_cidr_errors_suggest_the_network() -> None:
    problems = Problems()
    parse_networks(["10.0.0.1/8", "fe80::1/10", "x"], "config.allow", problems)
    assert problems.found[0] == ("config.allow[0]",
                                 "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?")
    assert problems.found[1][1].endswith(f"did you mean {ipaddress.ip_network('fe80::/10')}?")
    assert problems.found[2][0] == "config.allow[2]"


def test_ip_restriction_allow_and_deny() -> None:
    restricted = chain("ip_restriction", {"allow": ["10.0.0.0/8", "::1"],
                                          "deny": ["10.0.13.0/24"]})

    def status(peer: str) -> int | None:
        reply = restricted.start(make_request(peer=peer), "app").request_phases()
        return reply.status if reply is not None else None

    assert status("10.0.0.1") is None and status("::1") is None
    assert status("10.0.13.9") == 403 and status("192.168.0.1") == 403
    deny_only = chain("ip_restriction", {"deny": ["192.168.0.0/16"]})
    assert deny_only.start(make_request(peer="10.0.0.1"), "app").request_phases() is None


def test_request_ids_are_distinct_version_4_uuids_across_refills() -> None:
    import uuid

    from dakia_prefork.interceptors.request_id import UuidSource

    source = UuidSource()
    ids = [source.next() for _ in range(600)]       # more than one 4 KiB batch
    assert len(set(ids)) == 600
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    source.reset()
    assert source.next() not in ids
