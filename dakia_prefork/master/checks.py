"""Checks of a valid config that need more than the schema: can this version run it?

Building each gateway's interceptor chain is pure (no sockets, no gevent), so the master and
``dakia-master check`` run it to reject a file the workers could not load, before any
worker tries.
"""
from __future__ import annotations

from typing import Any

from ..interceptors import InterceptorError, build_chain
from ..routing.router import GatewayRouter


def runtime_errors(config: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    for index, gateway in enumerate(config["gateways"]):
        path = f"gateways[{index}]"
        try:
            build_chain(gateway, GatewayRouter(gateway).filters, path)
        except InterceptorError as exc:
            errors.extend(exc.errors)
    return errors
