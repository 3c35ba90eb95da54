"""The access log: one line per request, combined (nginx's default) or JSON.

Lines are buffered in memory and written by ``flush()``, which the worker calls from a
timer greenlet (every 200 ms) and when the buffer passes 64 KiB, so a busy worker makes one
write per batch instead of one per request. ``reopen()`` is for log rotation (USR1).

One ``AccessLog`` serves a target and a format; a reload that changes either gives the new
``Runtime`` a new one (``for_settings``), and the worker closes the old one once it has
swapped (``close`` flushes first, so no line is lost).
"""
from __future__ import annotations

import json
import os
import time

from ..config.model import Settings
from ..message.heads import RequestHead

_FLUSH_AT = 65536


def _header(head: RequestHead, name: bytes) -> str:
    for key, value in head.headers:
        if key == name:
            return value.decode("latin-1")
    return "-"


class AccessLog:
    def __init__(self, target: str, fmt: str) -> None:
        self.target = target
        self.json = fmt == "json"
        self.enabled = target != "off"
        self._fd = -1
        self._buffer: list[str] = []
        self._size = 0
        self._stamp_second = -1
        self._stamp = ""
        self.reopen()

    @classmethod
    def for_settings(cls, settings: Settings) -> AccessLog:
        return cls(settings.access_log, settings.access_log_format)

    def matches(self, settings: Settings) -> bool:
        """Whether this log is the one ``settings`` asks for (same target and format)."""
        return (self.target == settings.access_log
                and self.json == (settings.access_log_format == "json"))

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

    def _now(self) -> str:
        second = int(time.time())
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(second))
        return self._stamp

    def write(self, peer: str, head: RequestHead, host: str, status: int, sent: int,
              duration: float) -> None:
        if self.json:
            line = json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "remote_addr": peer,
                "host": host, "method": head.method.decode("latin-1"),
                "target": head.target.decode("latin-1"),
                "protocol": "HTTP/" + head.http_version.decode(), "status": status,
                "body_bytes_sent": sent, "referer": _header(head, b"referer"),
                "user_agent": _header(head, b"user-agent"),
                "request_time": round(duration, 6)}, separators=(",", ":")) + "\n"
        else:
            line = '%s - - [%s] "%s %s HTTP/%s" %d %d "%s" "%s" %.3f\n' % (
                peer or "-", self._now(), head.method.decode("latin-1"),
                head.target.decode("latin-1"), head.http_version.decode(), status, sent,
                _header(head, b"referer"), _header(head, b"user-agent"), duration)
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
