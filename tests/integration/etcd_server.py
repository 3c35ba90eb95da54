"""A real ``etcd`` for tests: one member on free loopback ports, a temporary data dir,
always stopped.

``.ci/run`` installs Debian's etcd-server when ``etcd`` is missing; a test that needs one
fails (it does not skip) when the binary is absent, so a CI without it cannot pass
silently. The same data dir survives :meth:`EtcdServer.stop` and a later
:meth:`EtcdServer.start`, as a restarted member would.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from typing import Any

from .harness import free_port, wait_until


class EtcdServer:
    """``tls``: (ca_file, cert_file, key_file): serve https and require a client
    certificate signed by that CA (``--client-cert-auth``); ``client`` (cert_file,
    key_file) is the one this object's own requests present."""

    def __init__(self, directory: str, tls: tuple[str, str, str] | None = None,
                 client: tuple[str, str] | None = None, extra: tuple[str, ...] = ()) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise AssertionError("etcd is not installed (.ci/run installs it: "
                                 "apt-get install etcd-server)")
        self.binary = binary
        self.directory = directory
        self.data_dir = os.path.join(directory, "etcd-data")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = os.path.join(directory, "etcd.log")
        self.tls = tls
        self.extra = extra
        self._context: ssl.SSLContext | None = None
        if tls is not None:
            self._context = ssl.create_default_context(cafile=tls[0])
            if client is not None:
                self._context.load_cert_chain(*client)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    def start(self) -> "EtcdServer":
        peer = f"http://127.0.0.1:{self.peer_port}"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--name", "test", "--data-dir", self.data_dir,
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"test={peer}", "--initial-cluster-state", "new",
                 "--log-level", "warn", *self.extra,
                 *([] if self.tls is None else [
                     "--trusted-ca-file", self.tls[0], "--cert-file", self.tls[1],
                     "--key-file", self.tls[2], "--client-cert-auth"])],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.healthy, 20, f"etcd on {self.url} (log: {self.log_path})", 0.05)
        return self

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"etcd exited with {self.process.returncode}: "
                                 f"{self.log_text()}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1,
                                        context=self._context) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    # -- the key-value API, straight over HTTP (not the gateway's client: an independent
    # -- writer, as an operator's etcdctl would be) --------------------------------------
    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/v3/{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5, context=self._context) as response:
            return dict(json.loads(response.read()))

    def put(self, key: str, value: bytes | str) -> int:
        data = value.encode() if isinstance(value, str) else value
        reply = self.call("kv/put", {"key": _b64(key.encode()), "value": _b64(data)})
        return int(reply["header"]["revision"])

    def put_json(self, key: str, document: dict[str, Any]) -> int:
        return self.put(key, json.dumps(document))

    def get(self, key: str) -> tuple[bytes | None, int]:
        kvs = self.call("kv/range", {"key": _b64(key.encode())}).get("kvs") or []
        if not kvs:
            return None, 0
        return base64.b64decode(kvs[0].get("value", "")), int(kvs[0]["mod_revision"])

    def delete(self, key: str) -> None:
        self.call("kv/deleterange", {"key": _b64(key.encode())})

    def enable_auth(self, password: str) -> None:
        """etcd's authentication on, with one user, root (etcd's own rule: auth needs it)."""
        self.call("auth/user/add", {"name": "root", "password": password})
        self.call("auth/user/grant", {"user": "root", "role": "root"})
        self.call("auth/enable", {})

    def compact(self, revision: int) -> None:
        self.call("kv/compaction", {"revision": str(revision), "physical": True})

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
