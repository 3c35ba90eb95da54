"""Build hook: everything else is in setup.cfg.

``DAKIA_MYPYC=1`` compiles the modules of the request path with mypyc into C extensions,
roughly halving their cost per request (README, "Compiled build"). The pure-Python modules
stay the reference: they are what a plain install runs, and CI runs the tests against both.
mypyc needs mypy and a C compiler at build time, so that build is made without isolation:
``DAKIA_MYPYC=1 pip install --no-build-isolation '.[fast]'`` (mypy and setuptools installed).
"""
import os

from setuptools import setup

# The hot path of a request: the connection loop, the exchange, the upstream client, the
# bytes written by hand, both engines and the interceptor chain. What third-party code
# holds stays interpreted, so it behaves exactly as documented: the interceptor API
# (interceptors/base.py, context.py, headers.py; compiled code checks argument types
# itself and would answer a wrong type with TypeError instead of the API's ValueError)
# and the head classes every layer builds and inspects (message/heads.py).
COMPILED = [
    "dakia_prefork/http/connection.py",
    "dakia_prefork/http/exchange.py",
    "dakia_prefork/http/client.py",
    "dakia_prefork/http/forwarding.py",
    "dakia_prefork/http/errors.py",
    "dakia_prefork/http/engines/httptools_engine.py",
    "dakia_prefork/http/engines/h11_engine.py",
    "dakia_prefork/http/engines/policy.py",
    "dakia_prefork/http/engines/validate.py",
    "dakia_prefork/http/engines/framing.py",
    "dakia_prefork/http/engines/chunked.py",
    "dakia_prefork/message/request.py",
    "dakia_prefork/message/paths.py",
    "dakia_prefork/message/target.py",
    "dakia_prefork/message/underscores.py",
    "dakia_prefork/message/wire.py",
    "dakia_prefork/routing/hosts.py",
    "dakia_prefork/interceptors/chain.py",
    "dakia_prefork/interceptors/respond.py",
    "dakia_prefork/interceptors/request_id.py",
    "dakia_prefork/interceptors/server_version.py",
    "dakia_prefork/interceptors/rate_limiter.py",
    "dakia_prefork/shm/buckets.py",
    "dakia_prefork/shm/spin.py",
    "dakia_prefork/shm/counters.py",
    "dakia_prefork/shm/nodestats.py",
    "dakia_prefork/balance/base.py",
    "dakia_prefork/balance/state.py",
    "dakia_prefork/balance/round_robin.py",
    "dakia_prefork/balance/weighted.py",
    "dakia_prefork/balance/weighted_random.py",
    "dakia_prefork/balance/least.py",
    "dakia_prefork/balance/hashing.py",
    "dakia_prefork/routing/router.py",
    "dakia_prefork/routing/filters.py",
    "dakia_prefork/routing/index.py",
    "dakia_prefork/routing/conditions.py",
    "dakia_prefork/worker/context.py",
]

ext_modules = []
if os.environ.get("DAKIA_MYPYC") == "1":
    from mypyc.build import mypycify

    # Stubs of the dependencies may be absent where the build runs: their types are then
    # Any, which compiles to the same calls the interpreter makes.
    ext_modules = mypycify(["--ignore-missing-imports", *COMPILED], opt_level="3")

setup(ext_modules=ext_modules)
