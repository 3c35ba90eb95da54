"""Keys and tokens for the jwt_auth tests, made with ``cryptography`` (no JWT library)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HMAC_SECRET = b"s" * 64


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_part(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Keys:
    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey
    secret: bytes = HMAC_SECRET

    @classmethod
    def generate(cls) -> "Keys":
        return cls(rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1()),
                   ed25519.Ed25519PrivateKey.generate())

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwks(self) -> dict[str, Any]:
        rsa_numbers = self.rsa.public_key().public_numbers()
        ec_numbers = self.ec.public_key().public_numbers()
        ed_raw = self.ed.public_key().public_bytes(serialization.Encoding.Raw,
                                                   serialization.PublicFormat.Raw)
        return {"keys": [
            {"kty": "oct", "kid": "hmac", "k": b64(self.secret)},
            {"kty": "RSA", "kid": "rsa", "use": "sig",
             "n": b64(rsa_numbers.n.to_bytes(256, "big")), "e": b64(b"\x01\x00\x01")},
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": b64(ec_numbers.x.to_bytes(32, "big")), "y": b64(ec_numbers.y.to_bytes(32, "big"))},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(ed_raw)},
        ]}


def signature(alg: str, key: Any, message: bytes) -> bytes:
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(key, message, digest).digest()
    if alg == "RS256":
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return key.sign(message)
    raise ValueError(alg)


def token(alg: str, key: Any, claims: dict[str, Any], **header: Any) -> str:
    """A compact JWS of ``claims`` signed with ``key`` (bytes for HS*, a private key else)."""
    head = encode_part({"alg": alg, "typ": "JWT", **header})
    body = encode_part(claims)
    signing_input = f"{head}.{body}".encode()
    return f"{head}.{body}.{b64(signature(alg, key, signing_input))}"


def key_for(keys: Keys, alg: str) -> Any:
    return {"RS256": keys.rsa, "ES256": keys.ec, "EdDSA": keys.ed}.get(alg, keys.secret)


KIDS = {"HS256": "hmac", "HS384": "hmac", "HS512": "hmac", "RS256": "rsa", "ES256": "ec",
        "EdDSA": "ed"}
