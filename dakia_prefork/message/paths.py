"""The canonical form of a request path: what routing, filters and interceptors compare.

Theory of operation
-------------------
Two spellings of one resource must not take two ways through the gateway: if ``/x/../admin``
or ``/%61dmin`` reach the upstream as ``/admin`` while a filter ``path: {$starts_with:
/admin}`` read them as something else, the filter guards nothing. So the path is brought to
one form before anything reads it (as Envoy's ``normalize_path`` and nginx do), and by
default that form is also what the upstream receives.

``normalise(path, merge_slashes, escaped_slashes)`` applies, in this order:

1. percent-escapes: an escaped unreserved character (RFC 3986 2.3: ``A-Z a-z 0-9 - . _
   ~``) is decoded (``%61`` → ``a``, ``%2e`` → ``.``); any other escape keeps its meaning
   and gets upper-case hex (``%c3%a9`` → ``%C3%A9``, RFC 3986 6.2.2.1); a ``%`` not
   followed by two hex digits makes the path invalid;
2. escaped slashes, ``%2F`` and ``%5C`` (a literal ``\\`` counts as ``%5C``: it is no URI
   character, and some servers read it as ``/``): ``KEEP`` leaves them escaped inside
   their segment, ``DECODE`` turns them into ``/`` (a separator, before step 4),
   ``REJECT`` makes the path invalid;
3. empty segments merged (``//admin`` → ``/admin``) when ``merge_slashes``;
4. dot segments removed (RFC 3986 5.2.4); a ``..`` with nothing left to remove climbs
   above the root and makes the path invalid, as does a dot segment with parameters
   (``..;``, ``.;x``): servers disagree on whether it is one (Tomcat reads ``/..;/`` as
   ``/../``), so no reading of it is safe.

Invalid is ``None``; the caller answers 400. The result is idempotent and never contains a
``.`` or ``..`` segment (tests/unit/test_path_properties.py holds both on generated paths).

Cost: ``is_canonical`` is the whole price of a plain path (no ``%``, no ``\\``, no ``//``
and no segment starting with ``.``): four substring searches in C, no allocation. Only
what fails it is split into segments.
"""
from __future__ import annotations

from typing import Final

KEEP: Final = 0
REJECT: Final = 1
DECODE: Final = 2
ESCAPED_SLASHES: Final = {"keep": KEEP, "reject": REJECT, "decode": DECODE}

_UNRESERVED: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_SLASH_ESCAPES: Final = frozenset(("2F", "5C"))


def is_canonical(path: str) -> bool:
    """Whether ``normalise`` has nothing to do on ``path`` (whatever the settings): the
    fast path of every request. False may still normalise to ``path`` itself (``/.well-
    known`` fails this test and comes back unchanged)."""
    return not ("%" in path or "/." in path or "//" in path or "\\" in path)


def normalise(path: str, merge_slashes: bool = True,
              escaped_slashes: int = KEEP) -> str | None:
    """The canonical form of an origin-form ``path`` (no query), or None if invalid."""
    if is_canonical(path):
        return path
    if "%" in path or "\\" in path:
        decoded = _unescape(path, escaped_slashes)
        if decoded is None:
            return None
        path = decoded
    return _segments(path, merge_slashes)


def _unescape(path: str, escaped_slashes: int) -> str | None:
    """Step 1 and 2 of the module docstring."""
    out: list[str] = []
    append = out.append
    i = 0
    n = len(path)
    while i < n:
        char = path[i]
        if char == "\\":
            if escaped_slashes == REJECT:
                return None
            append("/" if escaped_slashes == DECODE else "%5C")
            i += 1
            continue
        if char != "%":
            append(char)
            i += 1
            continue
        hex_digits = path[i + 1:i + 3]
        if len(hex_digits) != 2 or hex_digits[0] not in _HEX or hex_digits[1] not in _HEX:
            return None
        hex_digits = hex_digits.upper()
        decoded = chr(int(hex_digits, 16))
        if decoded in _UNRESERVED:
            append(decoded)
        elif hex_digits in _SLASH_ESCAPES:
            if escaped_slashes == REJECT:
                return None
            append("/" if escaped_slashes == DECODE else "%" + hex_digits)
        else:
            append("%" + hex_digits)
        i += 3
    return "".join(out)


def _segments(path: str, merge_slashes: bool) -> str | None:
    """Steps 3 and 4 of the module docstring, on a path whose escapes are done."""
    segments = path.split("/")
    last = len(segments) - 1
    out: list[str] = []
    for index in range(1, last + 1):
        segment = segments[index]
        if segment == "." or segment == "..":
            if segment == "..":
                if not out:
                    return None          # above the root
                out.pop()
            if index == last:
                out.append("")           # "/a/b/.." is "/a/": the directory
        elif segment[:1] == "." and (segment[:2] == ".;" or segment[:3] == "..;"):
            return None                  # a dot segment with parameters: ambiguous
        elif not segment and merge_slashes and index != last:
            continue
        else:
            out.append(segment)
    return "/" + "/".join(out)
