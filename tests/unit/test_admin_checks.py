"""What the master refuses about an admin section, at start, reload and over the API."""
from __future__ import annotations

import pytest

from dakia_prefork.master.checks import admin_errors


def _config(listen: str, token_file: str | None = None) -> dict:
    return {"admin": {"listen": listen, "token_file": token_file}, "gateways": []}


@pytest.fixture(autouse=True)
def _no_token_in_the_environment(monkeypatch):
    monkeypatch.delenv("DAKIA_ADMIN_TOKEN", raising=False)


@pytest.mark.parametrize("listen", ["127.0.0.1:9901", "127.9.9.9:1", "[::1]:9901",
                                    "localhost:9901"])
def test_loopback_needs_no_token(listen):
    assert admin_errors(_config(listen)) == []


@pytest.mark.parametrize("listen", ["0.0.0.0:9901", "[::]:9901", "10.1.2.3:9901",
                                    "admin.example:9901"])
def test_anything_else_needs_a_token(listen, monkeypatch):
    [error] = admin_errors(_config(listen))
    assert error.startswith("admin.listen: ") and "DAKIA_ADMIN_TOKEN" in error
    monkeypatch.setenv("DAKIA_ADMIN_TOKEN", "a-long-enough-token-1234")
    assert admin_errors(_config(listen)) == []


def test_an_unusable_token_is_an_error_where_it_comes_from(tmp_path, monkeypatch):
    short = tmp_path / "short"
    short.write_text("abc\n")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert admin_errors(_config("127.0.0.1:1", str(short)))[0].startswith(
        "admin.token_file: the admin token must be at least 16")
    assert "empty" in admin_errors(_config("127.0.0.1:1", str(empty)))[0]
    monkeypatch.setenv("DAKIA_ADMIN_TOKEN", "short")
    assert admin_errors(_config("127.0.0.1:1"))[0].startswith("DAKIA_ADMIN_TOKEN: ")


def test_no_admin_section_no_errors():
    assert admin_errors({"admin": None, "gateways": []}) == []
