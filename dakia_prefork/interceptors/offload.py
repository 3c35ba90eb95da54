"""Run CPU-heavy work (password hashing) without stalling the worker's other connections.

A gevent worker serves every connection from one thread: a 60 ms scrypt run inline would
hold all of them for 60 ms. OpenSSL's scrypt and PBKDF2 (through ``cryptography``) and
``bcrypt`` release the GIL while they compute, so gevent's thread pool runs them in
parallel with the hub, and the greenlet that asked simply waits for the result.

Outside a gevent worker (the master, ``check``, unit tests, tools) the call runs inline.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, on gevent's thread pool when this process runs a gevent hub."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent
        result: T = gevent.get_hub().threadpool.apply(fn, args)
        return result
    return fn(*args)
