"""Continuous keep-alive load for operational tests: count every failed request.

Each client is a thread with its own keep-alive connection sending GETs back to back. A
request fails if it raises (reset, refused, timeout) or gets a status other than the
expected one. A client whose connection broke reconnects on its next request, as real
clients do, and that next request counts on its own.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests


@dataclass
class LoadResult:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    bodies: Counter = field(default_factory=Counter)


class Load:
    def __init__(self, url: str, clients: int = 4, path: str = "/",
                 expect_status: int = 200) -> None:
        self.url = url + path
        self.expect_status = expect_status
        self.clients = clients
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.result = LoadResult()
        self.timeline: list[tuple[float, bool, str]] = []
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(clients)]

    def __enter__(self) -> "Load":
        for thread in self._threads:
            thread.start()
        self.wait_for(20)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        return self.result

    def wait_for(self, successes: int, timeout: float = 10.0) -> None:
        """Block until ``successes`` more requests have succeeded."""
        target = self.result.ok + successes
        deadline = time.monotonic() + timeout
        while self.result.ok < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"load made no progress: {self.result.failures[-5:]}")
            time.sleep(0.01)

    def _client(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                response = session.get(self.url, timeout=10)
            except requests.RequestException as exc:
                self._record(now, False, f"{type(exc).__name__}: {exc}")
                session.close()
                session = requests.Session()
                continue
            ok = response.status_code == self.expect_status
            self._record(now, ok, response.text if ok else
                         f"status {response.status_code}: {response.text[:100]}")
        session.close()

    def _record(self, when: float, ok: bool, text: str) -> None:
        with self._lock:
            self.timeline.append((when, ok, text))
            if ok:
                self.result.ok += 1
                self.result.bodies[text] += 1
            else:
                self.result.failures.append(text)

    def bodies_since(self, since: float) -> Counter:
        with self._lock:
            return Counter(text for when, ok, text in self.timeline if ok and when >= since)
