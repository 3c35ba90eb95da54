"""TLS listeners with real clients: Python's ssl module and curl against a running gateway.

Certificates are made by the tests: with ``dakia-master cert`` (the command users run) for
the curl tests, with cryptography (tests/tlsutil.py) where a test needs a CA, client
certificates or certificates it replaces. Which certificate the gateway served is decided
by comparing the DER bytes the client received with the file's, never by a name alone.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from prometheus_client.parser import text_string_to_metric_families

from tests.tlsutil import ca_pair, self_signed_pair

from .harness import ROOT, free_port, node, wait_until



@pytest.fixture
def curl() -> str:
    """curl's path: .ci/run installs it, so a machine without it fails, never skips."""
    path = shutil.which("curl")
    if path is None:
        pytest.fail("curl is not installed (apt-get install curl)")
    return path


def der_of(cert_file: str) -> bytes:
    with open(cert_file, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).public_bytes(
            serialization.Encoding.DER)


def client_context(*, cafile: str | None = None, cert: tuple[str, str] | None = None,
                   max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client context; without ``cafile`` it checks nothing (the tests compare the DER
    of what they were served instead)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cafile)
    if cert is not None:
        context.load_cert_chain(*cert)
    if max_version is not None:
        context.maximum_version = max_version
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


class TlsClient:
    """One keep-alive TLS connection that sends simple GETs and reads framed answers."""

    def __init__(self, port: int, server_name: str | None,
                 context: ssl.SSLContext | None = None, timeout: float = 10.0) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.sock = (context or client_context()).wrap_socket(
                raw, server_hostname=server_name)
        except BaseException:
            raw.close()
            raise
        self.buffer = b""

    @property
    def served_der(self) -> bytes:
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return der

    def get(self, path: str = "/", host: str = "a.example",
            headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, dict[str, str], bytes]:
        lines = [f"GET {path} HTTP/1.1", f"host: {host}",
                 *(f"{name}: {value}" for name, value in headers)]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        parsed = {}
        for field in fields:
            name, _, value = field.partition(":")
            parsed[name.strip().lower()] = value.strip()
        length = int(parsed.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), parsed, body

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clients():
    made: list[TlsClient] = []

    def make(*args: Any, **kwargs: Any) -> TlsClient:
        client = TlsClient(*args, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def tls_gateway(gateways, upstream, tls: dict[str, Any], *, engine: str = "h11",
                extra_binds: list[dict[str, Any]] | None = None,
                extra: dict[str, Any] | None = None, gateway: dict[str, Any] | None = None,
                workers: int = 1):
    """A gateway whose first listener is TLS with ``tls``."""
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}], engine=engine,
                  start=False, extra=extra, gateway=gateway, workers=workers)
    binds = gw.config["gateways"][0]["bind_addresses"]
    binds[0]["tls"] = tls
    binds.extend(extra_binds or [])
    return gw.start()


def refused(port: int, context: ssl.SSLContext) -> bool:
    """Whether the gateway refuses the handshake of a client with ``context``: the error
    comes in the handshake (TLS 1.2) or on the first read (TLS 1.3, where the server's
    verdict on a client certificate arrives after the client's side is done)."""
    try:
        client = TlsClient(port, "a.example", context, timeout=5)
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        client.get()
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        client.close()
    return False


@pytest.fixture
def pki(tmp_path):
    """Two server certificates (a.example and localhost; *.b.example) and a client CA
    with a client certificate it signed, and one it did not."""
    d = str(tmp_path / "pki")
    os.mkdir(d)
    ca_key, ca_cert, ca_file = ca_pair(d)
    return {
        "a": self_signed_pair(d, "a", ["a.example", "localhost"]),
        "b": self_signed_pair(d, "b", ["*.b.example"]),
        "ca": ca_file,
        "ops": self_signed_pair(d, "ops", [], issuer=(ca_key, ca_cert),
                                usage=ExtendedKeyUsageOID.CLIENT_AUTH),
        "other": self_signed_pair(d, "other", [], issuer=(ca_key, ca_cert),
                                  usage=ExtendedKeyUsageOID.CLIENT_AUTH),
        "stranger": self_signed_pair(d, "stranger", [], usage=ExtendedKeyUsageOID.CLIENT_AUTH),
    }


def certificates(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"cert": cert, "key": key} for cert, key in pairs]


# -- SNI, defaults, forwarding ------------------------------------------------------------
def test_sni_picks_the_certificate_and_no_sni_gets_the_first(upstreams, gateways, clients,
                                                             pki, engine) -> None:
    upstream = upstreams(name="app")
    plain = free_port()
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(pki["a"], pki["b"])},
                     engine=engine, extra_binds=[{"host": "127.0.0.1", "port": plain}])
    a, b = der_of(pki["a"][0]), der_of(pki["b"][0])
    for server_name, expected in (("a.example", a), ("x.b.example", b), ("X.B.Example", b),
                                  ("localhost", a), (None, a), ("unknown.example", a),
                                  ("b.example", a), ("y.x.b.example", a)):
        client = clients(gw.port, server_name)
        assert client.served_der == expected, server_name
        assert client.sock.selected_alpn_protocol() == "http/1.1"
        assert client.sock.version() == "TLSv1.3"
        status, _headers, body = client.get()
        assert (status, body) == (200, b"app")
        assert upstream.received[-1].header("x-forwarded-proto") == "https"
    # The same gateway's plain listener still says http.
    client_sock = socket.create_connection(("127.0.0.1", plain), timeout=5)
    with client_sock:
        client_sock.sendall(b"GET / HTTP/1.1\r\nhost: a.example\r\nconnection: close\r\n\r\n")
        assert client_sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert upstream.received[-1].header("x-forwarded-proto") == "http"
    # A client that sets its own X-Forwarded-Proto does not decide it.
    client = clients(gw.port, "a.example")
    client.get(headers=(("x-forwarded-proto", "gopher"),))
    assert upstream.received[-1].header_all("x-forwarded-proto") == ["https"]


def test_curl_verifies_each_certificate_made_by_the_cert_command(upstreams, gateways,
                                                                 tmp_path, curl) -> None:
    made = {}
    for name, names in (("a", "a.example"), ("b", "*.b.example")):
        out = str(tmp_path / name)
        result = subprocess.run([sys.executable, "-m", "dakia_prefork.cli", "cert",
                                 "--names", names, "--out", out, "--days", "2"],
                                capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        made[name] = (os.path.join(out, "cert.pem"), os.path.join(out, "key.pem"))
    upstream = upstreams(name="app")
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(made["a"], made["b"])})

    def fetch(host: str, cafile: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [curl, "-sS", "--max-time", "10", "--cacert", cafile, "--resolve",
             f"{host}:{gw.port}:127.0.0.1", "-w", " %{http_version}",
             f"https://{host}:{gw.port}/path?q=1"],
            capture_output=True, text=True, timeout=30)
    for host, pair in (("a.example", made["a"]), ("x.b.example", made["b"])):
        result = fetch(host, pair[0])
        assert (result.returncode, result.stdout) == (0, "app 1.1"), result.stderr
        assert upstream.received[-1].target == "/path?q=1"
    # Each certificate is served to its names only: the other one does not verify it.
    result = fetch("x.b.example", made["a"][0])
    assert result.returncode == 60, result.stderr        # peer certificate not verified
    # check shows both, with a warning for the one that expires in 2 days.
    check = gw.cli("check")
    assert check.returncode == 0, check.stderr
    assert f"{made['a'][0]}: a.example; expires " in check.stdout
    assert f"{made['b'][0]}: *.b.example; expires " in check.stdout
    assert check.stderr.count("the certificate expires in ") == 2


def test_min_version_1_3_refuses_a_tls_1_2_client(upstreams, gateways, pki) -> None:
    upstream = upstreams(name="app")
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(pki["a"]),
                                          "min_version": "1.3"})
    assert refused(gw.port, client_context(max_version=ssl.TLSVersion.TLSv1_2))
    client = TlsClient(gw.port, "a.example")
    try:
        assert client.get()[0] == 200
    finally:
        client.close()


def test_failed_handshakes_are_counted_by_listener_and_reason(upstreams, gateways,
                                                               pki) -> None:
    upstream = upstreams(name="app")
    plain = free_port()
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(pki["a"]),
                                          "min_version": "1.3"},
                     extra_binds=[{"host": "127.0.0.1", "port": plain}],
                     extra={"limits": {"tls_handshake_timeout": 1}},
                     gateway={"filters": [{"name": "scrape", "path": "/metrics"}],
                              "interceptors": [{"name": "metrics", "filter": "scrape"}]})
    listener = f"127.0.0.1:{gw.port}"

    def failures() -> dict[str, float]:
        families = text_string_to_metric_families(
            requests.get(f"http://127.0.0.1:{plain}/metrics", timeout=10).text)
        return {s.labels["reason"]: s.value for f in families for s in f.samples
                if s.name == "dakia_tls_handshake_failures_total"
                and s.labels["listener"] == listener}

    assert failures() == {"refused": 0, "incomplete": 0}
    assert refused(gw.port, client_context(max_version=ssl.TLSVersion.TLSv1_2))
    closed_early = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    closed_early.sendall(b"\x16\x03\x01\x02\x00\x01")     # the start of a ClientHello
    closed_early.close()
    silent = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        wait_until(lambda: failures() == {"refused": 1, "incomplete": 2}, 10,
                   "one refused handshake, one closed early and one timed out")
    finally:
        silent.close()
    client = TlsClient(gw.port, "a.example")     # a good one counts nothing
    try:
        assert client.get()[0] == 200
    finally:
        client.close()
    assert failures() == {"refused": 1, "incomplete": 2}


def test_tls_1_2_gets_an_ecdhe_aead_suite(upstreams, gateways, clients, pki) -> None:
    upstream = upstreams(name="app")
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(pki["a"])})
    client = clients(gw.port, "a.example", client_context(max_version=ssl.TLSVersion.TLSv1_2))
    name, version, _bits = client.sock.cipher()
    assert version == "TLSv1.2"
    assert name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name), name
    # A client offering only CBC suites finds nothing to agree on.
    cbc = client_context(max_version=ssl.TLSVersion.TLSv1_2)
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    assert refused(gw.port, cbc)


# -- mTLS ---------------------------------------------------------------------------------
def test_mtls_refuses_missing_and_unknown_certificates_and_forwards_the_subject(
        upstreams, gateways, clients, pki, curl) -> None:
    ops_app = upstreams(name="ops-app")
    upstream = upstreams(name="app")
    gw = gateways([{"name": "app", "default": True, "upstream_nodes": [node(upstream.port)]},
                   {"name": "ops", "upstream_nodes": [node(ops_app.port)]}], start=False,
                  gateway={"filters": [{"name": "ops",
                                        "client_subject": {"$eq": "CN=ops"}}],
                           "routers": [{"upstream": "ops", "filter": "ops"},
                                       {"upstream": "app"}]})
    gw.config["gateways"][0]["bind_addresses"][0]["tls"] = {
        "certificates": certificates(pki["a"]), "client_ca": pki["ca"],
        "client_subject_header": "X-Client-Subject"}
    gw.start()
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        assert refused(gw.port, client_context(max_version=version)), version
        assert refused(gw.port, client_context(cert=pki["stranger"], max_version=version))
    assert upstream.received == [] and ops_app.received == []
    client = clients(gw.port, "a.example", client_context(cert=pki["other"]))
    # A forged header never passes; the verified subject does, to filters too.
    status, _, body = client.get(headers=(("x-client-subject", "CN=ops"),))
    assert (status, body) == (200, b"app")
    assert upstream.received[-1].header_all("x-client-subject") == ["CN=other"]
    # Nor can a client have it dropped on the way as a hop-by-hop header.
    status, _, body = client.get(headers=(("connection", "x-client-subject"),))
    assert (status, body) == (200, b"app")
    assert upstream.received[-1].header_all("x-client-subject") == ["CN=other"]
    client = clients(gw.port, "a.example", client_context(cert=pki["ops"]))
    status, _, body = client.get()
    assert (status, body) == (200, b"ops-app")
    assert ops_app.received[-1].header_all("x-client-subject") == ["CN=ops"]
    wait_until(lambda: "TLS handshake failed" in gw.log_text(), 5,
               "the refused handshakes in the error log")
    result = subprocess.run(
        [curl, "-sS", "--max-time", "10", "-k", "--cert", pki["ops"][0], "--key",
         pki["ops"][1], f"https://127.0.0.1:{gw.port}/"],
        capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, "ops-app"), result.stderr
    result = subprocess.run([curl, "-sS", "--max-time", "10", "-k",
                             f"https://127.0.0.1:{gw.port}/"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and result.stdout == ""


# -- handshakes never hold anyone else -----------------------------------------------------
def test_a_stalled_handshake_times_out_alone(upstreams, gateways, pki) -> None:
    upstream = upstreams(name="app")
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(pki["a"])},
                     extra={"limits": {"tls_handshake_timeout": 1}})
    silent = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    try:
        partial.sendall(b"\x16\x03\x01\x02\x00\x01")     # the start of a ClientHello
        started = time.monotonic()
        # Served at once while both stall (one worker: the same accept loop and hub).
        client = TlsClient(gw.port, "a.example")
        try:
            assert client.get()[0] == 200
        finally:
            client.close()
        assert time.monotonic() - started < 1.0
        for sock in (silent, partial):
            assert sock.recv(65536) == b""                  # closed by the gateway
        assert 0.9 < time.monotonic() - started < 5.0
    finally:
        silent.close()
        partial.close()
    # The worker is the one that started: nothing crashed.
    assert len(gw.workers()) == 1 and gw.workers()[0]["state"] == "ready"


# -- certificates swapped by a reload ------------------------------------------------------
def test_hup_serves_replaced_files_to_new_connections_while_old_ones_go_on(
        upstreams, gateways, clients, tmp_path) -> None:
    d = str(tmp_path / "certs")
    os.mkdir(d)
    cert, key = self_signed_pair(d, "site", ["a.example"])
    first = der_of(cert)
    upstream = upstreams(name="app")
    gw = tls_gateway(gateways, upstream, {"certificates": [{"cert": cert, "key": key}]},
                     workers=2)
    pids = sorted(w["pid"] for w in gw.workers())
    # Open keep-alive connections, on whichever workers the kernel hands them to.
    olds = [clients(gw.port, "a.example") for _ in range(6)]
    for old in olds:
        assert old.served_der == first and old.get()[0] == 200
    # Replaced in place, under the same paths (what a renewal does): no config change.
    renewed = str(tmp_path / "renewed")
    os.mkdir(renewed)
    new_cert, new_key = self_signed_pair(renewed, "site", ["a.example"])
    os.replace(new_key, key)
    os.replace(new_cert, cert)
    second = der_of(cert)
    assert second != first
    time.sleep(0.8)      # the old connections wait idle long enough to be parked
    result = gw.cli("reload")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: all(w["config_version"] == 2 for w in gw.workers()), 10,
               "both workers to serve the reloaded version")
    # The same workers (no restart), and every one of them serves the new file now.
    assert sorted(w["pid"] for w in gw.workers()) == pids
    for _ in range(10):
        client = TlsClient(gw.port, "a.example")
        try:
            assert client.served_der == second
            assert client.get()[0] == 200
        finally:
            client.close()
    # The connections opened before go on, with the certificate they were served.
    for old in olds:
        for _ in range(2):
            status, _, body = old.get()
            assert (status, body) == (200, b"app")
        assert old.served_der == first


def test_a_reload_can_turn_tls_on_and_off_on_a_bound_port(upstreams, gateways, pki) -> None:
    upstream = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(upstream.port)]}])
    pid = gw.workers()[0]["pid"]
    gw.config["gateways"][0]["bind_addresses"][0]["tls"] = {
        "certificates": certificates(pki["a"])}
    gw.write_config()
    assert gw.cli("reload").returncode == 0

    def speaks_tls() -> bool:
        try:
            client = TlsClient(gw.port, "a.example", timeout=2)
        except (ssl.SSLError, OSError):
            return False
        try:
            return client.get()[0] == 200
        finally:
            client.close()
    wait_until(speaks_tls, 10, "TLS on the port after the reload", interval=0.1)
    del gw.config["gateways"][0]["bind_addresses"][0]["tls"]
    gw.write_config()
    assert gw.cli("reload").returncode == 0

    def speaks_plain_http() -> bool:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            try:
                return sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            except OSError:
                return False
    wait_until(speaks_plain_http, 10, "plain HTTP on the port after the next reload",
               interval=0.1)
    # The same worker all along: the port stayed bound and the worker swapped settings.
    assert [w["pid"] for w in gw.workers()] == [pid]


# -- redirect_https -----------------------------------------------------------------------
def test_redirect_https_keeps_host_path_and_query(upstreams, gateways, pki, curl) -> None:
    upstream = upstreams(name="app")
    plain = free_port()
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(pki["a"])},
                     extra_binds=[{"host": "127.0.0.1", "port": plain,
                                   "redirect_https": True}])

    def ask(method: str, target: str, host: str, body: bytes = b"") -> bytes:
        with socket.create_connection(("127.0.0.1", plain), timeout=5) as sock:
            sock.sendall(f"{method} {target} HTTP/1.1\r\nhost: {host}\r\ncontent-length: "
                         f"{len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            return data
    answer = ask("GET", "/a/b?x=1&y=%20", f"Shop.Example:{plain}")
    assert answer.startswith(b"HTTP/1.1 301 ")
    assert f"\r\nlocation: https://shop.example:{gw.port}/a/b?x=1&y=%20\r\n".encode() in answer
    answer = ask("POST", "/form", "a.example", b"field=1")
    assert answer.startswith(b"HTTP/1.1 308 ")
    assert f"\r\nlocation: https://a.example:{gw.port}/form\r\n".encode() in answer
    assert upstream.received == []          # nothing plain went upstream
    # HTTP/1.0 without a Host (known here: no downstreams) has no name to redirect to.
    with socket.create_connection(("127.0.0.1", plain), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    result = subprocess.run([curl, "-sS", "-L", "-k", "--max-time", "10",
                             f"http://127.0.0.1:{plain}/hello?x=1"],
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, "app"), result.stderr
    assert upstream.received[-1].target == "/hello?x=1"
    assert upstream.received[-1].header("x-forwarded-proto") == "https"


# -- draining -------------------------------------------------------------------------------
def test_quit_closes_idle_tls_connections_without_waiting_for_graceful_timeout(
        upstreams, gateways, pki) -> None:
    upstream = upstreams(name="app")
    gw = tls_gateway(gateways, upstream, {"certificates": certificates(pki["a"])})
    client = TlsClient(gw.port, "a.example")
    try:
        assert client.get()[0] == 200
        started = time.monotonic()
        gw.signal(signal.SIGQUIT)
        assert gw.process is not None
        gw.process.wait(8)               # graceful_timeout is 10
        assert time.monotonic() - started < 8
        assert "graceful_timeout reached" not in gw.log_text()
    finally:
        client.close()


def test_the_admin_api_swaps_certificates_too(upstreams, gateways, clients, tmp_path) -> None:
    """POST /reload (as HUP) and PUT /config naming other files, each under an open
    keep-alive TLS connection that goes on."""
    import http.client
    import json

    token = "tls-admin-token-0123456789"
    token_file = tmp_path / "admin.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    d = str(tmp_path / "certs")
    os.mkdir(d)
    cert, key = self_signed_pair(d, "site", ["a.example"])
    first = der_of(cert)
    admin_port = free_port()
    upstream = upstreams(name="app")
    gw = tls_gateway(gateways, upstream, {"certificates": [{"cert": cert, "key": key}]},
                     extra={"admin": {"listen": f"127.0.0.1:{admin_port}",
                                      "token_file": str(token_file)}})

    def admin(method: str, path: str, document: Any = None) -> tuple[int, Any]:
        wait_until(lambda: _accepts(admin_port), 10, "the admin listener")
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=60)
        try:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            conn.request(method, path, body=None if document is None else json.dumps(document),
                         headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data else None
        finally:
            conn.close()

    def served() -> bytes:
        client = TlsClient(gw.port, "a.example")
        try:
            assert client.get()[0] == 200
            return client.served_der
        finally:
            client.close()

    old = clients(gw.port, "a.example")
    assert old.served_der == first and old.get()[0] == 200
    renewed = str(tmp_path / "renewed")
    os.mkdir(renewed)
    new_cert, new_key = self_signed_pair(renewed, "site", ["a.example"])
    os.replace(new_key, key)
    os.replace(new_cert, cert)
    second = der_of(cert)
    status, answer = admin("POST", "/reload")
    assert status == 200, answer
    wait_until(lambda: served() == second, 10, "the reload to reach the worker", interval=0.1)
    other_cert, other_key = self_signed_pair(renewed, "other", ["a.example"])
    third = der_of(other_cert)
    status, config = admin("GET", "/config")
    assert status == 200, config
    config["gateways"][0]["bind_addresses"][0]["tls"]["certificates"] = [
        {"cert": other_cert, "key": other_key}]
    status, answer = admin("PUT", "/config", config)
    assert status == 200, answer
    wait_until(lambda: served() == third, 10, "the new config to reach the worker",
               interval=0.1)
    status, _, body = old.get()
    assert (status, body) == (200, b"app") and old.served_der == first
    # A config whose key does not match is refused, and the certificate in service stays.
    config["gateways"][0]["bind_addresses"][0]["tls"]["certificates"] = [
        {"cert": other_cert, "key": key}]
    status, answer = admin("PUT", "/config", config)
    assert status == 422, (status, answer)
    assert "this key does not match the certificate" in json.dumps(answer)
    assert served() == third


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
