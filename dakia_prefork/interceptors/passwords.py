"""Password hashes: read the formats users bring, verify in constant time, make new ones.

Accepted formats (a string each):

- ``$scrypt$ln=15,r=8,p=1$<salt>$<hash>``: scrypt, the default of ``hashpw``;
- ``$pbkdf2-sha256$i=600000$<salt>$<hash>`` (also ``pbkdf2-sha512``): PBKDF2-HMAC;
  salt and hash of both are base64 without padding, as in the PHC string format;
- ``$2a$`` / ``$2b$`` / ``$2y$``: bcrypt (htpasswd -B), through the ``bcrypt`` package;
- ``{SHA}<base64>``: unsalted SHA-1 (htpasswd -s), weak, for existing files only;
- ``$apr1$<salt>$<hash>``: Apache MD5-crypt (htpasswd -m), weak, for existing files only.

Crypt(3) DES and plaintext htpasswd entries are refused: nothing makes them safe.

Parsing happens when the config loads, so a malformed hash is a config error with its
path, never a failure at request time. Cost parameters are bounded when parsed: a hash
string sets how much CPU and memory each login attempt costs the gateway.

``bcrypt`` and the KDFs of ``cryptography`` are imported when a hash needs them, not with
this module: every worker imports the built-ins, and one whose config has no password in
it should not carry those libraries' objects (memory, and the work of every full GC).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from typing import Callable

from .md5crypt import md5_crypt

SCRYPT_DEFAULT = (15, 8, 1)          # log2(N), r, p: 32 MiB, ~60 ms here
PBKDF2_DEFAULT_ITERATIONS = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256
_SCRYPT_MAX_MEMORY = 256 << 20       # 128 * r * N bytes per attempt, at most
_PBKDF2_MAX_ITERATIONS = 10_000_000
_BCRYPT_MAX_PASSWORD = 72            # bcrypt reads no further; other tools truncate too
_SALT_BYTES = 16
_HASH_BYTES = 32

_SCRYPT = re.compile(r"^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,2})\$([A-Za-z0-9+/]+)"
                     r"\$([A-Za-z0-9+/]+)$")
_PBKDF2 = re.compile(r"^\$pbkdf2-(sha256|sha512)\$i=(\d{1,8})\$([A-Za-z0-9+/]+)"
                     r"\$([A-Za-z0-9+/]+)$")
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")
_SHA1 = re.compile(r"^\{SHA\}([A-Za-z0-9+/]{27}=)$")
_APR1 = re.compile(r"^\$apr1\$([./A-Za-z0-9]{1,8})\$[./A-Za-z0-9]{22}$")

FORMATS = "$scrypt$, $pbkdf2-sha256$, $pbkdf2-sha512$, bcrypt ($2b$/$2y$), {SHA} or $apr1$"

Verifier = Callable[[bytes], bool]


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def parse_hash(text: str) -> Verifier:
    """A function telling whether a password matches the hash ``text``.

    Raises ValueError, with a message fit for a config error, when ``text`` is not one of
    the accepted formats or its parameters are out of bounds.
    """
    match = _SCRYPT.match(text)
    if match:
        return _scrypt_verifier(int(match[1]), int(match[2]), int(match[3]),
                                _decode(match[4]), _decode(match[5]))
    match = _PBKDF2.match(text)
    if match:
        return _pbkdf2_verifier(match[1], int(match[2]), _decode(match[3]), _decode(match[4]))
    if _BCRYPT.match(text):
        if not 4 <= int(text[4:6]) <= 31:
            raise ValueError("bcrypt cost must be in 4..31")
        import bcrypt
        encoded = text.encode("ascii")
        return lambda password: bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], encoded)
    match = _SHA1.match(text)
    if match:
        digest = _decode(match[1])
        return lambda password: hmac.compare_digest(hashlib.sha1(password).digest(), digest)
    match = _APR1.match(text)
    if match:
        salt, expected = match[1].encode("ascii"), text.encode("ascii")
        return lambda password: hmac.compare_digest(md5_crypt(password, salt), expected)
    if text.startswith(("$scrypt$", "$pbkdf2-", "$2", "{SHA}", "$apr1$")):
        raise ValueError("malformed password hash")
    raise ValueError(f"unsupported password hash format (expected {FORMATS})")


def _decode(text: str) -> bytes:
    try:
        return _b64decode(text)
    except (binascii.Error, ValueError):
        raise ValueError("malformed password hash (bad base64)") from None


def _scrypt_verifier(log_n: int, r: int, p: int, salt: bytes, expected: bytes) -> Verifier:
    if not 1 <= log_n <= 30 or r < 1 or p < 1:
        raise ValueError("scrypt parameters out of range (ln 1..30, r >= 1, p >= 1)")
    if 128 * r * (1 << log_n) > _SCRYPT_MAX_MEMORY:
        raise ValueError(f"scrypt parameters need more than {_SCRYPT_MAX_MEMORY >> 20} MiB "
                         "per attempt")
    if p > 16 or len(expected) < 16:
        raise ValueError("scrypt parameters out of range (p <= 16, hash >= 16 bytes)")
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    def verify(password: bytes) -> bool:
        derived = Scrypt(salt=salt, length=len(expected), n=1 << log_n, r=r, p=p
                         ).derive(password)
        return hmac.compare_digest(derived, expected)
    return verify


def _pbkdf2_verifier(digest: str, iterations: int, salt: bytes,
                     expected: bytes) -> Verifier:
    if not 1 <= iterations <= _PBKDF2_MAX_ITERATIONS or len(expected) < 16:
        raise ValueError(f"pbkdf2 iterations must be in 1..{_PBKDF2_MAX_ITERATIONS} "
                         "and the hash at least 16 bytes")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    algorithm = hashes.SHA256() if digest == "sha256" else hashes.SHA512()

    def verify(password: bytes) -> bool:
        derived = PBKDF2HMAC(algorithm=algorithm, length=len(expected), salt=salt,
                             iterations=iterations).derive(password)
        return hmac.compare_digest(derived, expected)
    return verify


SCHEMES = ("scrypt", "pbkdf2-sha256", "pbkdf2-sha512", "bcrypt")
"""The schemes ``make_hash`` can produce."""


def make_hash(password: str, scheme: str = "scrypt") -> str:
    """A new hash of ``password`` (UTF-8) with a random salt and today's costs."""
    import bcrypt
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    secret = password.encode("utf-8")
    salt = os.urandom(_SALT_BYTES)
    if scheme == "scrypt":
        log_n, r, p = SCRYPT_DEFAULT
        derived = Scrypt(salt=salt, length=_HASH_BYTES, n=1 << log_n, r=r, p=p).derive(secret)
        return f"$scrypt$ln={log_n},r={r},p={p}${_b64encode(salt)}${_b64encode(derived)}"
    if scheme in ("pbkdf2-sha256", "pbkdf2-sha512"):
        algorithm = hashes.SHA256() if scheme == "pbkdf2-sha256" else hashes.SHA512()
        derived = PBKDF2HMAC(algorithm=algorithm, length=_HASH_BYTES, salt=salt,
                             iterations=PBKDF2_DEFAULT_ITERATIONS).derive(secret)
        return (f"${scheme}$i={PBKDF2_DEFAULT_ITERATIONS}${_b64encode(salt)}"
                f"${_b64encode(derived)}")
    if scheme == "bcrypt":
        if len(secret) > _BCRYPT_MAX_PASSWORD:
            raise ValueError(f"bcrypt uses only the first {_BCRYPT_MAX_PASSWORD} bytes of a "
                             "password; use scrypt for a longer one")
        return bcrypt.hashpw(secret, bcrypt.gensalt(12)).decode("ascii")
    raise ValueError(f"unknown scheme {scheme!r} (one of {', '.join(SCHEMES)})")
