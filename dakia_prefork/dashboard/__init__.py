"""The operator dashboard: one self-contained page the admin API serves (admin/api.py).

The page is three static files shipped in the package (``static/``): no CDN, no build
step. They hold no data: everything the page shows it fetches from the admin API with
the token the operator typed (kept in the tab's session storage), so serving the files
themselves needs no token, as a login page needs none. ``PAGE_POLICY`` is the
Content-Security-Policy sent with them: scripts and styles only from the page's own
origin, no inline code, no framing, requests only to the admin API's own origin.

The same page is served at ``/`` and at ``/dashboard/`` (the path the ``controller``
interceptor gives it on a gateway route, below its prefix), with each asset at both
places, so that relative links work from either; the script finds the API one level up
from ``/dashboard/``.
"""
from __future__ import annotations

import functools
from importlib import resources

PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; form-action 'none'; base-uri 'none'; "
               "frame-ancestors 'none'")

_TYPES = {"index.html": "text/html; charset=utf-8",
          "dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}

ROUTES: dict[str, str] = {"/": "index.html", "/dashboard/": "index.html"}
"""Request path -> the static file it serves."""
for _name in _TYPES:
    if _name != "index.html":
        ROUTES["/" + _name] = _name
        ROUTES["/dashboard/" + _name] = _name


@functools.cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes and Content-Type of static file ``name`` (one of ``ROUTES``' values)."""
    data = resources.files(__package__).joinpath("static", name).read_bytes()
    return data, _TYPES[name]
