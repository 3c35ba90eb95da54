"""A TLS listener with no certificates of its own (``tls: {}``): it serves its gateway's
ACME certificate, the bundle the ACME process keeps (acme/storage.py).

Until the first certificate arrives (or when the bundle cannot be served) the listener
serves a self-signed placeholder for the same names, made in memory, so that the listener
is up and a client sees a certificate error rather than a refused connection. Each worker
looks at the bundle once a second (worker/serve.py's heartbeat, through :meth:`stale`):
when the ACME process has renamed a new one into place, the worker builds the listener's
contexts again and new connections get the new certificate; open ones keep theirs. No
restart, no reload, and nothing for the ACME process to signal.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import tempfile

from ..acme.storage import AcmeStorage
from ..config.model import AcmeSettings
from .contexts import ListenerTls, TlsSettings

log = logging.getLogger("dakia.tls")

PLACEHOLDER_DAYS = 7

Signature = tuple[int, int, int]


def _signature(path: str) -> Signature | None:
    """What changes when a new bundle is renamed over the old one: inode, size, mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class AcmeListenerTls:
    """Where a ``tls: {}`` listener's certificate comes from, and when to read it again."""

    def __init__(self, settings: TlsSettings, acme: AcmeSettings, label: str) -> None:
        self.settings = settings
        self.names = acme.names
        self.label = label
        self.bundle = AcmeStorage(acme.storage).bundle_path(acme.names)
        self.signature: Signature | None = None
        self.placeholder = True

    def stale(self) -> bool:
        """Whether the bundle changed (or appeared) since :meth:`build` read it."""
        return _signature(self.bundle) != self.signature

    def build(self) -> ListenerTls:
        """The listener's contexts over the bundle as it is now, or over a placeholder."""
        from .certs import CertificateError
        self.signature = _signature(self.bundle)
        if self.signature is not None:
            try:
                built = ListenerTls(dataclasses.replace(
                    self.settings, certificates=((self.bundle, self.bundle),)))
            except (CertificateError, OSError, ValueError) as exc:
                # ssl.SSLError is an OSError. A broken file is the ACME process's to fix.
                log.error("listener %s: cannot serve the ACME certificate %s: %s; serving "
                          "a self-signed one meanwhile", self.label, self.bundle, exc)
            else:
                self.placeholder = False
                return built
        self.placeholder = True
        return self._placeholder()

    def _placeholder(self) -> ListenerTls:
        from .certs import self_signed
        cert_pem, key_pem = self_signed(self.names, PLACEHOLDER_DAYS)
        # ssl loads certificates from files only: a private temporary one, gone at once.
        fd, path = tempfile.mkstemp(prefix="dakia-placeholder-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(key_pem + cert_pem)
            return ListenerTls(dataclasses.replace(self.settings,
                                                   certificates=((path, path),)))
        finally:
            os.unlink(path)
