"""Verification keys for ``jwt_auth``: an HMAC secret, a PEM public key, a JWKS document.

Every key is typed when it is loaded (``kty`` in JWK terms: ``oct``, ``RSA``, ``EC``,
``OKP``, and the curve where there is one), and jws.py lets an algorithm use only keys of
its own type: that typing is what makes algorithm confusion impossible, so it is done here
once, at config load, and not guessed from bytes at request time.

Loading refuses what would make verification weaker than it looks: RSA keys under 2048
bits, EC curves JOSE does not define, private keys in a file meant for public ones (a
private key there is a leak waiting to happen), JWKS entries for encryption.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .jws import ALGORITHMS, Algorithm

MIN_RSA_BITS = 2048

_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
_CURVE_NAMES = {curve.name: name for name, curve in _CURVES.items()}
_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}


@dataclass(frozen=True)
class Key:
    """One verification key: its type, curve, material, and what the source says of it."""

    kty: str                  # oct | RSA | EC | OKP
    curve: str | None         # P-256, P-384, P-521, Ed25519, Ed448; None for oct and RSA
    material: Any             # bytes (oct) or a cryptography public key object
    kid: str | None = None
    alg: str | None = None    # a JWK's own "alg": the only algorithm it may verify

    def fits(self, alg: str, algorithm: Algorithm) -> bool:
        """Whether this key may verify a token signed with ``alg``."""
        return (self.kty == algorithm.kty
                and (not algorithm.curves or self.curve in algorithm.curves)
                and (self.alg is None or self.alg == alg))

    def describe(self) -> str:
        kind = {"oct": "HMAC secret", "RSA": "RSA key", "EC": "EC key", "OKP": "EdDSA key"}
        text = kind[self.kty] + (f" ({self.curve})" if self.curve else "")
        return text + (f" kid={self.kid!r}" if self.kid else "")


def secret_key(secret: bytes) -> Key:
    return Key("oct", None, secret)


def public_key(value: Any, kid: str | None = None, alg: str | None = None) -> Key:
    """A Key from a cryptography public key object; ValueError for unusable ones."""
    if isinstance(value, rsa.RSAPublicKey):
        if value.key_size < MIN_RSA_BITS:
            raise ValueError(f"a {value.key_size}-bit RSA key is too short "
                             f"(at least {MIN_RSA_BITS})")
        return Key("RSA", None, value, kid, alg)
    if isinstance(value, ec.EllipticCurvePublicKey):
        name = _CURVE_NAMES.get(value.curve.name)
        if name is None:
            raise ValueError(f"EC curve {value.curve.name} is not one JWS uses "
                             "(P-256, P-384, P-521)")
        return Key("EC", name, value, kid, alg)
    if isinstance(value, ed25519.Ed25519PublicKey):
        return Key("OKP", "Ed25519", value, kid, alg)
    if isinstance(value, ed448.Ed448PublicKey):
        return Key("OKP", "Ed448", value, kid, alg)
    raise ValueError(f"unsupported key type {type(value).__name__}")


def pem_key(data: bytes) -> Key:
    """The key of a PEM public key or X.509 certificate; ValueError otherwise."""
    if b"PRIVATE KEY" in data:
        raise ValueError("holds a private key: give the public key (openssl pkey -pubout)")
    try:
        if b"BEGIN CERTIFICATE" in data:
            value: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            value = load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"not a PEM public key or certificate ({exc})") from None
    return public_key(value)


def _field(jwk: dict[str, Any], name: str) -> bytes:
    """A base64url member of a JWK (padding tolerated, as some publishers add it)."""
    text = jwk.get(name)
    if not isinstance(text, str) or not text:
        raise ValueError(f"member {name!r} is missing or not a string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"member {name!r} is not base64url") from None


def jwk_key(jwk: Any) -> Key | None:
    """The Key of one JWK, None when it is not meant for signatures; ValueError if bad."""
    if not isinstance(jwk, dict):
        raise ValueError("a key is a JSON object")
    if jwk.get("use", "sig") != "sig":
        return None
    ops = jwk.get("key_ops")
    if isinstance(ops, list) and "verify" not in ops:
        return None
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ValueError("kid is not a string")
    alg = jwk.get("alg")
    if alg is not None and alg not in ALGORITHMS:
        raise ValueError(f"alg {alg!r} is not supported (supported: {', '.join(ALGORITHMS)})")
    kty = jwk.get("kty")
    if kty == "oct":
        return Key("oct", None, _field(jwk, "k"), kid, alg)
    if "d" in jwk:
        raise ValueError("a private key: publish only the public members")
    if kty == "RSA":
        n = int.from_bytes(_field(jwk, "n"), "big")
        e = int.from_bytes(_field(jwk, "e"), "big")
        return public_key(rsa.RSAPublicNumbers(e, n).public_key(), kid, alg)
    if kty == "EC":
        crv = jwk.get("crv")
        if crv not in _CURVES:
            raise ValueError(f"crv {crv!r} is not P-256, P-384 or P-521")
        x, y = _field(jwk, "x"), _field(jwk, "y")
        if len(x) != _COORDINATE_BYTES[crv] or len(y) != _COORDINATE_BYTES[crv]:
            raise ValueError(f"x and y of a {crv} key are {_COORDINATE_BYTES[crv]} bytes")
        numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"),
                                                int.from_bytes(y, "big"), _CURVES[crv])
        return public_key(numbers.public_key(), kid, alg)      # checks the point is on it
    if kty == "OKP":
        crv = jwk.get("crv")
        x = _field(jwk, "x")
        if crv == "Ed25519":
            return public_key(ed25519.Ed25519PublicKey.from_public_bytes(x), kid, alg)
        if crv == "Ed448":
            return public_key(ed448.Ed448PublicKey.from_public_bytes(x), kid, alg)
        raise ValueError(f"crv {crv!r} is not Ed25519 or Ed448")
    raise ValueError(f"kty {kty!r} is not oct, RSA, EC or OKP")


def jwks_keys(data: bytes) -> list[Key]:
    """The signature keys of a JWKS document; ValueError naming the key at fault."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS document ({"keys": [...]})')
    keys = []
    for index, jwk in enumerate(document["keys"]):
        try:
            key = jwk_key(jwk)
        except ValueError as exc:
            raise ValueError(f"keys[{index}]: {exc}") from None
        if key is not None:
            keys.append(key)
    return keys
