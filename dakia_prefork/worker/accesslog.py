"""The access log: one line per request, combined (nginx's, with more fields after it),
JSON, or a template of ``$field`` names (config/access_format.py lists the fields).

Lines are buffered in memory and written by ``flush()``, which the worker calls from a
timer greenlet (every 200 ms) and when the buffer passes 64 KiB, so a busy worker makes one
write per batch instead of one per request. ``reopen()`` is for log rotation (USR1).

One ``AccessLog`` serves a target and a format; a reload that changes either gives the new
``Runtime`` a new one (``for_settings``), and the worker closes the old one once it has
swapped (``close`` flushes first, so no line is lost).

A line is made from the request's exchange (``Logged``: what it read and chose) and what
``WorkerContext.access`` measured. A template is compiled once into its literal pieces and
field names; the fields of a line are computed once per line, as text for ``combined``
and templates, as JSON values (numbers, ``null`` for an absent upstream time) for ``json``.
"""
from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from ..config.access_format import COMBINED, FIELDS, parse_template
from ..config.model import Settings
from ..message.heads import RequestHead

if TYPE_CHECKING:
    from ..message.request import Request

_FLUSH_AT = 65536
_REQUEST_ID_VAR = "request_id"            # interceptors/request_id.py's ctx.vars key


class _Vars(Protocol):
    @property
    def vars(self) -> dict[str, Any]: ...


class _Run(Protocol):
    @property
    def ctx(self) -> _Vars: ...


class Logged(Protocol):
    """What a line reads from the request's exchange (http/exchange.py)."""

    @property
    def client(self) -> str: ...
    @property
    def head(self) -> RequestHead: ...
    @property
    def request(self) -> Request | None: ...
    @property
    def node_label(self) -> str: ...
    @property
    def run_(self) -> Any: ...


def _header(head: RequestHead, name: bytes) -> str:
    for key, value in head.headers:
        if key == name:
            return value.decode("latin-1")
    return "-"


def _request_id(exchange: Logged) -> str:
    """The request_id interceptor's id, else the id the client sent, else "-"."""
    run = exchange.run_
    if run is not None:
        value = run.ctx.vars.get(_REQUEST_ID_VAR)
        if value is not None:
            return str(value)
    return _header(exchange.head, b"x-request-id")


class AccessLog:
    def __init__(self, target: str, fmt: str, fields: tuple[str, ...] | None = None) -> None:
        self.target = target
        self.format = fmt
        self.fields = fields
        self.json = fmt == "json"
        self._keys: tuple[str, ...] = fields if fields is not None else FIELDS
        self._pieces = parse_template(COMBINED if fmt in ("combined", "json") else fmt)
        self.enabled = target != "off"
        self._fd = -1
        self._buffer: list[str] = []
        self._size = 0
        self._stamp_second = -1
        self._stamp = ""
        self._iso = ""
        self.reopen()

    @classmethod
    def for_settings(cls, settings: Settings) -> AccessLog:
        return cls(settings.access_log, settings.access_log_format, settings.access_log_fields)

    def matches(self, settings: Settings) -> bool:
        """Whether this log is the one ``settings`` asks for (same target and format)."""
        return (self.target == settings.access_log
                and self.format == settings.access_log_format
                and self.fields == settings.access_log_fields)

    def close(self) -> None:
        """Flush, then close the file (never stdout)."""
        self.flush()
        self.enabled = False
        if self._fd > 2:
            os.close(self._fd)
        self._fd = -1

    def reopen(self) -> None:
        if not self.enabled:
            return
        old = self._fd
        if self.target == "stdout":
            self._fd = 1
        else:
            self._fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if old > 2:
            os.close(old)

    def _now(self) -> tuple[str, str]:
        """(time_local, time) of this second, formatted once a second."""
        second = int(time.time())
        if second != self._stamp_second:
            self._stamp_second = second
            local = time.localtime(second)
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", local)
            self._iso = time.strftime("%Y-%m-%dT%H:%M:%S%z", local)
        return self._stamp, self._iso

    def values(self, exchange: Logged, status: int, sent: int, seconds: float,
               upstream_seconds: float, received: int) -> dict[str, Any]:
        """Every field of one line (config/access_format.py), as JSON values."""
        head = exchange.head
        request = exchange.request
        method = head.method.decode("latin-1")
        target = head.target.decode("latin-1")
        protocol = "HTTP/" + head.http_version.decode()
        local, iso = self._now()
        return {
            "time": iso,
            "time_local": local,
            "remote_addr": exchange.client or "-",
            "host": request.host if request is not None else "-",
            "method": method,
            "target": target,
            "protocol": protocol,
            "request": f"{method} {target} {protocol}",
            "status": status,
            "body_bytes_sent": sent,
            "request_bytes": received,
            "referer": _header(head, b"referer"),
            "user_agent": _header(head, b"user-agent"),
            "request_id": _request_id(exchange),
            "upstream_addr": exchange.node_label or "-",
            "upstream_time": round(upstream_seconds, 3) if upstream_seconds >= 0 else None,
            "request_time": round(seconds, 3),
        }

    def write(self, exchange: Logged, status: int, sent: int, seconds: float,
              upstream_seconds: float, received: int) -> None:
        values = self.values(exchange, status, sent, seconds, upstream_seconds, received)
        if self.json:
            line = json.dumps({key: values[key] for key in self._keys},
                              separators=(",", ":")) + "\n"
        else:
            values["request_time"] = "%.3f" % seconds
            values["upstream_time"] = ("%.3f" % upstream_seconds if upstream_seconds >= 0
                                       else "-")
            line = "".join([text + (str(values[name]) if name is not None else "")
                            for text, name in self._pieces]) + "\n"
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data = "".join(self._buffer).encode("utf-8", "backslashreplace")
        self._buffer.clear()
        self._size = 0
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        except OSError:
            pass
