"""Checks of a valid config that need more than the schema: can this version run it?

Building each gateway's interceptor chain is pure (no sockets, no gevent), so the master and
``dakia-master check`` run it to reject a file the workers could not load, before any
worker tries. The admin token is read here too: an admin listener other machines can reach
must have one, so such a config is refused at start, by a reload and by the admin API.
"""
from __future__ import annotations

from typing import Any

from ..admin.token import ENV_NAME, TokenError, is_loopback, read_token
from ..config.model import AdminSettings
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
    errors.extend(admin_errors(config))
    return errors


def admin_errors(config: dict[str, Any]) -> list[str]:
    """Why the ``admin`` section cannot run: an unusable token, or none for an admin
    listener off the loopback interface."""
    if config.get("admin") is None:
        return []
    admin = AdminSettings.from_config(config["admin"])
    where = "admin.token_file" if admin.token_file is not None else ENV_NAME
    try:
        token = read_token(admin.token_file)
    except TokenError as exc:
        return [f"{where}: {exc}"]
    if token is None and not is_loopback(admin.address[0]):
        return [f"admin.listen: {admin.listen} can be reached from other machines, and no "
                f"token is set; set admin.token_file or {ENV_NAME} (at least 16 characters), "
                "or listen on 127.0.0.1"]
    return []
