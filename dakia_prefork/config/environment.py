"""``${ENV_NAME}`` in a config's string values, substituted from the environment.

This is how secrets and per-node values stay out of a shared file (Kong and APISIX do the
same): ``password: "${REDIS_PASSWORD}"``, ``host: "${DAKIA_NODE_HOST}"``. The rules:

* a reference is ``${NAME}`` with NAME in upper case, digits and ``_``, not starting with a
  digit (POSIX's convention for environment names); it may stand alone or inside a longer
  string (``"redis://${REDIS_HOST}:6379"``);
* anything else in ``${...}`` is left as it is: ``${1}`` and ``${name}`` are how a
  ``path_regex`` replacement names its groups, and must reach it unchanged;
* ``$${`` is a literal ``${`` (for a group named in upper case: ``$${ID}``);
* the result is always a string: a config needing a number from the environment writes the
  number itself (the schema says which values must be numbers);
* only values are substituted, never keys, so the shape of a file is what its text shows;
* an unset name is an error at the value's location, and every one is reported.

The pattern has no nested repetition, so it runs in linear time on any value.

Substitution happens once, when a file is loaded. The stored, normalised versions hold the
substituted values (state_dir/config is private to the master's user, mode 0700) and are
never substituted again, so a version reloaded from the store is the same config.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .location import child

Problem = tuple[str, str]
"""A (location, message) pair."""

_REFERENCE = re.compile(r"\$(\$?)\{([A-Z_][A-Z0-9_]*)\}")


def substitute(document: Any, environ: Mapping[str, str]) -> tuple[Any, list[Problem]]:
    """A copy of ``document`` with every reference in its string values replaced, and
    the problems (unset names) at their locations; an unset reference is left as it is."""
    problems: list[Problem] = []
    return _walk(document, environ, problems, ""), problems


def _walk(document: Any, environ: Mapping[str, str], problems: list[Problem],
          path: str) -> Any:
    if isinstance(document, str):
        return _substitute_text(document, environ, problems, path) if "${" in document \
            else document
    if isinstance(document, dict):
        return {key: _walk(value, environ, problems, child(path, key))
                for key, value in document.items()}
    if isinstance(document, list):
        return [_walk(item, environ, problems, child(path, index))
                for index, item in enumerate(document)]
    return document


def _substitute_text(text: str, environ: Mapping[str, str], problems: list[Problem],
                     path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        value = environ.get(name)
        if value is None:
            problems.append((path, f"${{{name}}}: the environment variable {name} is not set"))
            return match.group(0)
        return value

    return _REFERENCE.sub(replace, text)

