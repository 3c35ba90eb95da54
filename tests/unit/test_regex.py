"""Config regexes on RE2 (routing/regex.py): linear time, the group API callers use, and
the config errors for what RE2 cannot run."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from dakia_prefork.config import ConfigError, validate
from dakia_prefork.interceptors.pathrewrite import PathTemplate
from dakia_prefork.routing import regex
from dakia_prefork.routing.hosts import HostMatcher
from dakia_prefork.routing.regex import RegexError, compile_regex

_GATEWAY: dict[str, Any] = {
    "name": "main",
    "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
    "upstreams": [{"name": "app", "upstream_nodes": [
        {"address": {"host": "127.0.0.1", "port": 3000}}]}],
}


def _errors(**gateway: Any) -> list[str]:
    config = copy.deepcopy(_GATEWAY)
    config.update(gateway)
    with pytest.raises(ConfigError) as info:
        validate({"gateways": [config]}, base_dir="/etc/dakia")
    return info.value.errors


def test_re2_is_the_engine() -> None:
    # google-re2 is a dependency: the fallback is only for platforms without its wheel.
    assert regex.ENGINE == "re2"


def test_search_fullmatch_and_case() -> None:
    pattern = compile_regex(r"^/v[0-9]+/")
    assert pattern.search("/v2/items") is not None
    assert pattern.search("/x/v2/") is None
    assert compile_regex("b").search("abc") is not None
    assert compile_regex("b").fullmatch("abc") is None
    assert compile_regex("API", ignore_case=True).search("x.api.example") is not None
    assert compile_regex("API").search("x.api.example") is None


def test_dollar_matches_only_at_the_end() -> None:
    # Python's re lets '$' match before a final newline; RE2 does not.
    assert compile_regex("^/admin$").search("/admin\n") is None
    assert compile_regex("^/admin$").search("/admin") is not None


def test_groups_as_pathrewrite_uses_them() -> None:
    pattern = compile_regex(r"^/(?P<kind>[a-z]+)/(\d+)(x)?")
    assert pattern.groups == 3
    assert dict(pattern.groupindex) == {"kind": 1}
    match = pattern.search("/users/42/rest")
    assert match is not None
    assert (match.group(0), match.group(1), match.group("kind"), match.group(2)) == \
        ("/users/42", "users", "users", "42")
    assert match.group(3) is None
    assert (match.start(), match.end()) == (0, 9)


@pytest.mark.parametrize("pattern,replacement,path,expected", [
    (r"^/users/(\d+)$", "/v2/users/$1", "/users/42", "/v2/users/42"),
    (r"^/(?P<a>\w+)/(?P<b>\w+)", "/${b}/${a}", "/one/two/three", "/two/one/three"),
    (r"^/(?P<a>\w+)/(\w+)", "/${2}/${a}/$0", "/one/two", "/two/one//one/two"),
    (r"x(a)?y", "[${1}]", "/xy/xay", "/[]/xay"),
    (r"%2F", "/", "/a%2Fb", "/a/b"),
])
def test_path_templates_on_re2(pattern: str, replacement: str, path: str,
                               expected: str) -> None:
    assert PathTemplate(pattern, replacement).apply(path) == expected


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?P<x>a)(?P=x)", r"a(?=b)", r"a(?!b)",
                                     r"(?<=a)b", r"(?<!a)b", r"a++", r"(?>a)"])
def test_what_re2_cannot_run_is_an_error(pattern: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_regex(pattern)
    message = str(info.value)
    # Valid for Python's re (possessive and atomic forms since 3.11), so the hint says why.
    assert "RE2 does not support this" in message, message


@pytest.mark.parametrize("pattern", ["(", "[a", "a{2,1}", "*"])
def test_syntax_errors_say_only_what_is_wrong(pattern: str) -> None:
    with pytest.raises(RegexError) as info:
        compile_regex(pattern)
    assert "RE2 does not support" not in str(info.value)


def test_catastrophic_patterns_match_in_linear_time() -> None:
    # Each would take longer than the universe has existed on a backtracking engine; here
    # each is a few milliseconds (pytest's timeout bounds the test, not an assertion).
    text = "a" * 50_000 + "-"
    assert compile_regex(r"^(a+)+$").fullmatch(text) is None
    assert compile_regex(r"^(a|a)*$").search(text) is None
    assert compile_regex(r"(a*)*b").search(text) is None
    assert compile_regex(r"^(\w+\s?)*$").search(text) is None
    matcher = HostMatcher([r"~^(a+)+$"])
    assert matcher.match(text) is None
    assert matcher.match("aaaa") == r"~^(a+)+$"


def test_fallback_bounds_the_pattern_length() -> None:
    assert regex._fallback("^a+$", False).fullmatch("aaa") is not None
    assert regex._fallback("A", True).search("a") is not None
    with pytest.raises(RegexError, match="longer than"):
        regex._fallback("a" * (regex.FALLBACK_MAX_PATTERN + 1), False)
    with pytest.raises(RegexError):
        regex._fallback("(", False)


def test_config_errors_carry_their_path() -> None:
    errors = _errors(
        downstreams=[{"host": "example.com"}, {"host": r"~^(a+)\1$"}],
        filters=[{"name": "f", "path": {"$matches": r"^/(?!admin)"}},
                 {"name": "g", "$or": [{"header.x-a": {"$matches": r"(?<=x)y"}}]}],
        interceptors=[
            {"name": "request_rewrite",
             "config": {"path_regex": {"pattern": r"^/(a)\1", "replacement": "/$1"}}},
            {"name": "use_file",
             "config": {"root": "/tmp", "path_regex": {"pattern": r"(?=x)", "replacement": "/"}}},
        ])
    joined = "\n".join(errors)
    for where in ("gateways[0].downstreams[1].host: invalid regex",
                  "gateways[0].filters[0].path.$matches: invalid regex",
                  "gateways[0].filters[1].$or[0].header.x-a.$matches: invalid regex",
                  "gateways[0].interceptors[0].config.path_regex.pattern",
                  "gateways[0].interceptors[1].config.path_regex.pattern"):
        assert where in joined, joined
    assert joined.count("RE2 does not support this") == 5, joined


def test_without_re2_the_bounded_fallback_is_used() -> None:
    """In a fresh interpreter where re2 cannot be imported (as on a platform without its
    wheel): patterns compile on re, long ones are refused, and a warning is logged."""
    code = textwrap.dedent("""
        import logging, sys
        sys.modules["re2"] = None          # makes `import re2` raise ImportError
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout)
        from dakia_prefork.routing import regex
        from dakia_prefork.routing.hosts import HostMatcher
        assert regex.ENGINE == "re", regex.ENGINE
        assert HostMatcher(["~^api[0-9]+$"]).match("api7") == "~^api[0-9]+$"
        try:
            regex.compile_regex("a" * 300)
        except regex.RegexError as exc:
            print("refused:", exc)
        print("backreference:", regex.compile_regex(r"(a)\\1").fullmatch("aa") is not None)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__)))))
    assert result.returncode == 0, result.stderr
    assert "refused: longer than 256 characters" in result.stdout
    assert "google-re2 is not installed" in result.stdout
    assert "backreference: True" in result.stdout
