"""Compact JWS (RFC 7515) parsing and signature verification, for ``jwt_auth``.

Theory of operation
-------------------
A compact JWS is ``base64url(header) . base64url(payload) . base64url(signature)``; the
signature covers the ASCII bytes of the first two parts joined by the dot. Verifying one
safely is mostly about refusing what a lax parser would accept:

- exactly three parts, each strict base64url: the URL-safe alphabet only, no padding, no
  length that cannot be base64, no stray bits in the last character (so one token has one
  spelling and a signature cannot be "tweaked" into another valid string);
- header and payload are JSON objects, UTF-8, without duplicate keys (two parsers reading
  ``{"alg":"HS256","alg":"none"}`` differently is how verification gets bypassed), without
  NaN or Infinity;
- ``alg`` must be one the operator configured, and never ``none``; a ``crit`` header is
  refused, since no extension is understood here (RFC 7515 4.1.11);
- the algorithm decides the *type* of key that may verify it: an HMAC algorithm takes only
  a symmetric secret, RS* only an RSA public key, ES* only an EC key on its own curve,
  EdDSA only an Ed25519/Ed448 key. A public key is never used as an HMAC secret, which is
  the classic "RS256 to HS256" confusion: the attacker signs with the (public) PEM text as
  an HMAC key and a careless verifier accepts it.

HMAC tags are compared with ``hmac.compare_digest``; the public-key checks are
``cryptography``'s (OpenSSL's) own. ES* signatures are JOSE's raw ``r || s`` of fixed
width, converted to the DER form OpenSSL verifies; any other width is refused.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_TOKEN_BYTES = 16384
"""A longer token is refused before any decoding (request heads are bounded anyway)."""

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class TokenError(ValueError):
    """A token that cannot be accepted; the message is safe to show the client."""


# -- algorithms ------------------------------------------------------------------------------
Verify = Callable[[Any, bytes, bytes], bool]


def _hmac(digest: Callable[[], Any]) -> Verify:
    def verify(key: bytes, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(hmac.new(key, message, digest).digest(), signature)
    return verify


def _rsa(algorithm: hashes.HashAlgorithm) -> Verify:
    def verify(key: rsa.RSAPublicKey, message: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, message, padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            return False
        return True
    return verify


def _ecdsa(algorithm: hashes.HashAlgorithm, width: int) -> Verify:
    def verify(key: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * width:
            return False
        r = int.from_bytes(signature[:width], "big")
        s = int.from_bytes(signature[width:], "big")
        try:
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(algorithm))
        except InvalidSignature:
            return False
        return True
    return verify


def _eddsa(key: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey, message: bytes,
           signature: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Algorithm:
    """A JWS ``alg``: the key type it needs (``kty`` in JWK terms), the curve for EC and
    OKP keys, the minimum HMAC secret length, and the verification."""

    kty: str
    verify: Verify
    curves: tuple[str, ...] = ()
    min_secret: int = 0


ALGORITHMS: dict[str, Algorithm] = {
    # RFC 7518 3.2: an HMAC key at least as long as the hash output.
    "HS256": Algorithm("oct", _hmac(hashlib.sha256), min_secret=32),
    "HS384": Algorithm("oct", _hmac(hashlib.sha384), min_secret=48),
    "HS512": Algorithm("oct", _hmac(hashlib.sha512), min_secret=64),
    "RS256": Algorithm("RSA", _rsa(hashes.SHA256())),
    "RS384": Algorithm("RSA", _rsa(hashes.SHA384())),
    "RS512": Algorithm("RSA", _rsa(hashes.SHA512())),
    "ES256": Algorithm("EC", _ecdsa(hashes.SHA256(), 32), ("P-256",)),
    "ES384": Algorithm("EC", _ecdsa(hashes.SHA384(), 48), ("P-384",)),
    "ES512": Algorithm("EC", _ecdsa(hashes.SHA512(), 66), ("P-521",)),
    "EdDSA": Algorithm("OKP", _eddsa, ("Ed25519", "Ed448")),
}
"""Every algorithm this module verifies. ``none`` is not one of them, on purpose."""


# -- parsing ---------------------------------------------------------------------------------
def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding; TokenError for anything else."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise TokenError("malformed token (bad base64url)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed token (bad base64url)") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        raise TokenError("malformed token (non-canonical base64url)")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TokenError("malformed token (duplicate JSON member)")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise TokenError("malformed token (NaN or Infinity in JSON)")


def json_object(raw: bytes, what: str) -> dict[str, Any]:
    """``raw`` as a JSON object (strict: UTF-8, no duplicate members, finite numbers)."""
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TokenError(f"malformed token ({what} is not JSON)") from None
    if not isinstance(value, dict):
        raise TokenError(f"malformed token ({what} is not a JSON object)")
    return value


@dataclass(frozen=True)
class Token:
    """A parsed, not yet verified, compact JWS."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def parse(token: str, allowed: frozenset[str]) -> Token:
    """Split and decode ``token``, checking its header against the ``allowed`` algorithms.

    The signature is not checked here: see ``verify``.
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token (not a compact JWS)")
    header_text, payload_text, signature_text = parts
    header = json_object(b64url_decode(header_text), "header")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("malformed token (no alg)")
    if alg not in allowed or alg not in ALGORITHMS:
        # ``none`` is never in ALGORITHMS, whatever the configuration says.
        raise TokenError("algorithm not allowed")
    if "crit" in header:
        raise TokenError("unsupported critical header parameters")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenError("malformed token (kid is not a string)")
    signature = b64url_decode(signature_text)
    claims = json_object(b64url_decode(payload_text), "payload")
    return Token(header, claims, (header_text + "." + payload_text).encode("ascii"), signature)
