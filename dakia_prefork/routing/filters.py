"""The filter language: MongoDB-like conditions on a request, compiled to closures.

Theory of operation
-------------------
A filter spec maps *parts* of the request to *conditions*::

    path: {$starts_with: /payment}        # operators, all must hold
    method: {$in: [GET, POST]}
    header.x-canary: "1"                   # a scalar means $eq
    $or: [{query.debug: {$exists: true}}, {remote_addr: 127.0.0.1}]

Parts: ``path``, ``method``, ``scheme``, ``host``, ``remote_addr``, ``client_subject``
(the verified client certificate's subject on an mTLS listener, RFC 4514: ``CN=a,O=b``),
``header.<name>`` (name case-insensitive; ``header.host`` is the normalised host, as
``host``) and
``query.<name>`` (name case-sensitive, value percent-decoded by the subject). Dakia's
prefixes ``ds.req.`` and ``req.`` are accepted and stripped.

Operators on one part: ``$eq $ne $in $nin $contains $not_contains $starts_with
$not_starts_with $ends_with $not_ends_with $matches $exists``. Operands are strings;
integers and booleans are accepted and compared as their text (``true``/``false``), since
every request value is text. ``$matches`` is a search (unanchored) with the regex compiled
once, here, on RE2 (``regex``): linear in the value, whatever the pattern. Combinators ``$and: [...]``, ``$or: [...]`` and ``$not: {...}`` work both on whole
specs (combining parts) and inside one part's condition (combining operators); several
keys at one level all must hold.

Missing parts (MongoDB semantics): a header or query parameter that is absent, and a
``host``, ``remote_addr`` or ``client_subject`` that is empty (no Host header; a
unix-socket client; no client certificate), has no
value. Positive operators (``$eq $in $contains $starts_with $ends_with $matches``) are
false on it; negative ones (``$ne $nin $not_contains $not_starts_with $not_ends_with``)
are true; ``$exists: false`` is true and ``$exists: true`` false. ``$not`` simply negates,
so ``{$not: {$eq: x}}`` holds for a missing part, like ``$ne``. ``path``, ``method`` and
``scheme`` are always present.

Host comparisons ignore case: the subject's host is lower-case, so string operands on
``host``/``header.host`` are lower-cased here and their ``$matches`` regexes compiled to
ignore case. Every other comparison is case-sensitive (methods are, per RFC 9110).

Compilation does all the work that does not depend on the request: parts resolve to a
getter, operands are converted, sets and regexes built, and the tree becomes nested
closures, so evaluating a filter walks no dict and parses nothing. Every error is a
:class:`FilterError` carrying the path of the offending key.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .regex import RegexError, compile_regex
from .subject import FilterSubject

Predicate = Callable[[FilterSubject], bool]
"""A compiled filter: does this request match?"""

Value = str | None
ValueTest = Callable[[Value], bool]
Getter = Callable[[FilterSubject], Value]

_T = TypeVar("_T")

PREFIXES = ("ds.req.", "req.")
ATTRIBUTE_PARTS = ("path", "method", "scheme", "host", "remote_addr", "client_subject")
HEADER_PREFIX = "header."
QUERY_PREFIX = "query."
HOST_HEADER = "header.host"
HOST_PARTS = ("host", HOST_HEADER)
"""The parts that read the (lower-case) host and compare case-insensitively."""

# RFC 9110 token: the characters a header field name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

_PART_HELP = ("expected path, method, scheme, host, remote_addr, client_subject, header.<name> "
              "or query.<name>")


class FilterError(Exception):
    """A filter that does not compile: ``path`` locates the key, ``message`` says why."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def canonical_part(key: str) -> str | None:
    """The canonical name of a part key, or None if ``key`` names no part.

    ``ds.req.path`` → ``path``; ``req.header.X-Api`` → ``header.x-api``;
    ``query.Page`` → ``query.Page`` (query names are case-sensitive).
    """
    for prefix in PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    if key in ATTRIBUTE_PARTS:
        return key
    if key.startswith(HEADER_PREFIX):
        name = key[len(HEADER_PREFIX):]
        return HEADER_PREFIX + name.lower() if _TOKEN.fullmatch(name) else None
    if key.startswith(QUERY_PREFIX) and len(key) > len(QUERY_PREFIX):
        return key
    return None


def compile_filter(spec: Mapping[str, Any], path: str) -> Predicate:
    """Compile a filter spec (a filter mapping without its ``name``) into a predicate.

    ``path`` is where the spec sits in the config (``gateways[0].filters[2]``); errors
    extend it with the offending keys. Raises :class:`FilterError`.
    """
    return _compile_spec(spec, path)


def normalise_filter_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a spec that compiles: part keys canonical, rest unchanged.

    Prefixes are stripped and header names lower-cased (``ds.req.header.Host`` →
    ``header.host``), recursively through ``$and``/``$or``/``$not``. Conditions are copied
    as written. Call :func:`compile_filter` first: this function assumes a valid spec.
    """
    result: dict[str, Any] = {}
    for key, condition in spec.items():
        if key in ("$and", "$or"):
            result[key] = [normalise_filter_spec(item) for item in condition]
        elif key == "$not":
            result[key] = normalise_filter_spec(condition)
        else:
            result[canonical_part(key) or key] = _copy(condition)
    return result


# --- specs: parts combined -------------------------------------------------------------

def _compile_spec(spec: Any, path: str) -> Predicate:
    if not isinstance(spec, Mapping):
        raise FilterError(path, f"expected a mapping of parts to conditions, got {_kind(spec)}")
    if not spec:
        raise FilterError(path, "empty filter: give at least one condition")
    tests: list[Predicate] = []
    seen: dict[str, str] = {}
    for key, condition in spec.items():
        key_path = f"{path}.{key}"
        if not isinstance(key, str):
            raise FilterError(path, f"keys must be strings, got {key!r}")
        if key in ("$and", "$or"):
            items = _non_empty_list(condition, key_path, key)
            parts = [_compile_spec(item, f"{key_path}[{i}]") for i, item in enumerate(items)]
            tests.append(_all_of(parts) if key == "$and" else _any_of(parts))
        elif key == "$not":
            tests.append(_negate(_compile_spec(condition, key_path)))
        elif key.startswith("$"):
            raise FilterError(key_path, f"unknown combinator {key!r} ($and, $or, $not or a part)")
        else:
            part = canonical_part(key)
            if part is None:
                raise FilterError(key_path, f"unknown filter part {key!r} ({_PART_HELP})")
            if part in seen:
                raise FilterError(key_path, f"part {part!r} is also given as {seen[part]!r}")
            seen[part] = key
            is_host = part in HOST_PARTS
            tests.append(_on_part(_getter(part), _compile_condition(condition, key_path, is_host)))
    return _all_of(tests)


def _getter(part: str) -> Getter:
    """How to read ``part`` (canonical) from a subject; None means the part is missing."""
    if part in HOST_PARTS:
        return lambda subject: subject.host or None
    if part == "remote_addr":
        return lambda subject: subject.remote_addr or None
    if part == "client_subject":
        return lambda subject: subject.client_subject or None
    if part in ATTRIBUTE_PARTS:
        return operator.attrgetter(part)
    if part.startswith(HEADER_PREFIX):
        header_name = part[len(HEADER_PREFIX):]
        return lambda subject: subject.header(header_name)
    query_name = part[len(QUERY_PREFIX):]
    return lambda subject: subject.query(query_name)


def _on_part(get: Getter, test: ValueTest) -> Predicate:
    return lambda subject: test(get(subject))


# --- conditions: operators on one part's value -----------------------------------------

def _compile_condition(condition: Any, path: str, fold: bool) -> ValueTest:
    """Compile a part's condition; ``fold`` makes it case-insensitive (the host)."""
    if isinstance(condition, list):
        raise FilterError(path, "a list is not a condition; use {$in: [...]}")
    if not isinstance(condition, Mapping):
        return _eq(condition, path, fold)
    if not condition:
        raise FilterError(path, "empty condition: give at least one operator")
    tests: list[ValueTest] = []
    for op, operand in condition.items():
        op_path = f"{path}.{op}"
        if op in ("$and", "$or"):
            items = _non_empty_list(operand, op_path, op)
            parts = [_compile_condition(item, f"{op_path}[{i}]", fold)
                     for i, item in enumerate(items)]
            tests.append(_all_of(parts) if op == "$and" else _any_of(parts))
        elif op == "$not":
            tests.append(_negate(_compile_condition(operand, op_path, fold)))
        elif op in _OPERATORS:
            tests.append(_OPERATORS[op](operand, op_path, fold))
        elif isinstance(op, str) and op.startswith("$"):
            raise FilterError(op_path, f"unknown operator {op!r}")
        else:
            raise FilterError(op_path,
                              f"expected an operator (a key starting with '$'), got {op!r}")
    return _all_of(tests)


def _eq(operand: Any, path: str, fold: bool) -> ValueTest:
    expected = _text(operand, path, fold)
    return lambda value: value == expected


def _ne(operand: Any, path: str, fold: bool) -> ValueTest:
    expected = _text(operand, path, fold)
    return lambda value: value != expected


def _in(operand: Any, path: str, fold: bool) -> ValueTest:
    allowed = _text_set(operand, path, fold)
    # None is never in a set of strings, so a missing part fails $in and passes $nin.
    return lambda value: value in allowed


def _nin(operand: Any, path: str, fold: bool) -> ValueTest:
    excluded = _text_set(operand, path, fold)
    return lambda value: value not in excluded


def _contains(operand: Any, path: str, fold: bool) -> ValueTest:
    needle = _text(operand, path, fold)
    return lambda value: value is not None and needle in value


def _not_contains(operand: Any, path: str, fold: bool) -> ValueTest:
    needle = _text(operand, path, fold)
    return lambda value: value is None or needle not in value


def _starts_with(operand: Any, path: str, fold: bool) -> ValueTest:
    prefix = _text(operand, path, fold)
    return lambda value: value is not None and value.startswith(prefix)


def _not_starts_with(operand: Any, path: str, fold: bool) -> ValueTest:
    prefix = _text(operand, path, fold)
    return lambda value: value is None or not value.startswith(prefix)


def _ends_with(operand: Any, path: str, fold: bool) -> ValueTest:
    suffix = _text(operand, path, fold)
    return lambda value: value is not None and value.endswith(suffix)


def _not_ends_with(operand: Any, path: str, fold: bool) -> ValueTest:
    suffix = _text(operand, path, fold)
    return lambda value: value is None or not value.endswith(suffix)


def _matches(operand: Any, path: str, fold: bool) -> ValueTest:
    if not isinstance(operand, str):
        raise FilterError(path, f"expected a regex string, got {_kind(operand)}")
    try:
        search = compile_regex(operand, ignore_case=fold).search
    except RegexError as exc:
        raise FilterError(path, f"invalid regex: {exc}") from None
    return lambda value: value is not None and search(value) is not None


def _exists(operand: Any, path: str, fold: bool) -> ValueTest:
    if not isinstance(operand, bool):
        raise FilterError(path, f"expected true or false, got {_kind(operand)}")
    if operand:
        return lambda value: value is not None
    return lambda value: value is None


_OPERATORS: dict[str, Callable[[Any, str, bool], ValueTest]] = {
    "$eq": _eq,
    "$ne": _ne,
    "$in": _in,
    "$nin": _nin,
    "$contains": _contains,
    "$not_contains": _not_contains,
    "$starts_with": _starts_with,
    "$not_starts_with": _not_starts_with,
    "$ends_with": _ends_with,
    "$not_ends_with": _not_ends_with,
    "$matches": _matches,
    "$exists": _exists,
}

OPERATORS: frozenset[str] = frozenset(_OPERATORS)
"""The part operators (combinators excluded)."""


# --- operands --------------------------------------------------------------------------

def operand_text(operand: Any, fold: bool) -> str:
    """The text a compiled filter compares a request value with, for one operand.

    Exactly what ``$eq``, ``$in`` and ``$starts_with`` compare against (``fold`` for the
    host parts), so code that indexes filters looks up the same keys. Raises
    :class:`FilterError` for an operand that would not compile.
    """
    return _text(operand, "", fold)


def _text(operand: Any, path: str, fold: bool) -> str:
    """An operand as the text a request value is compared with."""
    if isinstance(operand, bool):
        text = "true" if operand else "false"
    elif isinstance(operand, (str, int)):
        text = str(operand)
    elif operand is None:
        raise FilterError(path, "null is not a value to compare with; "
                                "use {$exists: false} to require that the part is missing")
    elif isinstance(operand, float):
        # 1.10 would compare as "1.1": ask for the text the user meant.
        raise FilterError(path, f"expected a string, integer or boolean, got the number "
                                f"{operand!r} (quote it to compare text)")
    else:
        raise FilterError(path, f"expected a string, integer or boolean, got {_kind(operand)}")
    return text.lower() if fold else text


def _text_set(operand: Any, path: str, fold: bool) -> frozenset[str]:
    if not isinstance(operand, list):
        raise FilterError(path, f"expected a list, got {_kind(operand)}")
    return frozenset(_text(item, f"{path}[{i}]", fold) for i, item in enumerate(operand))


def _non_empty_list(operand: Any, path: str, name: str) -> list[Any]:
    if not isinstance(operand, list) or not operand:
        raise FilterError(path, f"{name} expects a non-empty list, got {_kind(operand)}")
    return operand


def _kind(value: Any) -> str:
    """A short description of a value's type for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return f"{type(value).__name__} {value!r}"


def _copy(value: Any) -> Any:
    """A deep copy of plain JSON-like data, so normalised specs share nothing with input."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# --- combining closures ----------------------------------------------------------------

def _all_of(tests: Sequence[Callable[[_T], bool]]) -> Callable[[_T], bool]:
    """A test that holds when every test holds, short-circuiting; specialised by size."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda x: first(x) and second(x)
    frozen = tuple(tests)

    def every(x: _T) -> bool:
        for test in frozen:
            if not test(x):
                return False
        return True
    return every


def _any_of(tests: Sequence[Callable[[_T], bool]]) -> Callable[[_T], bool]:
    """A test that holds when some test holds, short-circuiting; specialised by size."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda x: first(x) or second(x)
    frozen = tuple(tests)

    def some(x: _T) -> bool:
        for test in frozen:
            if test(x):
                return True
        return False
    return some


def _negate(test: Callable[[_T], bool]) -> Callable[[_T], bool]:
    return lambda x: not test(x)
