"""The server side of a TLS handshake on an accepted socket, in the connection's greenlet.

The worker accepts in its accept loops and hands each socket to a greenlet of its own
(worker/serve.py); on a TLS listener that greenlet wraps the socket without handshaking
(``do_handshake_on_connect=False``: wrapping never waits) and then handshakes here, with
the socket's timeout set to ``limits.tls_handshake_timeout`` for the handshake alone. The
sockets of a worker are gevent's, so every wait of the handshake yields to the hub: a
client that stalls mid-handshake holds only its own greenlet, never the accept loop or
another connection. The timeout is a socket timeout (gevent arms one timer per blocking
wait), not the request path's deadline sweep: it runs once per connection, not per read.
"""
from __future__ import annotations

import logging
import socket
import ssl

from .contexts import ListenerTls

log = logging.getLogger("dakia.tls")


REFUSED = "refused"
"""The handshake failed in TLS itself: a refused client certificate, an old protocol
version, no shared cipher (an ``ssl.SSLError``)."""
INCOMPLETE = "incomplete"
"""The client went away or was too slow: a reset, an early close, the timeout."""


class HandshakeFailed(Exception):
    """The client did not complete a handshake; the socket is closed already.
    ``reason``: :data:`REFUSED` or :data:`INCOMPLETE`."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def accept_tls(sock: socket.socket, tls: ListenerTls, timeout: float,
               peer: str) -> tuple[ssl.SSLSocket, str]:
    """The TLS socket over ``sock`` once its handshake is done, and the verified client
    certificate's subject (RFC 4514; "" without client certificates). Raises
    :class:`HandshakeFailed`, having closed the socket, when the handshake fails or takes
    longer than ``timeout`` seconds."""
    wrapped = tls.context.wrap_socket(sock, server_side=True,
                                      do_handshake_on_connect=False)
    try:
        wrapped.settimeout(timeout)
        wrapped.do_handshake()
        wrapped.settimeout(None)
    except (OSError, ValueError) as exc:     # SSLError, timeouts and resets are OSErrors
        _log_failure(peer, exc)
        wrapped.close()
        raise HandshakeFailed(str(exc), _reason(exc)) from None
    except BaseException:
        wrapped.close()
        raise
    subject = ""
    if tls.settings.client_ca is not None:
        # CERT_REQUIRED: the handshake failed unless a certificate verified.
        der = wrapped.getpeercert(binary_form=True)
        if der:
            # Imported here, not at the top: cryptography's x509 costs a worker about
            # 9 MB, which only an mTLS listener needs (the first import is the one paid).
            from cryptography import x509

            subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return wrapped, subject


def _reason(exc: BaseException) -> str:
    # An EOF mid-handshake is an SSLError too, but it is the client going away.
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError,
                                                              ssl.SSLZeroReturnError)):
        return REFUSED
    return INCOMPLETE


def _log_failure(peer: str, exc: BaseException) -> None:
    who = peer or "unix socket"
    if isinstance(exc, ssl.SSLError):
        # A refused client certificate, an old protocol version, no shared cipher: worth
        # a line at info, since it is what an operator looks for when a client cannot
        # connect. Anything else (scanners closing early, timeouts) is noise: debug.
        log.info("client %s: TLS handshake failed: %s", who, exc.reason or exc)
    else:
        log.debug("client %s: TLS handshake did not complete: %s", who, exc)
