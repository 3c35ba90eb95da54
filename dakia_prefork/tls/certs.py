"""Certificates on disk: load and check a certificate with its key, read its names and
expiry, and make a self-signed one (``dakia-master cert``).

Everything here uses ``cryptography`` only (no ``ssl``, no gevent), so config validation
in the master, in its loader process and in ``dakia-master check`` runs it as the workers
would see the files. A problem is a :class:`CertificateError` whose message says what is
wrong with which file, in words an operator can act on.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EXPIRY_WARNING_DAYS = 14
"""``check`` warns about a certificate that expires within this many days."""


class CertificateError(Exception):
    """A certificate or key that cannot be served; the message names the file."""


@dataclass(frozen=True)
class CertificateInfo:
    """What ``check`` shows of a loaded certificate, and what SNI selects it by."""

    cert_file: str
    subject: str                       # RFC 4514
    names: tuple[str, ...]             # DNS names of the SAN, lower-case, as written
    not_after: datetime.datetime       # UTC

    def days_left(self, now: datetime.datetime | None = None) -> float:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return (self.not_after - now).total_seconds() / 86400.0

    def expiry_problem(self, now: datetime.datetime | None = None) -> str | None:
        """A warning when the certificate is expired or expires within
        ``EXPIRY_WARNING_DAYS``; None when it has longer."""
        days = self.days_left(now)
        stamp = self.not_after.strftime("%Y-%m-%d %H:%M UTC")
        if days <= 0:
            return f"{self.cert_file}: the certificate expired on {stamp}"
        if days < EXPIRY_WARNING_DAYS:
            return (f"{self.cert_file}: the certificate expires in {days:.1f} days "
                    f"({stamp})")
        return None


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CertificateError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read the {what} file: "
                               f"{exc.strerror or exc}") from None


def load_certificate_chain(path: str) -> list[x509.Certificate]:
    """The certificates of a PEM file, the server's own first (a chain may follow)."""
    data = _read(path, "certificate")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateError(f"{path}: not a PEM certificate") from None
    return chain


def load_private_key(path: str) -> PrivateKeyTypes:
    """The unencrypted PEM private key in ``path``."""
    data = _read(path, "key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography's way of saying the key is encrypted and no password was given.
        raise CertificateError(
            f"{path}: the key is encrypted with a passphrase, and dakia has none to give; "
            "store it decrypted with mode 0600 (openssl pkey -in KEY -out KEY.plain)"
        ) from None
    except ValueError:
        raise CertificateError(f"{path}: not a PEM private key (or a damaged one)") from None
    except Exception as exc:  # noqa: BLE001 - e.g. UnsupportedAlgorithm
        raise CertificateError(f"{path}: cannot load the key: {exc}") from None
    return key


def _public_der(owner: x509.Certificate | PrivateKeyTypes) -> bytes:
    return owner.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names of the certificate's subjectAltName, lower-case (none without one)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower() for name in san.get_values_for_type(x509.DNSName))


def inspect(cert_file: str, key_file: str) -> CertificateInfo:
    """Load ``cert_file`` and ``key_file``, check that they belong together; what they
    are. Raises :class:`CertificateError`."""
    chain = load_certificate_chain(cert_file)
    key = load_private_key(key_file)
    leaf = chain[0]
    if _public_der(leaf) != _public_der(key):
        raise CertificateError(f"{key_file}: this key does not match the certificate "
                               f"{cert_file}")
    return CertificateInfo(cert_file, leaf.subject.rfc4514_string(), dns_names(leaf),
                           leaf.not_valid_after_utc)


# -- self-signed certificates (dakia-master cert) --------------------------------------
def self_signed(names: Sequence[str], days: int) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``names`` (DNS names, wildcards, IP addresses), valid
    from an hour ago for ``days`` days, and its P-256 key: (cert PEM, key PEM)."""
    if not names:
        raise ValueError("at least one name is needed")
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_self_signed(directory: str, names: Sequence[str], days: int) -> tuple[str, str]:
    """Write ``cert.pem`` (0644) and ``key.pem`` (0600, created so: never readable by
    others, not even for an instant) in ``directory``; their paths. Refuses to overwrite."""
    cert_pem, key_pem = self_signed(names, days)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    for path in (cert_path, key_path):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; not overwritten")
    for path, data, mode in ((key_path, key_pem, 0o600), (cert_path, cert_pem, 0o644)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)        # whatever the umask took away or added
    return cert_path, key_path
