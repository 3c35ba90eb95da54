"""Build hook: everything else is in setup.cfg.

``DAKIA_MYPYC=1`` compiles the modules of the request path with mypyc into C extensions,
roughly halving their cost per request (README, "Compiled build"). The pure-Python modules
stay the reference: they are what a plain install runs, and CI runs the tests against both.
mypyc needs mypy and a C compiler at build time, so that build is made without isolation:
``DAKIA_MYPYC=1 pip install --no-build-isolation '.[fast]'`` (mypy and setuptools installed).
"""
import glob
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

# The files a gateway is set up with, kept once where a checkout uses them and copied into
# the package as dakia_prefork/data/ (dakia_prefork/samples.py reads them there):
# destination inside data/ -> source in the project. MANIFEST.in puts the sources in the sdist.
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = {
    "dakia.yaml": ["etc/dakia/dakia.yaml"],
    "init": sorted(os.path.relpath(path, HERE)
                   for path in glob.glob(os.path.join(HERE, "tools", "init", "*"))),
}


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for target, sources in DATA.items():
            if not sources:
                raise SystemExit(f"setup.py: no files for data/{target}: build from the "
                                 "checkout or a complete sdist")
            for source in sources:
                path = os.path.join(HERE, source)
                if target == "init":
                    dest = os.path.join(self.build_lib, "dakia_prefork", "data", "init",
                                        os.path.basename(source))
                else:
                    dest = os.path.join(self.build_lib, "dakia_prefork", "data", target)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy2(path, dest)   # the mode too: the SysV script stays executable

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

setup(ext_modules=ext_modules, cmdclass={"build_py": BuildWithData})
