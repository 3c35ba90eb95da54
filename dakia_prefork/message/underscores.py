"""``headers_with_underscores``: request header names with ``_`` (nginx's
``underscores_in_headers``).

Many servers and frameworks (CGI and WSGI among them) map ``X-User`` and ``X_User`` to the
same variable, so a client could send ``X_User`` past a gateway that sets or strips
``X-User`` and have the upstream read it as that header. Such names are dropped by default,
as nginx does; ``reject`` answers 400, ``allow`` lets them through (and costs nothing on
the request path).
"""
from __future__ import annotations

from typing import Final

from .heads import RequestHead

ALLOW: Final = 0
DROP: Final = 1
REJECT: Final = 2
MODES: Final = {"allow": ALLOW, "drop": DROP, "reject": REJECT}


def without_underscores(head: RequestHead) -> RequestHead:
    """``head`` without the headers whose names have ``_``."""
    return RequestHead(head.method, head.target, head.http_version,
                       [(n, v) for n, v in head.headers if b"_" not in n],
                       head.content_length, head.chunked, head.keep_alive,
                       head.expect_continue, head.upgrade)
