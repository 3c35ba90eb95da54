"""A bind address's ``tls`` block and ``redirect_https``: normalised and checked.

A TLS block is kept on the normalised address (like ``proxy_protocol``: the master binds
by address alone, the worker reads the rest per connection, so a reload can turn TLS on or
off, or change certificates, on a socket that stays open). Its files are resolved against
the config file's directory and checked the way a worker will use them: each certificate
loaded with its key (cryptography says which file is wrong and why), then every SSL context
built (tls/contexts.py), so a config that passes here is one the workers can serve.

``ssl``, ``cryptography`` and tls/ are imported only when a config has a TLS block: loading
a plain config loads no socket module (tests/unit/test_import_boundaries.py).
"""
from __future__ import annotations

from typing import Any

from .findings import Findings
from .location import child
from .paths import resolve

# Names that cannot carry the client subject: the framing and connection headers, the
# Host, and the hop records the gateway writes itself (http/forwarding.py).
_GATEWAY_HEADERS = frozenset((
    "host", "content-length", "transfer-encoding", "connection", "keep-alive",
    "proxy-connection", "te", "trailer", "upgrade", "expect", "content-type",
    "content-encoding", "content-range", "forwarded", "x-forwarded-for",
    "x-forwarded-proto", "x-forwarded-host", "x-real-ip", "via",
))


def normalise_tls(tls: dict[str, Any], path: str, base_dir: str,
                  findings: Findings) -> dict[str, Any]:
    """The normalised copy of a defaults-filled, schema-valid ``tls`` block; errors, if
    any, are recorded."""
    from ..tls.certs import CertificateError, inspect

    certificates = [{"cert": resolve(c["cert"], base_dir), "key": resolve(c["key"], base_dir)}
                    for c in tls["certificates"]]
    client_ca = tls["client_ca"]
    header = tls["client_subject_header"]
    result = {
        "certificates": certificates,
        "client_ca": None if client_ca is None else resolve(client_ca, base_dir),
        "client_subject_header": None if header is None else header.lower(),
        # YAML reads an unquoted 1.2 as a number: the same version.
        "min_version": {1.2: "1.2", 1.3: "1.3"}.get(tls["min_version"],
                                                   str(tls["min_version"])),
        "ciphers": tls["ciphers"],
    }
    if header is not None and header.lower() in _GATEWAY_HEADERS:
        findings.error(child(path, "client_subject_header"),
                       f"{header!r} is a header the gateway writes or relies on; choose "
                       "another name (e.g. x-client-subject)")
    if header is not None and client_ca is None:
        findings.error(child(path, "client_subject_header"),
                       "needs client_ca: without client certificates there is no subject")
    usable = True
    for index, pair in enumerate(certificates):
        try:
            inspect(pair["cert"], pair["key"])
        except CertificateError as exc:
            findings.error(child(child(path, "certificates"), index), str(exc))
            usable = False
    if usable:
        _check_contexts(result, path, findings)
    return result


def _check_contexts(tls: dict[str, Any], path: str, findings: Findings) -> None:
    """Build the listener's contexts as a worker will; name the setting that fails."""
    import ssl

    from ..tls.contexts import DEFAULT_CIPHERS, TlsSettings, make_context

    settings = TlsSettings.from_config(tls)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.set_ciphers(settings.ciphers or DEFAULT_CIPHERS)
    except ssl.SSLError:
        findings.error(child(path, "ciphers"), f"{settings.ciphers!r}: OpenSSL knows no "
                                               "cipher of this list")
        return
    if settings.client_ca is not None:
        try:
            probe.load_verify_locations(cafile=settings.client_ca)
        except FileNotFoundError:
            findings.error(child(path, "client_ca"), f"no such file: {settings.client_ca}")
            return
        except (OSError, ssl.SSLError) as exc:
            findings.error(child(path, "client_ca"),
                           f"{settings.client_ca}: cannot load the CA bundle: {_reason(exc)}")
            return
    for index, (cert_file, key_file) in enumerate(settings.certificates):
        try:
            make_context(cert_file, key_file, settings)
        except (OSError, ssl.SSLError) as exc:
            findings.error(child(child(path, "certificates"), index),
                           f"{cert_file}: OpenSSL cannot serve it: {_reason(exc)}")


def _reason(exc: OSError) -> str:
    import ssl
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc.strerror if exc.strerror else exc)


def check_redirects(binds: list[dict[str, Any]], path: str, findings: Findings) -> None:
    """``redirect_https`` needs a TCP TLS listener in the gateway to send clients to, and
    makes no sense on a TLS listener itself."""
    has_tls_port = any("tls" in b and "port" in b for b in binds)
    for index, bind in enumerate(binds):
        if not bind.get("redirect_https"):
            continue
        where = child(child(path, index), "redirect_https")
        if "tls" in bind:
            findings.error(where, "this listener is TLS already; redirect_https is for a "
                                  "plain listener")
        elif not has_tls_port:
            findings.error(where, "the gateway has no TLS listener with a port to redirect "
                                  "to; add one with a tls block")
