"""The built-in interceptors: importing this module registers every one of them by name.

One module per interceptor; each module's docstring is its reference (config, phases,
behaviour), and README.md's "Interceptors" section shows each with an example.
"""
from . import jwt_auth, try_file, use_file  # noqa: F401
from ..plugins import external, native  # noqa: F401  (external_plugin, native_plugin)
from . import (basic_auth, cors, ip_restriction, key_auth, rate_limiter,  # noqa: F401
               request_id, request_rewrite, response_rewrite, server_version, short_circuit)
