"""Request targets (RFC 9112 3.2): an absolute-form target turned into what a proxy sends.

Theory of operation
-------------------
A client may send ``GET http://example.com:8080/a?b HTTP/1.1``. RFC 9112 3.2.2 says the
authority of such a target decides the host and replaces any Host header. Reading Host for
routing and forwarding the absolute URI (or the other way round) is how a target naming an
unserved host gets proxied as a served one, so the engines' common policy
(http/engines/policy.py) rewrites an absolute-form head once, before anything reads it:
the target becomes origin-form (``/a?b``; ``/`` for an empty path, ``*`` for OPTIONS, as
3.2.4 says) and Host becomes the authority. Everything after, routing, filters,
interceptors, forwarding and the upstream, then sees one request with one host.

The other forms are decided by the policy too: authority-form is CONNECT's only (CONNECT is
answered 405: the gateway opens no tunnels), asterisk-form ``*`` is OPTIONS' only and is
answered by the gateway itself (exchange.py).
"""
from __future__ import annotations

from .heads import Headers


def split_absolute(target: bytes) -> tuple[bytes, bytes] | None:
    """(authority, rest) of an absolute-form ``http(s)://authority[/path][?query]`` target
    whose scheme the caller has checked; ``rest`` is what follows the authority, possibly
    empty. None when the authority is unusable: empty or with userinfo (RFC 9110 4.2.4:
    a sender must not send it, and ``http://served@other/`` is read differently by
    different software), or a fragment in the target."""
    start = target.find(b"://") + 3
    end = start
    size = len(target)
    while end < size and target[end] not in b"/?":
        end += 1
    authority = target[start:end]
    if not authority or b"@" in authority or b"#" in target:
        return None
    return authority, target[end:]


def origin_form(rest: bytes, method: bytes) -> bytes:
    """The origin-form of what follows an absolute target's authority (RFC 9112 3.2.4)."""
    if not rest:
        return b"*" if method == b"OPTIONS" else b"/"
    if rest[0] == 0x3F:     # "?": an empty path with a query
        return b"/" + rest
    return rest


def with_host(headers: Headers, authority: bytes) -> Headers:
    """``headers`` with Host replaced by ``authority`` (added first if there was none)."""
    out: Headers = [(b"host", authority)]
    for name, value in headers:
        if name != b"host":
            out.append((name, value))
    return out
