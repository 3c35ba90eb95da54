"""The few etcd v3 calls a node makes: on its key, read, compare-and-put, watch; under the
key's ``nodes/`` prefix, the fleet's registry (fleet/registry.py): a lease, a put with it,
a range read.

Theory of operation
-------------------
etcd's v3 API is served as JSON over HTTP by its gRPC gateway (``/v3/kv/range``,
``/v3/kv/txn``, ``/v3/watch``), which etcd3gw wraps with ``requests``: pure Python,
wheels everywhere, no gRPC toolchain. Requests go through etcd3gw's client (API path
discovery, TLS, errors by status code). Two things it does not do are done here:

- *authentication*: ``/v3/auth/authenticate`` gives a token that every later request
  carries in ``Authorization``; a token that expired is renewed once per call;
- *the watch stream*: etcd3gw's watcher runs its callback on a thread and drops the
  response that says the start revision was compacted, or that etcd cancelled the watch.
  A follower must see both (a compacted revision means "read the key again"), so the
  stream's lines are read here, in the caller's thread, and each is turned into events or
  an exception.

Endpoints are tried in turn, starting with the one that answered last; only when none
answers is :class:`EtcdUnreachable` raised. Every request is bounded by ``timeout``.

The values are bytes as etcd holds them (base64 on the wire); the revisions are etcd's:
``mod_revision`` of the key (what a node's ETag is), and the store's ``revision`` in each
response header (where a watch resumes).
"""
from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from etcd3gw import exceptions as etcd_errors
from etcd3gw.client import Etcd3Client

from ..config.model import EtcdSettings

_MAX_WATCH_LINE = 16 * 1024 * 1024
"""A watch response bigger than this is refused: etcd's own request limit (1.5 MiB by
default) keeps real ones far below; this only bounds a broken or hostile peer."""


class EtcdError(Exception):
    """etcd answered, but not as asked (bad credentials, a cancelled watch...)."""


class EtcdUnreachable(EtcdError):
    """No endpoint answered within the timeout."""


class Compacted(EtcdError):
    """The revision a watch should start at was compacted away: read the key again."""


@dataclass(frozen=True)
class Entry:
    """The key as one read found it."""

    value: bytes | None
    """None: the key does not exist."""
    mod_revision: int
    """The revision of its last change (0 when absent)."""
    revision: int
    """The store's revision at the read: a watch from ``revision + 1`` misses nothing."""


@dataclass(frozen=True)
class Event:
    value: bytes | None
    """None: the key was deleted."""
    mod_revision: int


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


class Etcd:
    """The key of ``settings`` on the cluster of ``settings``."""

    def __init__(self, settings: EtcdSettings) -> None:
        self.settings = settings
        self.key = settings.key
        self._clients = [self._client(url) for url in settings.endpoints]
        self._current = 0
        self._token: str | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint tried first (the one that answered last)."""
        return self.settings.endpoints[self._current]

    def _client(self, url: str) -> Etcd3Client:
        parts = urlsplit(url)
        s = self.settings
        client = Etcd3Client(host=parts.hostname or "localhost",
                             port=parts.port or (443 if parts.scheme == "https" else 2379),
                             protocol=parts.scheme, ca_cert=s.ca_file, cert_key=s.key_file,
                             cert_cert=s.cert_file, timeout=s.timeout)
        # No proxy from the environment: etcd is the node's own infrastructure.
        client.session.trust_env = False
        return client

    def close(self) -> None:
        for client in self._clients:
            client.session.close()

    # -- the calls -----------------------------------------------------------------------
    def get(self) -> Entry:
        reply = self._call("/kv/range", {"key": _b64(self.key)})
        revision = int(reply.get("header", {}).get("revision", 0))
        kvs = reply.get("kvs") or []
        if not kvs:
            return Entry(None, 0, revision)
        kv = kvs[0]
        return Entry(_unb64(kv.get("value", "")), int(kv.get("mod_revision", 0)), revision)

    def put(self, value: bytes, expect: int | None) -> tuple[bool, int]:
        """Put ``value`` if the key's mod_revision is ``expect`` (0: the key is absent;
        None: whatever it is). Returns (done, revision): the new mod_revision when done,
        else the key's current one."""
        put = {"request_put": {"key": _b64(self.key), "value": _b64(value)}}
        if expect is None:
            reply = self._call("/kv/txn", {"success": [put]})
            return True, int(reply["header"]["revision"])
        reply = self._call("/kv/txn", {
            "compare": [{"key": _b64(self.key), "target": "MOD", "result": "EQUAL",
                         "mod_revision": str(expect)}],
            "success": [put],
            "failure": [{"request_range": {"key": _b64(self.key)}}]})
        if reply.get("succeeded"):
            return True, int(reply["header"]["revision"])
        kvs = (reply.get("responses") or [{}])[0].get("response_range", {}).get("kvs") or []
        return False, int(kvs[0].get("mod_revision", 0)) if kvs else 0

    def watch(self, start_revision: int, idle: float) -> Iterator[Event]:
        """The key's changes from ``start_revision`` on, as they happen. Ends (returns) when
        nothing came for ``idle`` seconds or the server closed the stream; raises
        Compacted, EtcdError or EtcdUnreachable."""
        body = {"create_request": {"key": _b64(self.key), "start_revision": str(start_revision)}}
        response = self._open_stream(body, idle)
        try:
            for line in _lines(response):
                yield from _events(line)
        except requests.exceptions.ConnectionError:
            return          # a read timeout (idle) or the server going: the caller re-reads
        except requests.exceptions.RequestException as exc:
            raise EtcdUnreachable(f"{self.endpoint}: the watch broke: {exc}") from None
        finally:
            response.close()

    # -- the registry (fleet/registry.py) -------------------------------------------------
    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds: keys put with it vanish when it is not kept."""
        reply = self._call("/lease/grant", {"TTL": ttl})
        return int(reply["ID"])

    def keep_alive(self, lease: int) -> bool:
        """Renew ``lease``; False when it had already expired (its keys are gone)."""
        reply = self._call("/lease/keepalive", {"ID": str(lease)})
        return int((reply.get("result") or {}).get("TTL", 0) or 0) > 0

    def revoke(self, lease: int) -> None:
        """End ``lease`` now: its keys are deleted at once, not at its expiry."""
        self._call("/kv/lease/revoke", {"ID": str(lease)})

    def put_key(self, key: str, value: bytes, lease: int | None = None) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease is not None:
            body["lease"] = str(lease)
        self._call("/kv/put", body)

    def range_prefix(self, prefix: str, limit: int) -> list[tuple[str, bytes]]:
        """The keys under ``prefix`` (at most ``limit``, in key order) and their values."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        reply = self._call("/kv/range", {"key": _b64(prefix), "range_end": _b64(end),
                                         "limit": str(limit)})
        return [(_unb64(kv.get("key", "")).decode("utf-8", "replace"),
                 _unb64(kv.get("value", ""))) for kv in reply.get("kvs") or []]

    # -- plumbing ------------------------------------------------------------------------
    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._each_endpoint(lambda client: self._post(client, path, body))

    def _open_stream(self, body: dict[str, Any], idle: float) -> requests.Response:
        def open_on(client: Etcd3Client) -> requests.Response:
            self._authenticate(client)
            try:
                response = client.session.post(client.get_url("/watch"), json=body,
                                               stream=True,
                                               timeout=(self.settings.timeout, idle))
            except requests.exceptions.Timeout as exc:
                raise etcd_errors.ConnectionTimeoutError(str(exc)) from None
            except requests.exceptions.ConnectionError as exc:
                raise etcd_errors.ConnectionFailedError(str(exc)) from None
            if response.status_code != 200:
                text = response.text[:300]
                response.close()
                if "token" in text.lower():
                    self._token = None          # expired: the next attempt gets a new one
                raise EtcdError(f"{self.endpoint}: watch refused: {response.status_code} "
                                f"{text}")
            return response
        return self._each_endpoint(open_on)

    def _each_endpoint(self, call: Any) -> Any:
        failures = []
        count = len(self._clients)
        for step in range(count):
            index = (self._current + step) % count
            try:
                result = call(self._clients[index])
            except (etcd_errors.ConnectionFailedError,
                    etcd_errors.ConnectionTimeoutError) as exc:
                failures.append(f"{self.settings.endpoints[index]}: {_short(exc)}")
                continue
            except etcd_errors.Etcd3Exception as exc:
                raise EtcdError(f"{self.settings.endpoints[index]}: {_short(exc)}") from None
            self._current = index
            return result
        raise EtcdUnreachable("; ".join(failures))

    def _post(self, client: Etcd3Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._authenticate(client)
        try:
            return dict(client.post(client.get_url(path), json=body))
        except etcd_errors.Etcd3Exception as exc:
            if self._token is None or "token" not in _short(exc).lower():
                raise
            self._token = None                  # expired: once more with a new one
            self._authenticate(client)
            return dict(client.post(client.get_url(path), json=body))

    def _authenticate(self, client: Etcd3Client) -> None:
        settings = self.settings
        if settings.username is None:
            return
        if self._token is None:
            # An expired token sent along would have the authentication itself refused.
            client.session.headers.pop("Authorization", None)
            reply = client.post(client.get_url("/auth/authenticate"),
                                json={"name": settings.username,
                                      "password": settings.password or ""})
            self._token = str(reply["token"])
        client.session.headers["Authorization"] = self._token


def _short(exc: BaseException) -> str:
    # etcd3gw's exceptions keep their text in detail_text (the response body, or the
    # connection error), not in args.
    detail = getattr(exc, "detail_text", None) or str(exc) or type(exc).__name__
    text = " ".join(str(detail).split())
    if "Connection refused" in text:
        return "connection refused"
    return text[:300]


def _lines(response: requests.Response) -> Iterator[bytes]:
    """The stream's newline-ended JSON lines, each bounded."""
    pending = bytearray()
    for chunk in response.iter_content(chunk_size=None):
        pending += chunk
        while True:
            end = pending.find(b"\n")
            if end < 0:
                break
            line = bytes(pending[:end])
            del pending[:end + 1]
            if line.strip():
                yield line
        if len(pending) > _MAX_WATCH_LINE:
            raise EtcdError(f"a watch response is over {_MAX_WATCH_LINE} bytes")
    if pending.strip():
        yield bytes(pending)


def _events(line: bytes) -> Iterator[Event]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise EtcdError(f"the watch sent something that is not JSON: {exc}") from None
    if "error" in message:
        raise EtcdError(f"the watch failed: {str(message['error'])[:300]}")
    result = message.get("result", {})
    if int(result.get("compact_revision", 0) or 0) > 0:
        raise Compacted(f"revision compacted up to {result['compact_revision']}")
    if result.get("canceled"):
        raise EtcdError(f"etcd cancelled the watch: {result.get('cancel_reason', '?')}")
    for event in result.get("events") or []:
        kv = event.get("kv", {})
        deleted = event.get("type") == "DELETE"
        yield Event(None if deleted else _unb64(kv.get("value", "")),
                    int(kv.get("mod_revision", 0)))
