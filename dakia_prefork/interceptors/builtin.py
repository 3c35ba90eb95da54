"""The built-in interceptors: importing this module registers every one of them by name.

One module per interceptor; each module's docstring is its reference (config, phases,
behaviour), and README.md's "Interceptors" section shows each with an example.
"""
from . import (basic_auth, key_auth, request_id, server_version,  # noqa: F401
               short_circuit)
