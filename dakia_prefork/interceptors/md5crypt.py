"""Apache's ``$apr1$`` password hashes (htpasswd -m), the MD5-crypt algorithm.

Only to read existing htpasswd files: MD5-crypt is weak by today's standards (1000 MD5
rounds), and ``hashpw`` never makes one. The algorithm is Poul-Henning Kamp's md5crypt
with the magic string ``$apr1$``; ``openssl passwd -apr1`` computes the same, which is
how the test vectors in tests/unit/test_interceptor_passwords.py were made.
"""
from __future__ import annotations

from hashlib import md5

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The order in which md5crypt packs the 16 digest bytes into 22 characters.
_GROUPS = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))


def _to64(value: int, count: int) -> bytes:
    out = bytearray()
    for _ in range(count):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return bytes(out)


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> bytes:
    """The full hash string (``magic + salt + "$" + checksum``) of ``password``."""
    salt = salt[:8]
    ctx = md5(password + magic + salt)
    alternate = md5(password + salt + password).digest()
    remaining = len(password)
    while remaining > 0:
        ctx.update(alternate[:min(16, remaining)])
        remaining -= 16
    bits = len(password)
    while bits:
        ctx.update(b"\x00" if bits & 1 else password[:1])
        bits >>= 1
    final = ctx.digest()
    for i in range(1000):
        step = md5(password if i & 1 else final)
        if i % 3:
            step.update(salt)
        if i % 7:
            step.update(password)
        step.update(final if i & 1 else password)
        final = step.digest()
    checksum = b"".join(_to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
                        for a, b, c in _GROUPS) + _to64(final[11], 2)
    return magic + salt + b"$" + checksum
