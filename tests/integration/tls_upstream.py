"""``harness.Upstream`` speaking TLS, for upstream TLS tests."""
from __future__ import annotations

import socket
import ssl
from typing import Any

from tests.tlsutil import PKI

from .harness import Upstream


class TLSUpstream(Upstream):
    """``harness.Upstream`` speaking TLS: records the SNI and client certificate of each
    handshake; ``require_client_cert`` makes it an mTLS server."""

    def __init__(self, pki: PKI, *args: Any, require_client_cert: bool = False,
                 **kwargs: Any) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        if require_client_cert:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(pki.ca_file)
        self.sni: list[str | None] = []
        self.client_subjects: list[Any] = []
        self.handshake_errors: list[str] = []
        self.resumed: list[bool] = []
        self.context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        super().__init__(*args, **kwargs)

    def _serve(self, conn: socket.socket, cid: int) -> None:   # type: ignore[override]
        conn.settimeout(10)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.handshake_errors.append(str(exc))
            conn.close()
            return
        self.resumed.append(tls.session_reused)
        cert = tls.getpeercert()
        if cert:
            self.client_subjects.append(dict(x[0] for x in cert["subject"]))
        super()._serve(tls, cid)
