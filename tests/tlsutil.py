"""A throw-away PKI for TLS tests, made with ``cryptography``: a CA, a server certificate
for ``localhost``/``127.0.0.1``/``::1`` (and any extra names), a client certificate, and a
second, unrelated CA that trusts none of them."""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class PKI:
    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca_file: str


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca(common: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key, ca_cert, common: str, names: list[str], usage):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    builder = (x509.CertificateBuilder().subject_name(_name(common))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usage if isinstance(usage, list)
                                                    else [usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: str, server_names: tuple[str, ...] = (),
             server_is_client: bool = False) -> PKI:
    """``server_is_client``: the server certificate may also authenticate a client (etcd's
    gRPC gateway dials its own server with it when client certificates are required)."""
    ca_key, ca_cert = _ca("dakia test CA")
    _other_key, other_cert = _ca("unrelated CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, "localhost",
                                    ["localhost", "127.0.0.1", "::1", *server_names],
                                    [ExtendedKeyUsageOID.SERVER_AUTH,
                                     *([ExtendedKeyUsageOID.CLIENT_AUTH]
                                       if server_is_client else [])])
    client_key, client_cert = _leaf(ca_key, ca_cert, "dakia gateway", [],
                                    ExtendedKeyUsageOID.CLIENT_AUTH)
    return PKI(
        ca_file=_write(directory, "ca.pem", _pem_cert(ca_cert)),
        server_cert=_write(directory, "server.pem", _pem_cert(server_cert)),
        server_key=_write(directory, "server.key", _pem_key(server_key)),
        client_cert=_write(directory, "client.pem", _pem_cert(client_cert)),
        client_key=_write(directory, "client.key", _pem_key(client_key)),
        other_ca_file=_write(directory, "other-ca.pem", _pem_cert(other_cert)),
    )


def self_signed_pair(directory: str, stem: str, names: list[str], *,
                     valid_days: float = 30.0, passphrase: bytes | None = None,
                     issuer: tuple[object, x509.Certificate] | None = None,
                     usage=ExtendedKeyUsageOID.SERVER_AUTH) -> tuple[str, str]:
    """``stem.pem`` and ``stem.key`` for ``names`` (SAN; the first is the CN), valid until
    ``valid_days`` from now (negative: expired that long ago); the key encrypted with
    ``passphrase`` when given; signed by ``issuer`` (key, cert) instead of itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    subject = _name(names[0] if names else stem)
    signer_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=max(2.0, -valid_days + 1)))
               .not_valid_after(now + datetime.timedelta(days=valid_days))
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    encryption = (serialization.NoEncryption() if passphrase is None
                  else serialization.BestAvailableEncryption(passphrase))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                encryption)
    key_path = _write(directory, f"{stem}.key", key_pem)
    os.chmod(key_path, 0o600)
    return _write(directory, f"{stem}.pem", _pem_cert(cert)), key_path


def ca_pair(directory: str, common: str = "dakia test client CA"):
    """A CA: (key, cert, path of its PEM)."""
    key, cert = _ca(common)
    return key, cert, _write(directory, f"{common.replace(' ', '-')}.pem", _pem_cert(cert))
