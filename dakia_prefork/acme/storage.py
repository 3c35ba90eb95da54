"""What ACME keeps on disk, in a gateway's ``acme.storage`` directory.

::

    storage/                  0700
      account-<id>.key        the account key of one ACME directory (PEM, 0600)
      certs/<name>.pem        the private key, then the full chain, of the certificate
                              whose first name is <name> (0600): one file, so a reader
                              never pairs a new certificate with an old key
      challenges/<token>      a pending HTTP-01 answer, the key authorization (0600)

Every file is written to a temporary name in the same directory and renamed over the old
one, so a reader sees the old file or the new one whole. This module does no network I/O
and imports no ACME library: workers read challenges and certificates through it.
"""
from __future__ import annotations

import datetime
import hashlib
import os

from ..files import remove_quietly, write_temporary

_TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_TOKEN = 256
"""RFC 8555 8.3: a token is base64url, at least 128 bits (22 characters); Let's Encrypt's
are 43. A longer one is refused without touching the disk."""
MAX_CHALLENGE_BYTES = 1024
CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"


def valid_token(token: bytes) -> bool:
    """Whether ``token`` can be an HTTP-01 token: base64url only, so it names a file in
    ``challenges/`` and nothing else (no ``/``, no ``..``)."""
    return 0 < len(token) <= MAX_TOKEN and all(byte in _TOKEN_BYTES for byte in token)


def challenge_answer(challenges_dir: str, token: bytes) -> bytes | None:
    """The key authorization to answer for ``token``, or None when none is pending."""
    if not valid_token(token):
        return None
    try:
        with open(os.path.join(challenges_dir, token.decode("ascii")), "rb") as f:
            return f.read(MAX_CHALLENGE_BYTES)
    except OSError:
        return None


def write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) atomically: a synced temporary file in the
    same directory, renamed over ``path``."""
    temporary = write_temporary(os.path.dirname(path), data, 0o600)
    try:
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise


class AcmeStorage:
    """The layout above under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.certs = os.path.join(root, "certs")
        self.challenges = os.path.join(root, "challenges")

    def prepare(self) -> None:
        """Make the directories (0700; an existing one is narrowed to 0700 too: it holds
        private keys)."""
        for directory in (self.root, self.certs, self.challenges):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)

    def drop_pending(self) -> None:
        """Remove the challenge answers a previous run left (it was stopped mid-order)."""
        for name in os.listdir(self.challenges):
            remove_quietly(os.path.join(self.challenges, name))

    def account_key_path(self, directory_url: str) -> str:
        ident = hashlib.sha256(directory_url.encode()).hexdigest()[:16]
        return os.path.join(self.root, f"account-{ident}.key")

    def bundle_path(self, names: tuple[str, ...]) -> str:
        return os.path.join(self.certs, f"{names[0]}.pem")

    def write_bundle(self, names: tuple[str, ...], key_pem: bytes, chain_pem: bytes) -> str:
        path = self.bundle_path(names)
        write_private(path, key_pem.rstrip(b"\n") + b"\n" + chain_pem)
        return path

    def write_challenge(self, token: str, answer: str) -> None:
        if not valid_token(token.encode("ascii", "replace")):
            raise ValueError(f"the ACME server sent an unusable token {token[:40]!r}")
        write_private(os.path.join(self.challenges, token), answer.encode("ascii"))

    def remove_challenge(self, token: str) -> None:
        remove_quietly(os.path.join(self.challenges, token))


def bundle_validity(path: str) -> tuple[datetime.datetime, datetime.datetime] | None:
    """(not before, not after) of the certificate in the bundle at ``path`` (UTC), or None
    if there is no readable bundle there."""
    from cryptography import x509
    try:
        with open(path, "rb") as f:
            certificates = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError):
        return None
    return certificates[0].not_valid_before_utc, certificates[0].not_valid_after_utc
