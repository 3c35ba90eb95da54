"""The canonical request path (message/paths.py): each step of the normaliser, the
settings, and the fast path's promise."""
from __future__ import annotations

import pytest

from dakia_prefork.message.paths import DECODE, KEEP, REJECT, is_canonical, normalise


@pytest.mark.parametrize(("raw", "canonical"), [
    # Dot segments (RFC 3986 5.2.4), in every spelling of a dot.
    ("/x/../admin", "/admin"),
    ("/./admin", "/admin"),
    ("/a/./b/../../admin/", "/admin/"),
    ("/a/b/..", "/a/"),
    ("/a/b/.", "/a/b/"),
    ("/a/..", "/"),
    ("/x/%2e%2e/admin", "/admin"),
    ("/x/%2E%2E/admin", "/admin"),
    ("/x/.%2e/admin", "/admin"),
    ("/%2E/admin", "/admin"),
    ("/.well-known/x", "/.well-known/x"),
    ("/a/...", "/a/..."),
    ("/a/..b/.c", "/a/..b/.c"),
    # Escaped unreserved characters are the characters; other escapes get upper-case hex.
    ("/%61dmin", "/admin"),
    ("/%41%44%4d%49%4e", "/ADMIN"),
    ("/%7e%2D%5f%2e%30", "/~-_.0"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/a%20b", "/a%20b"),
    ("/%25%32%65", "/%252e"),          # %25 stays: decoding once makes no new escape
    # Empty segments merged.
    ("//admin", "/admin"),
    ("/a///b//", "/a/b/"),
    ("//", "/"),
    ("/a//../b", "/b"),
    # Escaped slashes are kept, inside their segment (the default).
    ("/a%2fb", "/a%2Fb"),
    ("/a%5cb", "/a%5Cb"),
    ("/a\\b", "/a%5Cb"),
    ("/x/..%2fadmin", "/x/..%2Fadmin"),
    ("/", "/"),
    ("/admin", "/admin"),
])
def test_normalise(raw: str, canonical: str) -> None:
    assert normalise(raw) == canonical


@pytest.mark.parametrize("raw", [
    "/..", "/../admin", "/a/../..", "/a/../../b", "/%2e%2e/admin", "/./../x",
    # A dot segment with parameters: Tomcat reads "/..;/" as "/../".
    "/admin/..;/", "/public/..;/admin", "/a/.;x/b", "/a/..;jsessionid=1",
    # Not escapes.
    "/a%", "/a%2", "/a%zz", "/a%g0",
])
def test_invalid_paths(raw: str) -> None:
    assert normalise(raw) is None


def test_merge_slashes_off_keeps_empty_segments() -> None:
    assert normalise("//admin", merge_slashes=False) == "//admin"
    assert normalise("/a//b/", merge_slashes=False) == "/a//b/"
    # An empty segment is a segment: ".." removes it.
    assert normalise("/a//../b", merge_slashes=False) == "/a/b"


@pytest.mark.parametrize("raw", ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a\\b"])
def test_escaped_slashes_reject(raw: str) -> None:
    assert normalise(raw, escaped_slashes=REJECT) is None


def test_escaped_slashes_decode_become_separators_before_dot_segments() -> None:
    assert normalise("/a%2Fb", escaped_slashes=DECODE) == "/a/b"
    assert normalise("/x/..%2Fadmin", escaped_slashes=DECODE) == "/admin"
    assert normalise("/x\\..\\admin", escaped_slashes=DECODE) == "/admin"
    assert normalise("/x%5C..%5Cadmin", escaped_slashes=DECODE) == "/admin"
    assert normalise("/%2F%2Fadmin", escaped_slashes=DECODE) == "/admin"
    assert normalise("/..%2F", escaped_slashes=DECODE) is None
    assert normalise("/a%2Fb", escaped_slashes=KEEP) == "/a%2Fb"


@pytest.mark.parametrize("path", ["/", "/api/v1/users", "/a-b_c~d/e.json", "/a.b/c..d"])
def test_plain_paths_take_the_fast_path(path: str) -> None:
    assert is_canonical(path)
    assert normalise(path) is path


@pytest.mark.parametrize("path", ["/%61", "/./a", "/a/..", "//a", "/a\\b", "/.well-known"])
def test_anything_to_do_leaves_the_fast_path(path: str) -> None:
    assert not is_canonical(path)
