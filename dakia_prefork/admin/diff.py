"""A readable diff of two config documents: both dumped as YAML, compared line by line.

YAML in the documents' own key order is what an operator wrote and reads; a unified diff
of it is what ``git diff`` shows them. difflib's matcher is quadratic in the worst case,
so documents above ``MAX_LINES`` are refused rather than diffed slowly in the admin
process (both versions can be fetched whole and compared elsewhere).
"""
from __future__ import annotations

import difflib
from typing import Any

import yaml

MAX_LINES = 20_000


class DiffTooLarge(Exception):
    pass


def as_lines(document: dict[str, Any]) -> list[str]:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return text.splitlines(keepends=True)


def unified_diff(old_name: str, old: dict[str, Any], new_name: str,
                 new: dict[str, Any]) -> str:
    """The unified diff from ``old`` to ``new`` (3 lines of context); "" when the same."""
    before, after = as_lines(old), as_lines(new)
    if max(len(before), len(after)) > MAX_LINES:
        raise DiffTooLarge(f"a version has more than {MAX_LINES} lines of YAML: fetch both "
                           f"(GET /config/versions/N) and compare them elsewhere")
    return "".join(difflib.unified_diff(before, after, old_name, new_name))
