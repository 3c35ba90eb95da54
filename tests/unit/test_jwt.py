"""jws.py and jwk.py without a gateway: the strictness that keeps verification honest."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dakia_prefork.interceptors.jwk import jwk_key, jwks_keys, public_key
from dakia_prefork.interceptors.jws import ALGORITHMS, TokenError, b64url_decode, parse

ALL = frozenset(ALGORITHMS)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(value) -> str:
    return b64(json.dumps(value).encode())


def test_base64url_is_strict() -> None:
    assert b64url_decode("YWI") == b"ab"
    for bad in ("YWI=", "YW+", "YW/", "Y", "YW I", "YWJ"):     # YWJ: stray low bits
        with pytest.raises(TokenError):
            b64url_decode(bad)


@pytest.mark.parametrize("header, message", [
    ({"alg": "none"}, "algorithm not allowed"),
    ({"alg": "None"}, "algorithm not allowed"),
    ({"alg": "HS1"}, "algorithm not allowed"),
    ({"alg": ["HS256"]}, "no alg"),
    ({"alg": "HS256", "crit": []}, "critical"),
    ({"alg": "HS256", "kid": 7}, "kid is not a string"),
])
def test_header_checks(header, message) -> None:
    with pytest.raises(TokenError, match=message):
        parse(f"{part(header)}.{part({})}.{b64(b'sig')}", ALL)


def test_only_configured_algorithms() -> None:
    token = f"{part({'alg': 'HS256'})}.{part({})}.{b64(b'sig')}"
    assert parse(token, ALL).alg == "HS256"
    with pytest.raises(TokenError, match="algorithm not allowed"):
        parse(token, frozenset({"RS256"}))
    with pytest.raises(TokenError, match="algorithm not allowed"):
        parse(f"{part({'alg': 'none'})}.{part({})}.", frozenset({"none"}))


@pytest.mark.parametrize("payload", [b"[]", b"\"x\"", b"{\"a\": NaN}", b"{\"a\":1,\"a\":2}",
                                     b"\xff\xfe", b"{"])
def test_payload_must_be_a_plain_json_object(payload: bytes) -> None:
    with pytest.raises(TokenError, match="malformed"):
        parse(f"{part({'alg': 'HS256'})}.{b64(payload)}.{b64(b'sig')}", ALL)


def test_too_large_tokens_are_refused_before_decoding() -> None:
    with pytest.raises(TokenError, match="too large"):
        parse("a" * 20000, ALL)


def test_keys_are_typed_and_weak_ones_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        public_key(rsa.generate_private_key(65537, 1024).public_key())
    with pytest.raises(ValueError, match="not one JWS uses"):
        public_key(ec.generate_private_key(ec.SECP256K1()).public_key())
    assert jwk_key({"kty": "oct", "k": b64(b"x" * 32), "use": "enc"}) is None
    assert jwk_key({"kty": "oct", "k": b64(b"x" * 32), "key_ops": ["encrypt"]}) is None
    with pytest.raises(ValueError, match="private key"):
        jwk_key({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"})
    with pytest.raises(ValueError, match="x and y of a P-256 key are 32 bytes"):
        jwk_key({"kty": "EC", "crv": "P-256", "x": b64(b"\x01" * 31), "y": b64(b"\x01" * 32)})
    with pytest.raises(ValueError, match="keys\\[0\\]: kty 'foo'"):
        jwks_keys(b'{"keys": [{"kty": "foo"}]}')
    with pytest.raises(ValueError, match="not a JWKS"):
        jwks_keys(b'[]')


def test_a_key_fits_only_its_algorithms() -> None:
    hmac_key = jwk_key({"kty": "oct", "k": b64(b"x" * 64)})
    rsa_key = public_key(rsa.generate_private_key(65537, 2048).public_key())
    p256 = public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    pinned = jwk_key({"kty": "oct", "k": b64(b"x" * 64), "alg": "HS512"})
    assert hmac_key is not None and pinned is not None
    fits = {name: sorted(alg for alg, a in ALGORITHMS.items() if key.fits(alg, a))
            for name, key in (("hmac", hmac_key), ("rsa", rsa_key), ("p256", p256),
                              ("pinned", pinned))}
    assert fits == {"hmac": ["HS256", "HS384", "HS512"], "rsa": ["RS256", "RS384", "RS512"],
                    "p256": ["ES256"], "pinned": ["HS512"]}
