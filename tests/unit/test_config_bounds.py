"""Bounds on config documents (config/bounds.py) through the loader every path uses."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from dakia_prefork.config import ConfigError, load_source
from dakia_prefork.config.bounds import MAX_DEPTH, MAX_DOCUMENT_BYTES, Bounds, check_yaml
from dakia_prefork.config.errors import MAX_MESSAGE, excerpt
from dakia_prefork.config.source import _StrictLoader

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write(tmp_path, name: str, text: str) -> str:
    path = str(tmp_path / name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _error(path: str) -> str:
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_source(path)
    assert time.monotonic() - started < 5.0, "a bound must be cheap to check"
    assert len(info.value.errors) == 1
    return info.value.errors[0]


@pytest.mark.parametrize("text", [
    "a: " + "[" * 100_000 + "]" * 100_000,                               # flow sequences
    "a: " + "{b: " * 100_000 + "1" + "}" * 100_000,                      # flow mappings
    "".join("  " * i + "k:\n" for i in range(MAX_DEPTH + 5)) + "  " * (MAX_DEPTH + 5) + "v",
    "- " * (MAX_DEPTH + 2) + "x\n",                                       # block sequences
])
def test_deep_yaml_is_a_located_error_not_a_recursion_error(tmp_path, text):
    message = _error(_write(tmp_path, "deep.yaml", text))
    assert "line " in message and "column " in message
    assert f"nested deeper than {MAX_DEPTH} levels" in message


@pytest.mark.parametrize("text", [
    '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"a": ' + '{"b": ' * 100_000 + "1" + "}" * 100_000 + "}",
])
def test_deep_json_is_a_located_error(tmp_path, text):
    path = _write(tmp_path, "deep.json", text)
    message = _error(path)
    assert message.startswith(f"{path}: line 1, column ")
    assert message.endswith(f": nested deeper than {MAX_DEPTH} levels")


def test_json_brackets_inside_strings_do_not_count(tmp_path):
    text = '{"a": "' + "[" * 10_000 + '\\"{{{", "b": [[1]]}'
    assert load_source(_write(tmp_path, "s.json", text)) == {"a": "[" * 10_000 + '"{{{',
                                                             "b": [[1]]}


def test_nesting_up_to_the_limit_loads(tmp_path):
    # The top-level mapping is level 1, so MAX_DEPTH - 1 lists inside it reach the limit.
    text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    node = load_source(_write(tmp_path, "ok.yaml", text))["a"]
    lists = 0
    while isinstance(node, list):
        lists += 1
        node = node[0] if node else None
    assert lists == MAX_DEPTH - 1
    with pytest.raises(ConfigError, match="nested deeper"):
        load_source(_write(tmp_path, "over.yaml", "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH))


def test_billion_laughs_is_refused_before_expansion(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    message = _error(_write(tmp_path, "laughs.yaml", "\n".join(lines) + "\n"))
    assert "more than 1,000,000 values once aliases are expanded" in message
    assert "line " in message


def test_a_long_string_aliased_many_times_is_refused(tmp_path):
    # 1 MiB of text, aliased 100 times: few nodes, but 100 MiB once expanded.
    text = "big: &s '" + "x" * (1024 * 1024) + "'\ncopies: [" + ", ".join(["*s"] * 100) + "]\n"
    message = _error(_write(tmp_path, "text.yaml", text))
    assert "more than 64 MiB of text once aliases are expanded" in message
    # Keys are scalars too: a + abc + b + abc + abc = 11 characters.
    check_yaml("x", "a: &s abc\nb: [*s, *s]\n", _StrictLoader, Bounds(max_text=11))
    with pytest.raises(ConfigError, match="more than 10 bytes of text"):
        check_yaml("x", "a: &s abc\nb: [*s, *s]\n", _StrictLoader, Bounds(max_text=10))


def test_aliases_count_their_depth(tmp_path):
    deep = "[" * 40 + "]" * 40
    text = f"a: &d {deep}\nb: [" + "[" * 30 + "*d" + "]" * 30 + "]\n"
    message = _error(_write(tmp_path, "alias-depth.yaml", text))
    assert f"alias *d nests deeper than {MAX_DEPTH} levels" in message


def test_ordinary_aliases_and_merge_keys_still_work(tmp_path):
    text = "base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  z: 3\ncopy: *b\n"
    value = load_source(_write(tmp_path, "ok.yaml", text))
    assert value["other"] == {"x": 1, "y": [1, 2], "z": 3} and value["copy"]["y"] == [1, 2]


def test_undefined_alias_is_located(tmp_path):
    message = _error(_write(tmp_path, "undef.yaml", "a: *nope\n"))
    assert message.endswith("line 1, column 4: alias *nope refers to no complete anchor "
                            "before it")


def test_node_count_bound_is_exact():
    check_yaml("x", "[1, 2, 3]", _StrictLoader, Bounds(max_nodes=4))    # 1 list + 3 items
    with pytest.raises(ConfigError, match="more than 3 values"):
        check_yaml("x", "[1, 2, 3]", _StrictLoader, Bounds(max_nodes=3))
    with pytest.raises(ConfigError, match="more than 6 values"):
        check_yaml("x", "a: &a [1, 2]\nb: *a\n", _StrictLoader, Bounds(max_nodes=6))
    check_yaml("x", "a: &a [1, 2]\nb: *a\n", _StrictLoader, Bounds(max_nodes=9))


@pytest.mark.parametrize("size", [MAX_DOCUMENT_BYTES + 1, 50 * 1024 * 1024])
def test_oversized_file_is_refused_without_reading_it_all(tmp_path, size):
    path = str(tmp_path / "big.yaml")
    with open(path, "wb") as f:
        f.write(b"a: '")
        f.truncate(size)           # sparse: the test itself stays cheap
    message = _error(path)
    assert message == f"{path}: the file is larger than 8 MiB; a config file may have at most that"


def test_a_file_of_exactly_the_limit_is_read(tmp_path):
    path = str(tmp_path / "edge.yaml")
    body = b"a: '" + b"x" * (MAX_DOCUMENT_BYTES - 6) + b"'\n"
    assert len(body) == MAX_DOCUMENT_BYTES
    with open(path, "wb") as f:
        f.write(body)
    assert len(load_source(path)["a"]) == MAX_DOCUMENT_BYTES - 6


def test_error_messages_quote_bounded_excerpts(tmp_path):
    key = "k" * 100_000
    message = _error(_write(tmp_path, "dup.json", f'{{"{key}": 1, "{key}": 2}}'))
    assert len(message) <= MAX_MESSAGE + 40
    assert "more characters)" in message and "duplicate key" in message
    assert excerpt("short") == "short"
    assert excerpt("x" * 100, 10) == "x" * 10 + "… (90 more characters)"
    assert all(len(e) <= MAX_MESSAGE + 40 for e in ConfigError(["y" * 10**6, "z"]).errors)


def test_check_reports_deep_nesting_in_one_located_line(tmp_path):
    path = _write(tmp_path, "deep.yaml", "workers: " + "[" * 100_000 + "]" * 100_000)
    result = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "check", "-c", path],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert f"{path}: line 1, column 73: nested deeper than {MAX_DEPTH} levels" in result.stderr
    assert len(result.stderr.splitlines()) == 2
