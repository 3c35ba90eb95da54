"""A real ACME server for tests: Let's Encrypt's ``pebble``, with ``pebble-challtestsrv``
as its DNS server (every name resolves to 127.0.0.1), both on loopback ports of their own.

Pebble validates HTTP-01 by connecting to the name at ``http_port``: the gateway's plain
listener. Its own HTTPS listener gets a certificate from a throw-away CA made here
(``ca_file``: what the gateway's ``acme.ca_file`` names). Validation happens at once and
every nonce is good (``PEBBLE_VA_NOSLEEP``, ``PEBBLE_WFE_NONCEREJECT=0``), so runs are
deterministic. Debian's ``pebble`` package provides both programs (.ci/run installs it).
"""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import urllib.request

from tests.tlsutil import make_pki

from .harness import free_port, wait_until


class Pebble:
    def __init__(self, directory: str, http_port: int, listen_port: int | None = None) -> None:
        if shutil.which("pebble") is None or shutil.which("pebble-challtestsrv") is None:
            raise RuntimeError("pebble is not installed (Debian: apt-get install pebble)")
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        pki = make_pki(directory)
        self.ca_file = pki.ca_file
        self.port = listen_port or free_port()
        self.management_port = free_port()
        self.dns_port = free_port()
        self.http_port = http_port
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": pki.server_cert, "privateKey": pki.server_key,
            "httpPort": http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}
        self.config_path = os.path.join(directory, "pebble.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> "Pebble":
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        log = open(os.path.join(self.dir, "pebble.log"), "ab")
        try:
            self.procs.append(subprocess.Popen(
                ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                 "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
                 "-tlsalpn01", "", "-management",
                 f"127.0.0.1:{free_port()}"], stdout=log, stderr=subprocess.STDOUT))
            self.procs.append(subprocess.Popen(
                ["pebble", "-config", self.config_path, "-dnsserver",
                 f"127.0.0.1:{self.dns_port}"], stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.dir))
        finally:
            log.close()
        wait_until(self._answers, 20, "pebble's directory")
        return self

    def _answers(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"pebble exited: {self.log_text()[-2000:]}")
        try:
            with urllib.request.urlopen(self.directory_url, timeout=2,
                                        context=self._client()) as answer:
                return answer.status == 200
        except OSError:
            return False

    def _client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def roots(self) -> str:
        """Pebble's root CA (made when it starts; it signs what it issues), PEM."""
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management_port}/roots/0",
                                    timeout=5, context=self._client()) as answer:
            return answer.read().decode()

    def log_text(self) -> str:
        try:
            with open(os.path.join(self.dir, "pebble.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
