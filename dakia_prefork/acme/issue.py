"""Obtain one certificate from an ACME server with the HTTP-01 challenge (RFC 8555).

The protocol is certbot's ``acme`` package (with ``josepy``), the client Let's Encrypt
itself maintains; this module only drives it:

1. the account key of the directory (RSA 2048, made once and kept in storage) registers,
   or finds its existing account, agreeing to the CA's terms of service;
2. a new order for the names, with a CSR over a fresh P-256 key;
3. for each pending authorization, the HTTP-01 answer is written to ``challenges/``,
   where every worker serves it at ``/.well-known/acme-challenge/<token>`` on the
   gateway's listeners, and the server is told to validate;
4. the order is polled until it is valid (or ``deadline``), finalized, and the key and the
   full chain are written as one bundle. The answers are removed whatever happened.

Runs in the ACME process only (acme/process.py), never in a worker.
"""
from __future__ import annotations

import datetime
import logging
from typing import cast

import josepy
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .. import __version__
from ..config.model import AcmeSettings
from .storage import AcmeStorage, write_private

log = logging.getLogger("dakia.acme")

NETWORK_TIMEOUT = 30
"""Seconds for each request to the ACME server."""
ORDER_DEADLINE = 120.0
"""Seconds for the server to validate every name and issue."""


class AcmeFailed(Exception):
    """The certificate could not be obtained; the message says what the server said."""


def _account_key(store: AcmeStorage, directory: str) -> josepy.JWKRSA:
    path = store.account_key_path(directory)
    try:
        with open(path, "rb") as f:
            loaded = serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        return josepy.JWKRSA(key=key)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise AcmeFailed(f"{path}: not an RSA account key")
    return josepy.JWKRSA(key=loaded)


def _register(acme: client.ClientV2, net: client.ClientNetwork, email: str | None) -> None:
    registration = messages.NewRegistration.from_data(email=email,
                                                      terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:
        # The key has an account already: use it.
        net.account = acme.query_registration(messages.RegistrationResource(
            uri=exc.location, body=messages.Registration()))


def _certificate_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def obtain(settings: AcmeSettings, store: AcmeStorage) -> str:
    """Obtain a certificate for ``settings.names``; returns the bundle's path. Raises
    AcmeFailed with the reason."""
    account_key = _account_key(store, settings.directory)
    # requests takes a CA bundle's path where acme's signature says bool.
    verify = cast(bool, settings.ca_file) if settings.ca_file else True
    net = client.ClientNetwork(account_key, verify_ssl=verify,
                               user_agent=f"dakia-prefork/{__version__}",
                               timeout=NETWORK_TIMEOUT)
    pending: list[str] = []
    try:
        acme = client.ClientV2(client.ClientV2.get_directory(settings.directory, net), net)
        _register(acme, net, settings.email)
        key_pem = _certificate_key()
        order = acme.new_order(crypto_util.make_csr(key_pem, list(settings.names)))
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue                 # proved recently: the server remembers
            name = authorization.body.identifier.value
            offered = [c for c in authorization.body.challenges
                       if isinstance(c.chall, challenges.HTTP01)]
            if not offered:
                raise AcmeFailed(f"{name}: the server offers no http-01 challenge")
            challenge = offered[0]
            response, answer = challenge.response_and_validation(account_key)
            token = challenge.chall.encode("token")
            store.write_challenge(token, answer)
            pending.append(token)
            acme.answer_challenge(challenge, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_DEADLINE)
        order = acme.poll_and_finalize(order, deadline)
    except AcmeFailed:
        raise
    except errors.ValidationError as exc:
        raise AcmeFailed("validation failed: " + "; ".join(
            _authorization_problem(a) for a in exc.failed_authzrs)) from None
    except errors.TimeoutError:
        raise AcmeFailed(f"the order was not ready within {ORDER_DEADLINE:.0f}s") from None
    except messages.Error as exc:
        raise AcmeFailed(f"the server refused: {exc}") from None
    except (errors.Error, OSError, ValueError) as exc:
        # requests' errors are OSErrors: connection refused, TLS verification, timeouts.
        raise AcmeFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        for token in pending:
            store.remove_challenge(token)
    if not order.fullchain_pem:
        raise AcmeFailed("the server finalized the order without a certificate")
    return store.write_bundle(settings.names, key_pem, order.fullchain_pem.encode("ascii"))


def _authorization_problem(authorization: messages.AuthorizationResource) -> str:
    name = authorization.body.identifier.value
    for challenge in authorization.body.challenges:
        if challenge.error is not None:
            return f"{name}: {challenge.error}"
    return f"{name}: {authorization.body.status}"
