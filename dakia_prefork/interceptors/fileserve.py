"""The answer to a GET or HEAD for an opened file (RFC 9110): type, validators, conditional
requests, one byte range.

- ``Content-Type`` from the file name (Python's built-in table, the same on every machine,
  plus the configured extras); text types get ``; charset=utf-8`` unless told otherwise.
  ``X-Content-Type-Options: nosniff`` keeps browsers from second-guessing it.
- ``ETag`` is ``"<mtime in ns>-<size>"`` in hex (like nginx's, finer), and
  ``Last-Modified`` the modification time; ``If-None-Match`` (weak comparison, ``*``) or,
  without it, ``If-Modified-Since`` answer 304.
- ``Range: bytes=a-b``, ``a-`` and ``-n`` answer 206 with ``Content-Range``; a range
  starting past the end answers 416 with ``Content-Range: bytes */<size>``. Several ranges,
  other units and malformed values are ignored (200 with the whole file), which RFC 9110
  allows, and so is a range whose ``If-Range`` no longer matches. HEAD ignores ranges.
- Small files are read at once and their descriptor closed; larger ones become a
  ``FileBody`` that is read chunk by chunk as it is sent (body.py).
"""
from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime

from ..message.request import Request
from .body import FileBody
from .context import Reply
from .fileroot import Opened

SMALL_FILE = 65536
"""Files up to this size are read whole when opened; bigger ones are streamed."""

_DIGITS = re.compile(r"^[0-9]+$")
_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml")
# Types newer than (or corrected after) Python 3.11's built-in table, so every Python
# version the gateway runs on answers alike (RFC 9239 for JavaScript).
_CURRENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript",
                  ".wasm": "application/wasm", ".webp": "image/webp", ".woff": "font/woff",
                  ".woff2": "font/woff2", ".avif": "image/avif"}
_UNSATISFIABLE = (-1, -1)


@dataclass
class FileOptions:
    """How files are described: extra ``{".ext": "type"}`` mappings, the charset added to
    text types (None: none), and a Cache-Control value (None: none)."""

    types: dict[str, str] = field(default_factory=dict)
    charset: str | None = "utf-8"
    cache_control: str | None = None
    _table: mimetypes.MimeTypes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A fresh MimeTypes knows Python's built-in table only: unlike the module-level
        # functions it does not read /etc/mime.types, so every machine answers alike.
        self._table = mimetypes.MimeTypes()
        for extension, kind in {**_CURRENT_TYPES, **self.types}.items():
            self._table.add_type(kind, extension)

    def content_type(self, name: str) -> str:
        kind, encoding = self._table.guess_type(name, strict=False)
        if kind is None or encoding is not None:
            # A .gz (or other compressed) file is sent as the bytes it is, not decoded by
            # the browser under a Content-Encoding it never asked for.
            return "application/octet-stream"
        if self.charset and (kind.startswith("text/") or kind in _TEXT_TYPES):
            return f"{kind}; charset={self.charset}"
        return kind


def etag_of(info: os.stat_result) -> str:
    return f'"{info.st_mtime_ns:x}-{info.st_size:x}"'


def serve(request: Request, opened: Opened, options: FileOptions) -> Reply:
    """The Reply for ``request`` (GET or HEAD) from ``opened``, whose descriptor it owns."""
    fd = opened.fd
    try:
        info = opened.stat
        etag = etag_of(info)
        last_modified = formatdate(info.st_mtime, usegmt=True)
        headers = [("etag", etag), ("last-modified", last_modified)]
        if options.cache_control:
            headers.append(("cache-control", options.cache_control))
        if _not_modified(request, etag, info.st_mtime):
            return Reply(304, b"", headers)
        headers += [("accept-ranges", "bytes"), ("x-content-type-options", "nosniff")]
        size = info.st_size
        status, start, length = 200, 0, size
        value = request.header("range")
        if value is not None and request.method == "GET" and _if_range_holds(
                request.header("if-range"), etag, last_modified):
            span = parse_range(value, size)
            if span == _UNSATISFIABLE:
                return Reply(416, b"416 Range Not Satisfiable\n",
                             headers + [("content-range", f"bytes */{size}")])
            if span is not None:
                start, end = span
                status, length = 206, end - start + 1
                headers.append(("content-range", f"bytes {start}-{end}/{size}"))
        headers.append(("content-type", options.content_type(opened.name)))
        if request.method == "HEAD" or length > SMALL_FILE:
            body, fd = FileBody(fd, start, length), -1        # the body owns it now
            return Reply(status, body, headers)
        data = os.pread(fd, length, start)
        if len(data) != length:
            raise OSError(f"short read from {opened.name!r}: the file changed while read")
        return Reply(status, data, headers)
    finally:
        if fd >= 0:
            os.close(fd)


def _not_modified(request: Request, etag: str, mtime: float) -> bool:
    none_match = request.header("if-none-match")
    if none_match is not None:
        # Weak comparison (RFC 9110 13.1.2): W/ prefixes do not matter.
        ours = etag.removeprefix("W/")
        return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == ours
                   for tag in none_match.split(","))
    since = request.header("if-modified-since")
    if since is not None:
        try:
            return int(mtime) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False


def _if_range_holds(value: str | None, etag: str, last_modified: str) -> bool:
    """Whether a Range may be honoured under ``If-Range`` (strong comparison, or the exact
    Last-Modified date)."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    return value == last_modified


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte positions of a single ``bytes=`` range over ``size`` bytes;
    ``(-1, -1)`` when it cannot be satisfied; None when it is to be ignored."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    if not first:
        if not _DIGITS.match(last):
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return _UNSATISFIABLE
        return max(0, size - suffix), size - 1
    if not _DIGITS.match(first) or (last and not _DIGITS.match(last)):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return _UNSATISFIABLE
    return start, min(end, size - 1)
