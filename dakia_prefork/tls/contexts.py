"""The SSL contexts of one TLS listener, and the choice among them by SNI.

Theory of operation
-------------------
A TLS listener serves several certificates. OpenSSL lets a server change the certificate
of a handshake in progress from the SNI callback, by switching the connection to another
``SSL_CTX``: Python exposes that as ``sni_callback`` and the writable
``SSLObject.context``. So a :class:`ListenerTls` builds one ``SSLContext`` per
certificate, all with the same settings (versions, ciphers, ALPN, client verification: the
verification mode and CA store of a connection come from the context it started on, the
certificate from the one it ends on, so they must not differ), and installs on the first
one, the default, an SNI callback that looks the client's name up among the certificates'
subjectAltName DNS names: exact names first, then ``*.rest`` wildcards, which cover one
label only (``*.b.example`` matches ``x.b.example``, not ``b.example`` nor
``y.x.b.example``, as clients check them). A client without SNI, or with a name no
certificate has, gets the default certificate: the handshake never fails for a name.

A ``ListenerTls`` is built from the files on disk every time a worker builds the runtime
of a config version (worker/runtime.py), so a reload, even one that changes no path, serves
the certificate files as they are then. Connections keep the context they were accepted
with; new ones take the new version's.

This module imports ``ssl`` and ``cryptography`` only: in a worker (monkey-patched), the
``ssl.SSLContext`` it builds is gevent's, whose sockets wait cooperatively; in the master
and ``check``, the same code validates a config.
"""
from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .certs import CertificateInfo

DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""TLS 1.2 suites served by default: forward secrecy and AEAD only (TLS 1.3's are
OpenSSL's, all of them AEAD)."""

ALPN = ("http/1.1",)
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class TlsSettings:
    """A bind address's normalised ``tls`` block (config/listener_tls.py)."""

    certificates: tuple[tuple[str, str], ...]     # (cert, key) paths
    client_ca: str | None
    client_subject_header: str | None
    min_version: str                               # "1.2" | "1.3"
    ciphers: str | None

    @classmethod
    def from_config(cls, tls: Mapping[str, Any]) -> TlsSettings:
        return cls(tuple((str(c["cert"]), str(c["key"])) for c in tls["certificates"]),
                   tls["client_ca"], tls["client_subject_header"], str(tls["min_version"]),
                   tls["ciphers"])


def make_context(cert_file: str, key_file: str, settings: TlsSettings) -> ssl.SSLContext:
    """A server context for one certificate. Raises ``ssl.SSLError`` or ``OSError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[settings.min_version]
    context.set_ciphers(settings.ciphers or DEFAULT_CIPHERS)
    # The server's order of suites, no TLS compression (CRIME), no renegotiation (a client
    # could make the server work for nothing, and HTTP/1.1 over TLS never needs it).
    context.options |= (ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
                        | ssl.OP_NO_RENEGOTIATION)
    context.set_alpn_protocols(list(ALPN))
    context.load_cert_chain(cert_file, key_file)
    if settings.client_ca is not None:
        context.load_verify_locations(cafile=settings.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _wildcard_of(name: str) -> str | None:
    """The wildcard name that covers ``name`` (``x.b.example`` -> ``*.b.example``)."""
    _first, dot, rest = name.partition(".")
    return "*." + rest if dot and rest else None


class ListenerTls:
    """The contexts of one TLS listener in one config version. ``context`` is the one to
    wrap accepted sockets with; its SNI callback moves each handshake to the context of
    the certificate the client asked for."""

    __slots__ = ("settings", "certificates", "context", "_by_name", "subject_header")

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self.subject_header = (None if settings.client_subject_header is None
                               else settings.client_subject_header.lower().encode("latin-1"))
        # cryptography only once a listener is TLS: a plain worker does not load it.
        from .certs import inspect
        infos: list[CertificateInfo] = []
        contexts: list[ssl.SSLContext] = []
        for cert_file, key_file in settings.certificates:
            infos.append(inspect(cert_file, key_file))
            contexts.append(make_context(cert_file, key_file, settings))
        self.certificates: tuple[CertificateInfo, ...] = tuple(infos)
        # The first certificate that has a name wins it: the order of the config decides.
        self._by_name: dict[str, ssl.SSLContext] = {}
        for info, context in zip(infos, contexts):
            for name in info.names:
                self._by_name.setdefault(name, context)
        self.context = contexts[0]
        if len(contexts) > 1:
            self.context.sni_callback = self._on_server_name

    def select(self, server_name: str | None) -> ssl.SSLContext:
        """The context whose certificate covers ``server_name``; the default otherwise."""
        if server_name:
            name = server_name.rstrip(".").lower()
            by_name = self._by_name
            found = by_name.get(name)
            if found is None:
                wildcard = _wildcard_of(name)
                if wildcard is not None:
                    found = by_name.get(wildcard)
            if found is not None:
                return found
        return self.context

    def _on_server_name(self, connection: Any, server_name: str | None,
                        _context: ssl.SSLContext) -> None:
        # Runs inside the handshake (OpenSSL's callback); returning None goes on with it.
        chosen = self.select(server_name)
        if chosen is not self.context:
            connection.context = chosen

    def names(self) -> Sequence[str]:
        return tuple(self._by_name)
