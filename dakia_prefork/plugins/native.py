"""``native_plugin``: an interceptor in C (or anything with a C ABI), loaded with ctypes.

::

    config:
      library: /usr/lib/dakia/example.so    # required; relative to the config file's directory
      symbol: dakia_request                 # the function to call (the default)
      phases: [request_filter]              # request_filter, upstream_proxy_filter,
                                            # pre_upstream_request
      run: inline                           # inline | thread
      timeout: 1                            # seconds; run: thread only
      on_failure: deny                      # deny | allow
      failure_status: 503
      max_message_bytes: 16384              # the size of the answer buffer

The ABI (tools/plugins/PROTOCOL.md, "Native plugins")::

    int dakia_request(const char *method, const char *target, const char *headers_json,
                      char *out, size_t out_len);

``target`` is the path and query as they will go upstream, ``headers_json`` a JSON array
of ``[name, value]`` pairs (ASCII: other characters are ``\\u`` escapes). Return 0 to let
the request continue; a positive count after writing that many bytes of a JSON verdict
(verdict.py, the same as external plugins') into ``out``; a negative number on error (the
``on_failure`` policy applies, as it does to an answer of ``out_len`` bytes or more).

``run: inline`` calls the function on the worker's event-loop thread: nothing else in that
worker runs during the call, which is right for functions of a few microseconds (a thread
hop would cost more than the call). ``run: thread`` calls it on gevent's thread pool, with
``timeout``: the library must then be thread-safe, and a call that overruns its timeout is
abandoned (the policy applies) but keeps its pool thread until it returns, since C code
cannot be interrupted. ctypes releases the GIL during the call either way.

A native plugin runs inside the worker: a crash in it takes the worker down (the master
starts another). Code you do not trust belongs in an external plugin.

The library is loaded on first use in each worker, never in the master: a library the
master had loaded would be inherited by every worker it forks, and ``dlopen`` returns the
already-loaded copy for the same path, so a rebuilt library would never be picked up.
``check`` loads it in a short-lived subprocess instead, to report a missing file, a
library that does not load, or a missing symbol. A rebuilt library at the same path is used
by new workers (``dakia-master upgrade``); a library with a new file name, on reload.
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from typing import Any, Callable

from ..interceptors.base import Interceptor, Problem, register
from ..interceptors.context import Context, Reply
from ..interceptors.resources import Resources
from .policy import FailurePolicy
from .protocol import ProtocolError, decode, request_of
from .verdict import VerdictError, apply, parse

_PROBE = "import ctypes, sys; getattr(ctypes.CDLL(sys.argv[1]), sys.argv[2])"
_PROBE_TIMEOUT = 20


class NativeError(Exception):
    """The library could not be called, or returned an error."""


class Library:
    """A shared library and its entry function, loaded on first use (per worker)."""

    def __init__(self, path: str, symbol: str) -> None:
        self.path = path
        self.symbol = symbol
        self._function: Callable[..., int] | None = None

    def function(self) -> Callable[..., int]:
        if self._function is None:
            try:
                function = getattr(ctypes.CDLL(self.path), self.symbol)
            except (OSError, AttributeError) as exc:
                raise NativeError(f"cannot load {self.symbol} from {self.path}: {exc}") from None
            function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                 ctypes.c_char_p, ctypes.c_size_t]
            function.restype = ctypes.c_int
            self._function = function
        return self._function

    def call(self, method: bytes, target: bytes, headers: bytes, out_len: int) -> bytes | None:
        """The verdict the function wrote, or None when it returned 0 (continue)."""
        out = ctypes.create_string_buffer(out_len)
        code = self.function()(method, target, headers, out, out_len)
        if code < 0:
            raise NativeError(f"{self.symbol} returned {code}")
        if code >= out_len:
            raise NativeError(f"{self.symbol} returned {code}: more than the {out_len}-byte "
                              "buffer (max_message_bytes)")
        return out.raw[:code] if code else None


def _in_thread(fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
    """``fn(*args)`` on gevent's thread pool within ``timeout`` (inline outside gevent)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return fn(*args)
    import gevent
    result = gevent.get_hub().threadpool.spawn(fn, *args)
    try:
        return result.get(timeout=timeout)
    except gevent.Timeout:
        raise TimeoutError(f"no answer within {timeout}s (the call keeps its thread until "
                           "it returns)") from None


@register
class NativePlugin(Interceptor):
    name = "native_plugin"

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        """Make ``library`` absolute, build, then load it in a subprocess (see above)."""
        config = entry["config"]
        config["library"] = os.path.join(base_dir, config["library"])
        problems = super().check(entry, base_dir)
        if problems:
            return problems
        try:
            done = subprocess.run([sys.executable, "-c", _PROBE, config["library"],
                                   config.get("symbol", "dakia_request")],
                                  capture_output=True, text=True, timeout=_PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return [("config.library", f"loading it took over {_PROBE_TIMEOUT}s")]
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            return [("config.library", f"cannot be loaded: {lines[-1]}")]
        return []

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        self.path: str = config["library"]
        if not os.path.isfile(self.path):
            raise ValueError(f"config.library: no such file: {self.path}")
        self.symbol: str = config.get("symbol", "dakia_request")
        self.phases = frozenset(config.get("phases", ["request_filter"]))
        self.threaded = config.get("run", "inline") == "thread"
        self.timeout = float(config.get("timeout", 1.0))
        self.out_len = int(config.get("max_message_bytes", 16384))
        self.policy = FailurePolicy(f"native_plugin {self.path}",
                                    config.get("on_failure", "deny"),
                                    int(config.get("failure_status", 503)))
        self.library: Library | None = None

    def attach(self, resources: Resources, ident: str) -> None:
        # A holder, not a loaded library: attach also runs in the master's checks.
        self.library = resources.keep(("native_plugin", self.path, self.symbol),
                                      lambda: Library(self.path, self.symbol))

    def _call(self, ctx: Context, phase: str) -> Reply | None:
        if phase not in self.phases:
            return None
        if self.library is None:
            self.library = Library(self.path, self.symbol)
        request = request_of(ctx)
        target = request["path"] + (f"?{request['query']}" if request["query"] else "")
        args = (request["method"].encode("ascii"), target.encode("latin-1"),
                json.dumps(request["headers"], ensure_ascii=True).encode("ascii"),
                self.out_len)
        try:
            if self.threaded:
                answer = _in_thread(self.library.call, args, self.timeout)
            else:
                answer = self.library.call(*args)
            if answer is None:
                return None
            return apply(parse(decode(answer), phase), ctx)
        except (NativeError, TimeoutError, ProtocolError, VerdictError) as exc:
            return self.policy.failed(ctx, phase, str(exc))

    def request_filter(self, ctx: Context) -> Reply | None:
        return self._call(ctx, "request_filter")

    def upstream_proxy_filter(self, ctx: Context) -> Reply | None:
        return self._call(ctx, "upstream_proxy_filter")

    def pre_upstream_request(self, ctx: Context) -> Reply | None:
        return self._call(ctx, "pre_upstream_request")
