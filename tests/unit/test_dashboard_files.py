"""The dashboard's files as the admin API serves them (dashboard/, admin/api.py), and the
diff of two versions the page shows: no token needed for the files, a strict policy on
them, nothing in them that could run code the page did not ship. The page itself is
tested in a real browser in tests/integration/test_dashboard.py."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from dakia_prefork import dashboard
from dakia_prefork.admin import diff
from dakia_prefork.admin.api import AdminApi, AdminRequest
from dakia_prefork.admin.server import AdminServer
from dakia_prefork.admin.token import AdminToken
from dakia_prefork.http.memory import MemoryStream

from test_admin_api import TOKEN, MemoryBackend, call, changed, parse

PAGES = ["/", "/dashboard/"]
ASSETS = ["/dashboard.js", "/dashboard.css", "/dashboard/dashboard.js",
          "/dashboard/dashboard.css"]


@pytest.fixture
def api() -> AdminApi:
    return AdminApi(MemoryBackend(), AdminToken(TOKEN), parse)


@pytest.mark.parametrize("path", PAGES + ASSETS)
def test_the_files_need_no_token_and_carry_a_strict_policy(api: AdminApi, path: str) -> None:
    response = api.handle(AdminRequest("GET", path, {}))
    assert response.status == 200 and response.body
    expected = {"html": "text/html", "js": "text/javascript", "css": "text/css"}[
        "html" if path.endswith("/") else path.rsplit(".", 1)[1]]
    assert response.content_type == f"{expected}; charset=utf-8"
    headers = dict(response.headers)
    assert headers["Content-Security-Policy"] == dashboard.PAGE_POLICY
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
    assert api.handle(AdminRequest("HEAD", path, {})).status == 200
    refused = api.handle(AdminRequest("POST", path, {}))
    assert refused.status == 405 and ("Allow", "GET") in refused.headers


def test_the_policy_allows_nothing_but_the_page_s_own_files_and_api() -> None:
    directives = dict(part.strip().split(" ", 1) for part in dashboard.PAGE_POLICY.split(";"))
    assert directives["default-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["base-uri"] == "'none'"
    assert "unsafe" not in dashboard.PAGE_POLICY


def test_only_the_files_are_open_everything_else_still_needs_the_token(api: AdminApi) -> None:
    moved = api.handle(AdminRequest("GET", "/dashboard", {}))
    assert moved.status == 301 and ("Location", "dashboard/") in moved.headers
    for path in ("/dashboard/status", "/dashboard/../status", "/index.html", "/status",
                 "/dashboard/index.html", "/dashboard/x.js"):
        assert api.handle(AdminRequest("GET", path, {})).status == 401, path


class _Page(HTMLParser):
    """What the page's HTML loads and whether any of it is inline."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href"):
                self.links.append(value or "")
            if name == "style" or name.startswith("on"):
                self.inline.append(f"{tag} {name}")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script body")


def test_the_page_loads_only_its_own_files_and_has_no_inline_code() -> None:
    page = _Page()
    page.feed(dashboard.asset("index.html")[0].decode())
    assert sorted(page.links) == ["dashboard.css", "dashboard.js"]
    assert page.inline == []


def test_the_script_never_writes_html() -> None:
    script = dashboard.asset("dashboard.js")[0].decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "localStorage"):
        assert sink not in script, sink
    # The token is read from session storage and sent as a header, nowhere else.
    assert re.findall(r"sessionStorage\.(\w+)", script) and "Authorization" in script
    assert "?token" not in script and "&token" not in script


def test_json_answers_forbid_rendering_and_framing(api: AdminApi) -> None:
    stream = MemoryStream([b"GET /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                           b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"])
    AdminServer(api).serve_connection(stream, "127.0.0.1")
    head = bytes(stream.written).split(b"\r\n\r\n", 1)[0]
    assert b"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'" in head
    stream = MemoryStream([b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"])
    AdminServer(api).serve_connection(stream, "127.0.0.1")
    head = bytes(stream.written).split(b"\r\n\r\n", 1)[0]
    assert head.count(b"Content-Security-Policy:") == 1 and b"script-src 'self'" in head


# --- the diff of two versions -------------------------------------------------------------

def test_the_diff_of_two_versions_is_a_unified_diff_of_their_yaml(api: AdminApi) -> None:
    put = call(api, "PUT", "/config", json.dumps(changed(9090)).encode(),
               content_type="application/json")
    assert put.status == 200
    response = call(api, "GET", "/config/diff?from=1&to=2")
    assert response.status == 200 and response.content_type == "text/plain; charset=utf-8"
    lines = response.body.decode().splitlines()
    assert lines[:2] == ["--- v1", "+++ v2"] and lines[2].startswith("@@")
    assert [line for line in lines if line[:1] in "+-" and line[:3] not in ("---", "+++")] \
        == ["-    port: 8080", "+    port: 9090"]
    assert call(api, "GET", "/config/diff?from=2&to=2").body == b""


@pytest.mark.parametrize(("query", "status"), [
    ("", 400), ("?from=1", 400), ("?from=1&to=x", 400), ("?from=-1&to=1", 400),
    ("?from=1&to=1234567890", 400), ("?from=1&to=7", 404)])
def test_a_diff_needs_two_kept_versions(api: AdminApi, query: str, status: int) -> None:
    response = call(api, "GET", "/config/diff" + query)
    assert response.status == status
    assert "error" in json.loads(response.body)


def test_a_diff_of_huge_documents_is_refused_not_computed(api: AdminApi,
                                                          monkeypatch: Any) -> None:
    monkeypatch.setattr(diff, "MAX_LINES", 5)
    response = call(api, "GET", "/config/diff?from=1&to=1")
    assert response.status == 422 and "compare them elsewhere" in json.loads(response.body)["error"]


def test_a_diff_needs_the_token(api: AdminApi) -> None:
    assert api.handle(AdminRequest("GET", "/config/diff?from=1&to=1", {})).status == 401
    assert call(api, "GET", "/config/diff?from=1&to=1").status == 200
