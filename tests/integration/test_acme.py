"""ACME through the running gateway: a real pebble (Let's Encrypt's test CA) validates the
HTTP-01 answers the gateway serves on its plain listener, and issues; the ACME process the
master supervises stores the certificate, and retries with backoff while the CA is away."""
from __future__ import annotations

import os
import signal
import ssl
import stat
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from .acme_server import Pebble
from .harness import Gateway, free_port, node, wait_until
from .test_tls_listeners import TlsClient, client_context

NAMES = ["a.example.test", "b.example.test"]


def _acme_gateway(gateways, upstreams, tmp_path, *, directory: str, ca_file: str,
                  retry_seconds: float = 1) -> Gateway:
    up = upstreams(name="app")
    acme: dict[str, Any] = {"directory": directory, "email": "ops@example.test",
                            "names": NAMES, "storage": str(tmp_path / "acme"),
                            "ca_file": ca_file, "retry_seconds": retry_seconds}
    return gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                    gateway={"acme": acme}, start=False)


def _children(gw: Gateway) -> list[int]:
    assert gw.process is not None
    with open(f"/proc/{gw.process.pid}/task/{gw.process.pid}/children") as f:
        return [int(pid) for pid in f.read().split()]


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except FileNotFoundError:
        return ""


def _bundle(tmp_path) -> str:
    return str(tmp_path / "acme" / "certs" / f"{NAMES[0]}.pem")


def _check_bundle(path: str, root_pem: str) -> None:
    """The bundle: the key, then the leaf for NAMES, then the chain up to pebble's root."""
    with open(path, "rb") as f:
        data = f.read()
    key = serialization.load_pem_private_key(data, password=None)
    chain = x509.load_pem_x509_certificates(data)
    leaf = chain[0]
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    names = leaf.extensions.get_extension_for_oid(
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value.get_values_for_type(x509.DNSName)
    assert sorted(names) == NAMES
    assert len(chain) >= 2, "the full chain, not the leaf alone"
    root = x509.load_pem_x509_certificate(root_pem.encode())
    assert chain[-1].issuer == root.subject
    for child, parent in zip(chain, [*chain[1:], root]):
        child.verify_directly_issued_by(parent)


def test_a_certificate_is_obtained_from_pebble_and_stored_privately(gateways, upstreams,
                                                                    tmp_path):
    gw = _acme_gateway(gateways, upstreams, tmp_path, directory="", ca_file="")
    pebble = Pebble(str(tmp_path / "pebble"), http_port=gw.port)
    try:
        pebble.start()
        gw.config["gateways"][0]["acme"].update(directory=pebble.directory_url,
                                                ca_file=pebble.ca_file)
        gw.start()
        path = _bundle(tmp_path)
        wait_until(lambda: os.path.exists(path), 60,
                   f"the certificate (gateway log: {gw.log_text()[-1500:]})")
        _check_bundle(path, pebble.roots())
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / "acme").st_mode) == 0o700
        keys = [n for n in os.listdir(tmp_path / "acme") if n.startswith("account-")]
        assert len(keys) == 1
        assert stat.S_IMODE(os.stat(tmp_path / "acme" / keys[0]).st_mode) == 0o600
        # The answers were served and are gone.
        assert os.listdir(tmp_path / "acme" / "challenges") == []
        wait_until(lambda: "new certificate for a.example.test, b.example.test" in
                   gw.log_text(), 10, "the new certificate to be logged")
        assert "validated" in pebble.log_text() or "Issued" in pebble.log_text()
        # One ACME process of this master, titled, not one per worker.
        titled = [pid for pid in _children(gw) if _title(pid) == "dakia acme"]
        assert len(titled) == 1, [(pid, _title(pid)) for pid in _children(gw)]
        # A valid certificate far from expiry is left alone: an ACME process started
        # afresh (the master respawns a killed one) looks at it and orders nothing.
        os.kill(titled[0], signal.SIGKILL)
        wait_until(lambda: gw.log_text().count("certificate for a.example.test, "
                                               "b.example.test is valid until") >= 1, 20,
                   "the respawned ACME process to look at the certificate")
        assert pebble.log_text().count("POST /order-plz") == 1, pebble.log_text()[-2000:]
    finally:
        gw.stop()
        pebble.stop()


def test_failures_are_logged_and_retried_until_the_ca_answers(gateways, upstreams, tmp_path):
    gw = _acme_gateway(gateways, upstreams, tmp_path, directory="", ca_file="")
    pebble = Pebble(str(tmp_path / "pebble"), http_port=gw.port)
    gw.config["gateways"][0]["acme"].update(directory=pebble.directory_url,
                                            ca_file=pebble.ca_file)
    try:
        gw.start()                                # the CA is not there yet
        wait_until(lambda: gw.log_text().count("cannot obtain a certificate") >= 2, 20,
                   "two failed attempts to be logged")
        text = gw.log_text()
        assert "retrying in 1s (no certificate to serve meanwhile)" in text
        assert "retrying in 2s" in text           # the backoff doubles
        # The gateway serves meanwhile.
        assert requests.get(gw.url + "/", timeout=10).status_code == 200
        pebble.start()
        wait_until(lambda: os.path.exists(_bundle(tmp_path)), 60,
                   f"the certificate once the CA answers ({gw.log_text()[-1500:]})")
        _check_bundle(_bundle(tmp_path), pebble.roots())
    finally:
        gw.stop()
        pebble.stop()


def test_the_gateway_answers_http01_challenges_before_routing(gateways, upstreams, tmp_path):
    # An unreachable CA that is not asked again soon: the challenge files are the test's.
    gw = _acme_gateway(gateways, upstreams, tmp_path, directory="https://127.0.0.1:9/dir",
                       ca_file="", retry_seconds=3600)
    del gw.config["gateways"][0]["acme"]["ca_file"]
    gw.start()
    wait_until(lambda: "cannot obtain a certificate" in gw.log_text(), 20,
               "the first attempt to fail")
    token = "Xy_-0123456789abcdefghij"
    with open(tmp_path / "acme" / "challenges" / token, "w") as f:
        f.write(token + ".thumbprint")
    url = gw.url + "/.well-known/acme-challenge/"
    # Any Host: the CA asks for the certificate's names, not the gateway's downstreams.
    answer = requests.get(url + token, headers={"Host": "a.example.test"}, timeout=10)
    assert answer.status_code == 200
    assert answer.content == (token + ".thumbprint").encode()
    assert answer.headers["content-type"] == "application/octet-stream"
    assert requests.head(url + token, timeout=10).status_code == 200
    assert requests.get(url + "unknown-token", timeout=10).status_code == 404
    for hostile in ("..%2F..%2Fetc%2Fpasswd", "a.b", "x" * 300, ""):
        assert requests.get(url + hostile, timeout=10).status_code == 404, hostile
    refused = requests.post(url + token, data=b"x", timeout=10)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    # Everything else is proxied as before.
    assert requests.get(gw.url + "/.well-known/other", timeout=10).status_code == 200


def test_a_tls_listener_without_certificates_serves_the_acme_one_once_issued(
        gateways, upstreams, tmp_path):
    """``tls: {}``: a self-signed placeholder for the names until the certificate is
    issued, then the certificate with its full chain, which a client verifies against the
    CA's root alone; a connection opened before the swap goes on."""
    gw = _acme_gateway(gateways, upstreams, tmp_path, directory="", ca_file="")
    tls_port = free_port()
    gw.config["gateways"][0]["bind_addresses"].append(
        {"host": "127.0.0.1", "port": tls_port, "tls": {}})
    pebble = Pebble(str(tmp_path / "pebble"), http_port=gw.port)
    gw.config["gateways"][0]["acme"].update(directory=pebble.directory_url,
                                            ca_file=pebble.ca_file)
    early: TlsClient | None = None
    try:
        gw.start()                                # the CA is not there yet
        wait_until(lambda: _answers_tls(tls_port), 10, "the TLS listener")
        early = TlsClient(tls_port, NAMES[0])
        placeholder = x509.load_der_x509_certificate(early.served_der)
        assert placeholder.issuer == placeholder.subject            # self-signed
        assert sorted(placeholder.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)) == NAMES
        assert early.get(host=NAMES[0])[0] == 200
        pebble.start()
        wait_until(lambda: os.path.exists(_bundle(tmp_path)), 60, "the certificate")
        root_file = str(tmp_path / "pebble-root.pem")
        with open(root_file, "w") as f:
            f.write(pebble.roots())
        verified = client_context(cafile=root_file)

        def served_the_new_one() -> bool:
            try:
                client = TlsClient(tls_port, NAMES[1], verified)
            except ssl.SSLCertVerificationError:
                return False                      # still the placeholder
            try:
                return client.get(host=NAMES[1])[0] == 200
            finally:
                client.close()
        wait_until(served_the_new_one, 10, "a verified handshake with the ACME certificate")
        assert early.get(host=NAMES[0])[0] == 200   # the old connection went on
        assert "now serves the ACME certificate" in gw.log_text()
    finally:
        if early is not None:
            early.close()
        gw.stop()
        pebble.stop()


def _answers_tls(port: int) -> bool:
    try:
        TlsClient(port, NAMES[0]).close()
    except OSError:
        return False
    return True


def test_check_reports_the_acme_certificate_of_a_tls_listener(gateways, upstreams, tmp_path):
    gw = _acme_gateway(gateways, upstreams, tmp_path, directory="https://127.0.0.1:9/dir",
                       ca_file="")
    del gw.config["gateways"][0]["acme"]["ca_file"]
    gw.config["gateways"][0]["bind_addresses"].append(
        {"host": "127.0.0.1", "port": free_port(), "tls": {}})
    gw.write_config()
    done = gw.cli("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("gateways[0].bind_addresses[1].tls: ACME certificate for a.example.test, "
            "b.example.test: not obtained yet") in done.stdout + done.stderr
    # Without acme, a TLS listener needs its own certificates.
    del gw.config["gateways"][0]["acme"]
    gw.write_config()
    done = gw.cli("check")
    assert done.returncode != 0
    assert ("gateways[0].bind_addresses[1].tls: no certificates: list some, or give the "
            "gateway an acme block") in done.stdout + done.stderr
