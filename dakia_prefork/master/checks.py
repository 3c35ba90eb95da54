"""Checks of a valid config that need more than the schema: can this version run it?

Building each gateway's interceptor chain is pure (no sockets, no gevent), so the master and
``dakia-master check`` run it to reject a file the workers could not load, before any
worker tries. The admin token is read here too: an admin listener other machines can reach
must have one, so such a config is refused at start, by a reload and by the admin API.
"""
from __future__ import annotations

import os
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


def certificate_report(config: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What ``check`` says of each TLS listener's certificates, in a valid config: one line
    per certificate (where, file, names, expiry) and the warnings (expired, or expiring
    within tls/certs.py's ``EXPIRY_WARNING_DAYS``). Loads the files again: validation
    checked that they load."""
    from ..tls.certs import CertificateError, inspect

    lines: list[str] = []
    warnings: list[str] = []
    for g_index, gateway in enumerate(config["gateways"]):
        for b_index, bind in enumerate(gateway["bind_addresses"]):
            if "tls" not in bind:
                continue
            if not bind["tls"]["certificates"]:
                line, warning = _acme_report(gateway["acme"],
                                             f"gateways[{g_index}].bind_addresses[{b_index}]"
                                             ".tls")
                lines.append(line)
                if warning is not None:
                    warnings.append(warning)
                continue
            for c_index, pair in enumerate(bind["tls"]["certificates"]):
                where = (f"gateways[{g_index}].bind_addresses[{b_index}].tls."
                         f"certificates[{c_index}]")
                try:
                    info = inspect(pair["cert"], pair["key"])
                except CertificateError as exc:     # changed since validation
                    warnings.append(f"{where}: {exc}")
                    continue
                names = ", ".join(info.names) or "no DNS names (served as the default only)"
                lines.append(f"{where}: {info.cert_file}: {names}; expires "
                             f"{info.not_after.strftime('%Y-%m-%d %H:%M UTC')}")
                problem = info.expiry_problem()
                if problem is not None:
                    warnings.append(f"{where}: {problem}")
                problem = key_exposure(pair["key"])
                if problem is not None:
                    warnings.append(f"{where}: {problem}")
    return lines, warnings


def key_exposure(key_file: str) -> str | None:
    """A warning when a private key file may be read by others than its owner (and its
    group's members: a key shared with a group is a choice; for others it is a leak)."""
    import stat
    try:
        mode = stat.S_IMODE(os.stat(key_file).st_mode)
    except OSError:
        return None
    if mode & 0o004:
        return (f"{key_file}: the private key is readable by every user (mode "
                f"{mode:04o}); chmod 600 it")
    return None


def _acme_report(acme: dict[str, Any], where: str) -> tuple[str, str | None]:
    """The line of a ``tls: {}`` listener: the ACME bundle it serves, or that there is
    none yet (a placeholder is served until the ACME process obtains one)."""
    from ..acme.storage import AcmeStorage
    from ..tls.certs import CertificateError, inspect

    bundle = AcmeStorage(acme["storage"]).bundle_path(tuple(acme["names"]))
    names = ", ".join(acme["names"])
    if not os.path.exists(bundle):
        return (f"{where}: ACME certificate for {names}: not obtained yet (a self-signed "
                "placeholder is served until it is)", None)
    try:
        info = inspect(bundle, bundle)
    except CertificateError as exc:
        return f"{where}: ACME certificate for {names}: {exc}", f"{where}: {exc}"
    problem = info.expiry_problem()
    return (f"{where}: ACME certificate {bundle}: {', '.join(info.names)}; expires "
            f"{info.not_after.strftime('%Y-%m-%d %H:%M UTC')}",
            None if problem is None else f"{where}: {problem}")
