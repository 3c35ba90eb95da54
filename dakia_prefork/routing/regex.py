"""Regexes from a config, run in linear time: every pattern a client's bytes meet.

Theory of operation
-------------------
Host patterns (``~regex``), ``$matches`` filters and rewrite patterns (``path_regex``) are
written by an operator but run on bytes a client chooses. With a backtracking engine
(Python's ``re``) one pattern such as ``^(a+)+$`` and one Host of 50,000 ``a`` and a ``-``
take exponential time, and the worker that runs it serves nobody else meanwhile. So every
such pattern is compiled here, with RE2 (google-re2, the ``re2`` module), whose matching
is linear in the input whatever the pattern: it never backtracks. This is what Envoy
insists on for the same reason.

RE2 has no backreferences and no lookaround (they cannot be matched in linear time). A
pattern that uses them, or anything else RE2 refuses, is a ``RegexError``; each caller turns
it into a config error at its place in the file, so ``dakia-master check`` and a reload
refuse it before any worker runs it. Other differences from ``re`` that a pattern may meet:
``\\d``, ``\\w`` and ``\\s`` are ASCII only, ``$`` matches only at the very end (never before
a final newline). Group syntax is the same: ``(...)``, ``(?P<name>...)``, ``(?:...)``.

Only where re2 cannot be imported (a platform without its wheel) does this fall back to
``re``, bounding the pattern to ``FALLBACK_MAX_PATTERN`` characters: that limits what a
config can ask, not the time a match may take, so a warning says so once.

Compiled patterns are used through the ``Regex`` and ``Match`` protocols, the part of the
API that both engines share, so the callers (some of them in the compiled build) never
depend on which engine made the object.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol, cast

log = logging.getLogger("dakia.config")

try:
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised only where google-re2 has no wheel
    _re2 = None

ENGINE: Final = "re2" if _re2 is not None else "re"

# The fallback's bound on a pattern's length (re2 needs none: its matching is linear).
FALLBACK_MAX_PATTERN: Final = 256

_warned = False


class RegexError(ValueError):
    """A pattern that cannot be compiled (the message says why)."""


class Match(Protocol):
    """What callers use of a match object (re2's and re's alike)."""

    def group(self, index: int | str = 0, /) -> str | None: ...

    def start(self) -> int: ...

    def end(self) -> int: ...


class Regex(Protocol):
    """What callers use of a compiled pattern (re2's and re's alike)."""

    @property
    def groups(self) -> int: ...

    @property
    def groupindex(self) -> Mapping[str, int]: ...

    def search(self, string: str, /) -> Match | None: ...

    def fullmatch(self, string: str, /) -> Match | None: ...


def _re2_options(ignore_case: bool) -> Any:
    assert _re2 is not None
    options = _re2.Options()
    options.log_errors = False      # errors are reported to the operator, with their path
    options.case_sensitive = not ignore_case
    return options


def compile_regex(pattern: str, ignore_case: bool = False) -> Regex:
    """Compile ``pattern`` for linear-time matching; raise RegexError when it cannot be."""
    if _re2 is not None:
        try:
            compiled: Regex = _re2.compile(pattern, options=_re2_options(ignore_case))
        except _re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            if _python_accepts(pattern):
                # Valid for Python, refused by RE2: say why, it is not a typo.
                raise RegexError(f"{reason}: RE2 does not support this (config regexes run "
                                 "in linear time: no backreferences or lookaround)") from None
            raise RegexError(str(reason)) from None
        return compiled
    return _fallback(pattern, ignore_case)


def _python_accepts(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _fallback(pattern: str, ignore_case: bool) -> Regex:
    global _warned
    if len(pattern) > FALLBACK_MAX_PATTERN:
        raise RegexError(f"longer than {FALLBACK_MAX_PATTERN} characters, the limit without "
                         "RE2 (pip install google-re2)")
    if not _warned:
        _warned = True
        log.warning("google-re2 is not installed: config regexes run on Python's re, whose "
                     "matching time a client's input can make exponential")
    try:
        # typeshed's overloads of re.Pattern do not unify with the protocol; it has them all.
        return cast(Regex, re.compile(pattern, re.IGNORECASE if ignore_case else 0))
    except re.error as exc:
        raise RegexError(str(exc)) from None
