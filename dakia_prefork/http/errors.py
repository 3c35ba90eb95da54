"""How an exchange fails, by who broke it and what the client can still be told.

``UpstreamFailed`` happens before any of the response went to the client: it becomes a
502/504 answer, or a retry on another node. ``ClientGone`` ends the connection without a
word (there is nobody to tell, or the framing is broken), and ``UpstreamBroke`` is the one
case where the gateway cuts a client off on the upstream's account: a response head was
already on its way.
"""
from __future__ import annotations


class UpstreamFailed(Exception):
    """The upstream could not give a response head: answer ``status`` to the client, or
    retry on another node.

    The message goes to the error log (it may name addresses); ``client_message`` is all
    the client is told. ``sent`` is False when nothing of the request reached the node
    (the connection could not be made): such a failure may be retried whatever the method.
    """

    def __init__(self, status: int, message: str,
                 client_message: bytes = b"the upstream broke the connection",
                 sent: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.client_message = client_message
        self.sent = sent


class LookupTimeout(Exception):
    """The connect timeout expired during a name lookup (not an OSError, so that the
    resolver does not take it for the name's failure)."""


class StaleConnection(Exception):
    """A reused pooled connection was found closed before the request could be replayed."""


class ClientGone(Exception):
    """The client closed, timed out or broke the framing mid-request: just close."""


class UpstreamBroke(ClientGone):
    """The upstream failed once the response head was on its way: the client's connection
    is cut (the only signal left), and the node counts a failure."""
