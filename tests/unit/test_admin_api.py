"""The admin API (admin/api.py) on an in-memory backend, and its HTTP server
(admin/server.py) on an in-memory stream: routing, auth, content types, ETags, merge
patches, conflicts, limits. The real master behind it is tested in tests/integration."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from dakia_prefork.admin.api import (AdminApi, AdminRequest, AdminResponse, DocumentError,
                                     Outcome, Version)
from dakia_prefork.admin.mergepatch import apply_merge_patch
from dakia_prefork.admin.server import AdminLimits, AdminServer
from dakia_prefork.admin.token import AdminToken, TokenError, is_loopback, read_token
from dakia_prefork.config import ConfigError, validate
from dakia_prefork.http.memory import MemoryStream

TOKEN = "t0ken-for-the-admin-api"
AUTH = {b"authorization": f"Bearer {TOKEN}".encode()}

CONFIG: dict[str, Any] = {"gateways": [{
    "name": "main", "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
    "upstreams": [{"name": "app", "default": True, "upstream_nodes": [
        {"address": {"host": "127.0.0.1", "port": 3000}}]}]}]}


class MemoryBackend:
    """Versions in a dict; validation is the real one; publish compares and sets."""

    def __init__(self) -> None:
        self.documents: dict[int, dict[str, Any]] = {1: copy.deepcopy(CONFIG)}
        self.number = 1
        self.persisted: list[int] = []
        self.before_publish: list[Any] = []
        self.is_ready = True
        self.unavailable: str | None = None

    def current(self) -> Version:
        return Version(self.number, copy.deepcopy(self.documents[self.number]))

    def version(self, number: int) -> Version | None:
        found = self.documents.get(number)
        return None if found is None else Version(number, copy.deepcopy(found))

    def versions(self) -> list[int]:
        return sorted(self.documents)

    def check(self, document: dict[str, Any]) -> tuple[list[str], list[str]]:
        try:
            _, notices = validate(document, base_dir="/")
        except ConfigError as exc:
            return exc.errors, []
        return [], notices

    def publish(self, document: dict[str, Any], *, base: int | None, persist: bool,
                origin: str) -> Outcome:
        while self.before_publish:
            self.before_publish.pop(0)()
        if self.unavailable is not None:
            return Outcome(unavailable=self.unavailable)
        if base is not None and base != self.number:
            return Outcome(conflict=self.number)
        errors, _ = self.check(document)
        if errors:
            return Outcome(errors=errors)
        self.number += 1
        self.documents[self.number] = copy.deepcopy(document)
        if persist:
            self.persisted.append(self.number)
        return Outcome(version=self.number)

    def reload(self, origin: str) -> Outcome:
        return self.publish(self.documents[1], base=None, persist=False, origin=origin)

    def status(self) -> dict[str, Any]:
        return {"version": self.number}

    def ready(self) -> bool:
        return self.is_ready

    def metrics(self) -> bytes:
        return b"dakia_up 1\n"

    def fleet_nodes(self) -> dict[str, Any] | None:
        return None


def parse(body: bytes, as_json: bool) -> dict[str, Any]:
    try:
        value = json.loads(body) if as_json else yaml.safe_load(body)
    except (ValueError, yaml.YAMLError) as exc:
        raise DocumentError(f"(body): {exc}") from None
    if not isinstance(value, dict):
        raise DocumentError("(body): the top level must be a mapping")
    return value


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def api(backend: MemoryBackend) -> AdminApi:
    return AdminApi(backend, AdminToken(TOKEN), parse)


def call(api: AdminApi, method: str, target: str, body: bytes = b"",
         **headers: str) -> AdminResponse:
    given = dict(AUTH)
    given.update({name.replace("_", "-").encode(): value.encode()
                  for name, value in headers.items()})
    return api.handle(AdminRequest(method, target, given, body, "127.0.0.1"))


def body_of(response: AdminResponse) -> Any:
    return json.loads(response.body)


# --- auth -------------------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [None, b"", b"Bearer", b"Bearer wrong-token-xxxxxxx",
                                           f"Basic {TOKEN}".encode(),
                                           f"Bearer {TOKEN}x".encode(),
                                           f"Bearer {TOKEN[:-1]}".encode()])
def test_a_missing_or_wrong_token_is_401_without_detail(api: AdminApi,
                                                        authorization: bytes | None) -> None:
    headers = {} if authorization is None else {b"authorization": authorization}
    for target in ("/config", "/status", "/metrics", "/config/versions", "/nowhere"):
        response = api.handle(AdminRequest("GET", target, headers))
        assert response.status == 401
        assert body_of(response) == {"error": "unauthorized"}
        assert ("WWW-Authenticate", 'Bearer realm="dakia-admin"') in response.headers


def test_probes_need_no_token(api: AdminApi, backend: MemoryBackend) -> None:
    assert api.handle(AdminRequest("GET", "/healthz", {})).status == 200
    assert api.handle(AdminRequest("GET", "/ready", {})).status == 200
    backend.is_ready = False
    assert api.handle(AdminRequest("GET", "/ready", {})).status == 503


def test_without_a_token_configured_requests_are_admitted(backend: MemoryBackend) -> None:
    api = AdminApi(backend, None, parse)
    assert api.handle(AdminRequest("GET", "/config", {})).status == 200


def test_token_rules(tmp_path: Any) -> None:
    with pytest.raises(TokenError, match="at least 16"):
        AdminToken("short")
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\nsecond line ignored\n")
    found = read_token(str(path), {})
    assert found is not None and found.admits(AUTH[b"authorization"])
    assert found.admits(f"bearer {TOKEN}".encode())
    assert read_token(None, {"DAKIA_ADMIN_TOKEN": TOKEN}) is not None
    assert read_token(None, {}) is None
    path.write_text("")
    with pytest.raises(TokenError, match="empty"):
        read_token(str(path), {})
    with pytest.raises(TokenError, match="No such file"):
        read_token(str(tmp_path / "absent"), {})


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.9.9.9", True),
                                            ("::1", True), ("[::1]", True),
                                            ("localhost", True), ("0.0.0.0", False),
                                            ("::", False), ("10.0.0.1", False),
                                            ("example.com", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# --- reading ----------------------------------------------------------------------------

def test_get_config_as_json_or_yaml_with_the_version_as_etag(api: AdminApi) -> None:
    response = call(api, "GET", "/config")
    assert response.status == 200 and response.content_type == "application/json"
    assert ("ETag", '"1"') in response.headers
    assert body_of(response) == CONFIG
    for accept in ("application/yaml", "text/yaml;q=0.9", "application/json, text/yaml"):
        response = call(api, "GET", "/config", accept=accept)
        assert response.content_type == "application/yaml"
        assert yaml.safe_load(response.body) == CONFIG
    assert call(api, "GET", "/config", accept="*/*").content_type == "application/json"


def test_versions_and_one_version(api: AdminApi) -> None:
    assert body_of(call(api, "GET", "/config/versions")) == {"current": 1, "versions": [1]}
    assert body_of(call(api, "GET", "/config/versions/1")) == CONFIG
    assert call(api, "GET", "/config/versions/7").status == 404


def test_unknown_paths_and_methods(api: AdminApi) -> None:
    assert call(api, "GET", "/nowhere").status == 404
    response = call(api, "DELETE", "/config")
    assert response.status == 405 and ("Allow", "GET, PATCH, PUT") in response.headers
    assert call(api, "GET", "/config/rollback/1").status == 405
    assert call(api, "HEAD", "/status").status == 200


# --- changing ---------------------------------------------------------------------------

def changed(port: int = 9090) -> dict[str, Any]:
    document = copy.deepcopy(CONFIG)
    document["gateways"][0]["bind_addresses"][0]["port"] = port
    return document


def test_put_json_and_yaml(api: AdminApi, backend: MemoryBackend) -> None:
    response = call(api, "PUT", "/config", json.dumps(changed()).encode(),
                    content_type="application/json")
    assert response.status == 200 and body_of(response)["version"] == 2
    assert ("ETag", '"2"') in response.headers
    response = call(api, "PUT", "/config?persist=true", yaml.safe_dump(changed(9091)).encode(),
                    content_type="application/yaml; charset=utf-8")
    assert body_of(response) == {"version": 3, "previous": 2, "not_applied": []}
    assert backend.persisted == [3]
    assert backend.documents[3] == changed(9091)


def test_a_rejected_config_is_422_with_the_check_errors_and_changes_nothing(
        api: AdminApi, backend: MemoryBackend) -> None:
    document = changed(70000)
    document["gateways"][0]["routers"] = [{"upstream": "app", "filter": "nope"}]
    response = call(api, "PUT", "/config", json.dumps(document).encode(),
                    content_type="application/json")
    assert response.status == 422
    assert body_of(response)["errors"] == backend.check(document)[0]
    assert len(body_of(response)["errors"]) == 2
    assert backend.number == 1


@pytest.mark.parametrize("body, content_type, status", [
    (b"{", "application/json", 422), (b"[1]", "application/json", 422),
    (b"a: [", "application/yaml", 422), (b"{}", "text/plain", 415), (b"{}", "", 415)])
def test_bodies_that_are_not_a_config(api: AdminApi, backend: MemoryBackend, body: bytes,
                                      content_type: str, status: int) -> None:
    response = call(api, "PUT", "/config", body, content_type=content_type)
    assert response.status == status
    assert backend.number == 1


def test_if_match(api: AdminApi, backend: MemoryBackend) -> None:
    body = json.dumps(changed()).encode()
    stale = call(api, "PUT", "/config", body, content_type="application/json", if_match='"7"')
    assert stale.status == 409 and body_of(stale)["current"] == 1
    assert ("ETag", '"1"') in stale.headers
    assert backend.number == 1
    assert call(api, "PUT", "/config", body, content_type="application/json",
                if_match='"1"').status == 200
    assert call(api, "PUT", "/config", body, content_type="application/json",
                if_match='W/"2"').status == 200
    assert call(api, "PUT", "/config", body, content_type="application/json",
                if_match="*").status == 200
    assert call(api, "PUT", "/config", body, content_type="application/json",
                if_match="abc").status == 400


def test_validate_is_a_dry_run(api: AdminApi, backend: MemoryBackend) -> None:
    ok = call(api, "POST", "/config/validate", json.dumps(changed()).encode(),
              content_type="application/json")
    assert ok.status == 200 and body_of(ok)["valid"] is True
    bad = call(api, "POST", "/config/validate", json.dumps(changed(0)).encode(),
               content_type="application/json")
    assert bad.status == 422 and body_of(bad)["errors"]
    assert backend.number == 1


def test_patch_is_a_json_merge_patch_of_the_current_version(api: AdminApi,
                                                           backend: MemoryBackend) -> None:
    patch = {"workers": 2, "gateways": changed(9092)["gateways"]}
    response = call(api, "PATCH", "/config", json.dumps(patch).encode(),
                    content_type="application/merge-patch+json")
    assert response.status == 200
    assert backend.documents[2]["workers"] == 2
    response = call(api, "PATCH", "/config", json.dumps({"workers": None}).encode(),
                    content_type="application/merge-patch+json")
    assert response.status == 200 and "workers" not in backend.documents[3]
    assert call(api, "PATCH", "/config", b"[]",
                content_type="application/merge-patch+json").status == 422
    assert call(api, "PATCH", "/config", b"{",
                content_type="application/merge-patch+json").status == 400
    assert call(api, "PATCH", "/config", b"{}", content_type="text/yaml").status == 415


def test_a_patch_that_loses_a_race_is_applied_to_the_winner(api: AdminApi,
                                                           backend: MemoryBackend) -> None:
    # Another change lands between the patch's read and its publish.
    def other_change() -> None:
        backend.number += 1
        backend.documents[backend.number] = changed(9500)
    backend.before_publish.append(other_change)
    response = call(api, "PATCH", "/config", json.dumps({"workers": 3}).encode(),
                    content_type="application/merge-patch+json")
    assert response.status == 200 and body_of(response)["version"] == 3
    # Both changes are in: the other's port and the patch's workers.
    assert backend.documents[3]["workers"] == 3
    assert backend.documents[3]["gateways"][0]["bind_addresses"][0]["port"] == 9500
    # With If-Match the client asked for its version alone: a lost race is a 409.
    backend.before_publish.append(other_change)
    response = call(api, "PATCH", "/config", json.dumps({"workers": 4}).encode(),
                    content_type="application/merge-patch+json", if_match='"3"')
    assert response.status == 409


def test_rollback_publishes_an_old_version_as_a_new_one(api: AdminApi,
                                                       backend: MemoryBackend) -> None:
    call(api, "PUT", "/config", json.dumps(changed()).encode(), content_type="application/json")
    response = call(api, "POST", "/config/rollback/1")
    assert response.status == 200 and body_of(response)["version"] == 3
    assert backend.documents[3] == CONFIG
    assert call(api, "POST", "/config/rollback/99").status == 404
    assert call(api, "POST", "/config/rollback/1", if_match='"2"').status == 409


def test_every_change_is_audited(api: AdminApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="dakia.admin")
    call(api, "PUT", "/config", json.dumps(changed()).encode(), content_type="application/json")
    call(api, "PUT", "/config", json.dumps(changed(0)).encode(), content_type="application/json")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "admin 127.0.0.1 PUT /config: v1 -> v2"
    assert lines[1].startswith("admin 127.0.0.1 PUT /config: rejected (v2 kept): ")


# --- merge patch (RFC 7396, appendix A) --------------------------------------------------

@pytest.mark.parametrize("target, patch, result", [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc_7396_examples(target: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(target)
    assert apply_merge_patch(target, patch) == result
    assert target == before


# --- the HTTP server on an in-memory stream ------------------------------------------------

def serve(api: AdminApi, *reads: bytes | BaseException,
          limits: AdminLimits = AdminLimits()) -> bytes:
    stream = MemoryStream(list(reads))
    AdminServer(api, limits).serve_connection(stream, "127.0.0.1")
    assert stream.closed
    return bytes(stream.written)


def test_server_keeps_alive_and_answers_in_order(api: AdminApi) -> None:
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    written = serve(api, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                         b"GET /config HTTP/1.1\r\nHost: a\r\n" + auth + b"\r\n")
    first, second = written.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK\r\n") and b"Cache-Control: no-store" in first
    assert b"X-Content-Type-Options: nosniff" in first
    assert second.startswith(b"200 OK\r\n") and b'ETag: "1"' in second


def test_server_reads_a_body_and_head_gets_no_body(api: AdminApi) -> None:
    body = json.dumps(changed()).encode()
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    written = serve(api, b"PUT /config HTTP/1.1\r\nHost: a\r\n" + auth +
                    b"Content-Type: application/json\r\nContent-Length: " +
                    str(len(body)).encode() + b"\r\n\r\n" + body[:10], body[10:],
                    b"HEAD /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n" + auth +
                    b"\r\n")
    put, head = written.split(b"HTTP/1.1 ")[1:]
    assert put.startswith(b"200 OK") and b'"version": 2' in put
    assert head.startswith(b"200 OK") and head.endswith(b"\r\n\r\n")
    assert b"Connection: close" in head


def test_server_limits(api: AdminApi) -> None:
    limits = AdminLimits(max_body_bytes=100)
    too_big = serve(api, b"PUT /config HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
                    limits=limits)
    assert too_big.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in too_big
    chunked = serve(api, b"PUT /config HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                         b"\r\n" + b"40\r\n" + b"x" * 64 + b"\r\n" + b"40\r\n" + b"x" * 64,
                    limits=limits)
    assert chunked.startswith(b"HTTP/1.1 413 ")
    garbage = serve(api, b"NOT HTTP\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in garbage
    huge_head = serve(api, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
    assert huge_head.startswith(b"HTTP/1.1 431 ")


def test_server_timeouts(api: AdminApi) -> None:
    # Idle between requests: closed without an answer.
    assert serve(api, TimeoutError()) == b""
    # A head started and not finished: closed (the deadline runs from its first byte).
    assert serve(api, b"GET / HT", TimeoutError()) == b""
    # A body that stalls: 408.
    stalled = serve(api, b"PUT /config HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab",
                    TimeoutError())
    assert stalled.startswith(b"HTTP/1.1 408 ")


def test_server_answers_500_when_the_backend_breaks(backend: MemoryBackend) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")
    backend.status = broken  # type: ignore[method-assign]
    api = AdminApi(backend, None, parse)
    written = serve(api, b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n")
    assert written.startswith(b"HTTP/1.1 500 ") and b"boom" not in written


def test_a_master_that_cannot_be_asked_is_a_503_not_a_rejection(api, backend) -> None:
    backend.unavailable = "the master is stopping; nothing changed"
    response = api.handle(AdminRequest("PUT", "/config", {**AUTH,
                                       b"content-type": b"application/json"},
                                       json.dumps(CONFIG).encode()))
    assert response.status == 503 and ("Retry-After", "5") in response.headers
    assert json.loads(response.body) == {"error": "the master is stopping; nothing changed"}
    assert backend.number == 1


class RevisionBackend(MemoryBackend):
    """A backend on an etcd config_source: versions carry the revision they were made from
    (here 100 + the version), If-Match compares revisions, persist is refused."""

    def current(self) -> Version:
        found = super().current()
        return Version(found.number, found.document, 100 + found.number)

    def publish(self, document: dict[str, Any], *, base: int | None, persist: bool,
                origin: str) -> Outcome:
        if persist:
            return Outcome(refused="no file to persist to")
        if base is not None and base != 100 + self.number:
            return Outcome(conflict=100 + self.number)
        outcome = super().publish(document, base=None, persist=False, origin=origin)
        assert outcome.version is not None
        return Outcome(version=outcome.version, revision=100 + outcome.version)


def test_on_an_etcd_source_the_etag_is_the_revision_and_persist_is_refused() -> None:
    api = AdminApi(RevisionBackend(), AdminToken(TOKEN), parse)
    got = call(api, "GET", "/config")
    assert dict(got.headers)["ETag"] == '"101"'
    body = json.dumps(CONFIG).encode()
    stale = call(api, "PUT", "/config", body, **{"content-type": "application/json", "if-match": '"1"'})
    assert stale.status == 409 and json.loads(stale.body)["current"] == 101
    done = call(api, "PUT", "/config", body, **{"content-type": "application/json", "if-match": '"101"'})
    assert done.status == 200 and dict(done.headers)["ETag"] == '"102"'
    assert json.loads(done.body)["etcd_revision"] == 102
    patched = call(api, "PATCH", "/config", b'{"log_level": "debug"}',
                   **{"content-type": "application/merge-patch+json", "if-match": '"102"'})
    assert patched.status == 200 and dict(patched.headers)["ETag"] == '"103"'
    refused = call(api, "PUT", "/config?persist=true", body, **{"content-type": "application/json"})
    assert refused.status == 400 and json.loads(refused.body) == {
        "error": "no file to persist to"}
    listed = json.loads(call(api, "GET", "/config/versions").body)
    assert listed["current"] == 3 and listed["etcd_revision"] == 103
