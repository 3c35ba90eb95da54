"""systemd readiness notification (sd_notify), without libsystemd.

A datagram to the unix socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the
abstract namespace). Outside systemd the variable is unset and ``notify`` does nothing.
"""
from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True
