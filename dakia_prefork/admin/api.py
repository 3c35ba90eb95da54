"""The admin REST API as a function of a request: routing, auth, content types, answers.

Theory of operation
-------------------
:class:`AdminApi` turns one :class:`AdminRequest` (method, target, headers, whole body)
into one :class:`AdminResponse`. It does no I/O of its own: whatever it needs from the
running gateway (the current version, validation, publishing a change, status, metrics)
it asks a :class:`ConfigBackend`, so the whole API is unit-tested with an in-memory
backend, and the same object serves the admin listener (admin/server.py) and the
``controller`` interceptor.

Changes follow one rule: a change is published only on top of the version it was made
from. ``PUT`` and ``rollback`` carry the client's ``If-Match`` (or none); ``PATCH`` always
carries the version it read, and retries on the newer one when another change won the
race, so two patches never overwrite each other. The backend (the master, in the end)
compares and publishes in one step, which is what makes changes never interleave.

Every request that could change something is audited in the error log: client address,
method, target, and the version before and after.
"""
from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

import yaml

from .. import dashboard
from .diff import DiffTooLarge, unified_diff
from .mergepatch import apply_merge_patch
from .token import AdminToken

log = logging.getLogger("dakia.admin")

JSON = "application/json"
YAML = "application/yaml"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
_PATCH_TYPES = ("application/merge-patch+json", JSON)
_PATCH_RETRIES = 5
_VERSION_PATH = re.compile(r"/config/(versions|rollback)/([0-9]{1,9})\Z")
_VERSION_NUMBER = re.compile(r"[0-9]{1,9}\Z")
_UNAUTHENTICATED = frozenset({"/healthz", "/ready"})
"""Probes a load balancer or an orchestrator calls: they tell only up or down."""


@dataclass(frozen=True)
class AdminRequest:
    method: str
    target: str
    headers: Mapping[bytes, bytes]
    """Lower-case names; a repeated header's values joined with ``, ``."""
    body: bytes = b""
    client: str = "-"


@dataclass
class AdminResponse:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Version:
    number: int
    document: dict[str, Any]
    """The config as its source gave it (a file, a PUT): what GET returns, PATCH edits."""
    revision: int | None = None
    """On an etcd config_source: the key's mod_revision the version was made from."""

    @property
    def tag(self) -> int:
        """What its ETag says and an ``If-Match`` is compared with: the etcd revision on an
        etcd source (the same on every node of a fleet), else the version number."""
        return self.number if self.revision is None else self.revision


@dataclass(frozen=True)
class Outcome:
    """What publishing a change did: exactly one of version, conflict or errors is set."""

    version: int | None = None
    conflict: int | None = None
    """The current version, when it was not the one the change was made from."""
    errors: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    """Restart-only settings the change gave that the running master kept."""
    persist_error: str | None = None
    """Published, but ``?persist=true`` could not write the source file: why."""
    unavailable: str | None = None
    """The master could not be asked (stopping, or no answer in time): why. Nothing is
    known to have changed, nor known not to."""
    refused: str | None = None
    """The request cannot be honoured here whatever the document (``?persist=true`` on
    an etcd source): why. Nothing changed."""
    revision: int | None = None
    """On an etcd source: the key's mod_revision the change made (the new ETag)."""

    @property
    def tag(self) -> int | None:
        return self.version if self.revision is None else self.revision


class DocumentError(Exception):
    """A body that does not parse into a config document; the message says where."""


class ConfigBackend(Protocol):
    """What the API needs from the running gateway."""

    def current(self) -> Version: ...

    def version(self, number: int) -> Version | None: ...

    def versions(self) -> list[int]: ...

    def check(self, document: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(errors, notices) of ``document``, exactly as ``dakia-master check`` gives them."""
        ...

    def publish(self, document: dict[str, Any], *, base: int | None, persist: bool,
                origin: str) -> Outcome:
        """Validate and publish ``document`` if the current version is ``base`` (any, with
        None); with ``persist``, also write it to the source file."""
        ...

    def reload(self, origin: str) -> Outcome:
        """Publish the source file again, as HUP does."""
        ...

    def status(self) -> dict[str, Any]: ...

    def ready(self) -> bool:
        """Every worker serves the current version."""
        ...

    def metrics(self) -> bytes: ...

    def fleet_nodes(self) -> dict[str, Any] | None:
        """On an etcd config_source, the fleet's registry: ``{"key", "self", "nodes"}``
        (None elsewhere); raises an exception whose text says why it cannot be read."""
        ...


Parser = Callable[[bytes, bool], dict[str, Any]]
"""A body and whether it is JSON (else YAML) to a document; raises DocumentError."""


class AdminApi:
    """The admin API on ``backend``; requests need ``token`` unless it is None."""

    def __init__(self, backend: ConfigBackend, token: AdminToken | None,
                 parse: Parser) -> None:
        self._backend = backend
        self._token = token
        self._parse = parse
        # PATCHes of this process apply one at a time (a gevent lock once patched), so one
        # never has to retry against another; the retry is for changes made elsewhere.
        self._patching = threading.Lock()

    def set_token(self, token: AdminToken | None) -> None:
        """Take a new token (the token file changed, or its setting did, on a reload)."""
        self._token = token

    def handle(self, request: AdminRequest) -> AdminResponse:
        path, _, query_text = request.target.partition("?")
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        static = dashboard.ROUTES.get(path)
        if static is not None or path == "/dashboard":
            # The dashboard's files hold no data (they fetch it with the token), so they
            # are served to anyone, as a login page is (dashboard/__init__.py).
            return _static(request.method, static)
        if path not in _UNAUTHENTICATED and self._token is not None \
                and not self._token.admits(request.headers.get(b"authorization")):
            # No detail: which part was wrong is no business of an unauthenticated client.
            return AdminResponse(401, _json({"error": "unauthorized"}),
                                 headers=[("WWW-Authenticate", 'Bearer realm="dakia-admin"')])
        route = self._route(request.method, path)
        if isinstance(route, AdminResponse):
            return route
        return route(request, query)

    # -- routing ---------------------------------------------------------------------------
    def _route(self, method: str, path: str
               ) -> Callable[[AdminRequest, dict[str, str]], AdminResponse] | AdminResponse:
        table: dict[str, dict[str, Callable[[AdminRequest, dict[str, str]], AdminResponse]]] = {
            "/config": {"GET": self._get_config, "PUT": self._put_config,
                        "PATCH": self._patch_config},
            "/config/validate": {"POST": self._validate},
            "/config/versions": {"GET": self._list_versions},
            "/config/diff": {"GET": self._diff},
            "/reload": {"POST": self._reload},
            "/status": {"GET": self._status},
            "/metrics": {"GET": self._metrics},
            "/fleet/nodes": {"GET": self._fleet_nodes},
            "/healthz": {"GET": self._healthz},
            "/ready": {"GET": self._ready},
        }
        methods = table.get(path)
        number: int | None = None
        if methods is None:
            match = _VERSION_PATH.match(path)
            if match is None:
                return AdminResponse(404, _json({"error": f"no such resource: {path[:200]}"}))
            number = int(match.group(2))
            methods = ({"GET": self._version_handler(number)} if match.group(1) == "versions"
                       else {"POST": self._rollback_handler(number)})
        if method == "HEAD" and "GET" in methods:
            method = "GET"
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            return AdminResponse(405, _json({"error": f"{method[:20]} not allowed; "
                                                      f"allowed: {allowed}"}),
                                 headers=[("Allow", allowed)])
        return handler

    # -- reading ---------------------------------------------------------------------------
    def _get_config(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        current = self._backend.current()
        return self._document(request, current)

    def _version_handler(self, number: int
                         ) -> Callable[[AdminRequest, dict[str, str]], AdminResponse]:
        def handler(request: AdminRequest, query: dict[str, str]) -> AdminResponse:
            found = self._backend.version(number)
            if found is None:
                return AdminResponse(404, _json({"error": f"no version {number} is kept"}))
            return self._document(request, found)
        return handler

    def _document(self, request: AdminRequest, version: Version) -> AdminResponse:
        headers = [("ETag", _etag(version.tag)), ("Vary", "Accept")]
        if _wants_yaml(request.headers.get(b"accept", b"")):
            body = yaml.safe_dump(version.document, sort_keys=False,
                                  allow_unicode=True).encode()
            return AdminResponse(200, body, YAML, headers)
        return AdminResponse(200, _json(version.document), JSON, headers)

    def _list_versions(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        current = self._backend.current()
        body: dict[str, Any] = {"current": current.number, "versions": self._backend.versions()}
        if current.revision is not None:
            body["etcd_revision"] = current.revision
        return AdminResponse(200, _json(body))

    def _diff(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        """``?from=A&to=B``: a unified diff of two kept versions' documents, as YAML."""
        documents = []
        for side in ("from", "to"):
            value = query.get(side, "")
            if not _VERSION_NUMBER.match(value):
                return AdminResponse(400, _json({"error": "give two version numbers: "
                                                          "/config/diff?from=3&to=4"}))
            found = self._backend.version(int(value))
            if found is None:
                return AdminResponse(404, _json({"error": f"no version {value} is kept"}))
            documents.append((f"v{value}", found.document))
        try:
            text = unified_diff(*documents[0], *documents[1])
        except DiffTooLarge as exc:
            return AdminResponse(422, _json({"error": str(exc)}))
        return AdminResponse(200, text.encode(), "text/plain; charset=utf-8")

    def _status(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        return AdminResponse(200, _json(self._backend.status()))

    def _metrics(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        return AdminResponse(200, self._backend.metrics(), PROMETHEUS)

    def _fleet_nodes(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        try:
            registry = self._backend.fleet_nodes()
        except Exception as exc:  # noqa: BLE001 - etcd away: say so, as a change would
            return AdminResponse(503, _json({"error": f"etcd: {exc}"[:300]}),
                                 headers=[("Retry-After", "5")])
        if registry is None:
            return AdminResponse(404, _json({"error": "this node has no etcd config_source: "
                                                      "it is in no fleet"}))
        return AdminResponse(200, _json(registry))

    def _healthz(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        return AdminResponse(200, _json({"status": "ok"}))

    def _ready(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        if self._backend.ready():
            return AdminResponse(200, _json({"ready": True}))
        return AdminResponse(503, _json({"ready": False}))

    # -- changing --------------------------------------------------------------------------
    def _validate(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        document = self._body_document(request)
        if isinstance(document, AdminResponse):
            return document
        errors, notices = self._backend.check(document)
        if errors:
            return AdminResponse(422, _json({"valid": False, "errors": errors,
                                             "notices": notices}))
        return AdminResponse(200, _json({"valid": True, "errors": [], "notices": notices}))

    def _put_config(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        base = _if_match(request)
        if isinstance(base, AdminResponse):
            return base
        document = self._body_document(request)
        if isinstance(document, AdminResponse):
            return document
        return self._publish(request, document, base, _persist(query))

    def _patch_config(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        content_type = _media_type(request.headers.get(b"content-type", b""))
        if content_type not in _PATCH_TYPES:
            return AdminResponse(415, _json({"error": "PATCH takes a JSON merge patch "
                                                      "(application/merge-patch+json)"}))
        wanted = _if_match(request)
        if isinstance(wanted, AdminResponse):
            return wanted
        try:
            patch = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return AdminResponse(400, _json({"error": f"the patch is not JSON: {exc}"[:300]}))
        if not isinstance(patch, dict):
            return AdminResponse(422, _json({"errors": [
                "(top level): a merge patch of a config must be an object"]}))
        with self._patching:
            return self._patch_in_turn(request, query, patch, wanted)

    def _patch_in_turn(self, request: AdminRequest, query: dict[str, str],
                       patch: dict[str, Any], wanted: int | None) -> AdminResponse:
        for _ in range(_PATCH_RETRIES):
            current = self._backend.current()
            if wanted is not None and current.tag != wanted:
                return self._conflict(current.tag)
            document = apply_merge_patch(current.document, patch)
            response = self._publish(request, document, current.tag, _persist(query))
            # Another change won the race between reading and publishing: patch that one.
            if response.status != 409 or wanted is not None:
                return response
        return response

    def _rollback_handler(self, number: int
                          ) -> Callable[[AdminRequest, dict[str, str]], AdminResponse]:
        def handler(request: AdminRequest, query: dict[str, str]) -> AdminResponse:
            base = _if_match(request)
            if isinstance(base, AdminResponse):
                return base
            found = self._backend.version(number)
            if found is None:
                return AdminResponse(404, _json({"error": f"no version {number} is kept"}))
            return self._publish(request, found.document, base, _persist(query))
        return handler

    def _reload(self, request: AdminRequest, query: dict[str, str]) -> AdminResponse:
        before = self._backend.current().number
        outcome = self._backend.reload(request.client)
        return self._answer(request, before, outcome)

    def _publish(self, request: AdminRequest, document: dict[str, Any], base: int | None,
                 persist: bool) -> AdminResponse:
        before = self._backend.current().number
        outcome = self._backend.publish(document, base=base, persist=persist,
                                        origin=request.client)
        return self._answer(request, before, outcome)

    def _answer(self, request: AdminRequest, before: int, outcome: Outcome) -> AdminResponse:
        what = f"admin {request.client} {request.method} {request.target[:200]}"
        if outcome.refused is not None:
            log.warning("%s: refused: %s", what, outcome.refused)
            return AdminResponse(400, _json({"error": outcome.refused}))
        if outcome.unavailable is not None:
            log.warning("%s: not answered: %s", what, outcome.unavailable)
            return AdminResponse(503, _json({"error": outcome.unavailable}),
                                 headers=[("Retry-After", "5")])
        if outcome.conflict is not None:
            log.warning("%s: refused, version moved to v%d", what, outcome.conflict)
            return self._conflict(outcome.conflict)
        if outcome.errors:
            log.warning("%s: rejected (v%d kept): %s", what, before,
                        "; ".join(outcome.errors)[:500])
            return AdminResponse(422, _json({"errors": outcome.errors}))
        assert outcome.version is not None and outcome.tag is not None
        log.warning("%s: v%d -> v%d%s", what, before, outcome.version,
                    "" if outcome.revision is None else f" (etcd revision {outcome.revision})")
        body: dict[str, Any] = {"version": outcome.version, "previous": before,
                                "not_applied": outcome.not_applied}
        if outcome.revision is not None:
            body["etcd_revision"] = outcome.revision
        if outcome.persist_error is not None:
            body["persist_error"] = outcome.persist_error
        return AdminResponse(200, _json(body), headers=[("ETag", _etag(outcome.tag))])

    def _conflict(self, current: int) -> AdminResponse:
        return AdminResponse(409, _json({"error": "the config changed since; fetch it again",
                                         "current": current}),
                             headers=[("ETag", _etag(current))])

    def _body_document(self, request: AdminRequest) -> dict[str, Any] | AdminResponse:
        content_type = _media_type(request.headers.get(b"content-type", b""))
        if content_type == JSON:
            as_json = True
        elif content_type in _YAML_TYPES:
            as_json = False
        else:
            return AdminResponse(415, _json({"error": "send the config as application/json "
                                                      "or application/yaml"}))
        try:
            return self._parse(request.body, as_json)
        except DocumentError as exc:
            return AdminResponse(422, _json({"errors": [str(exc)]}))


def _static(method: str, name: str | None) -> AdminResponse:
    if method not in ("GET", "HEAD"):
        return AdminResponse(405, _json({"error": f"{method[:20]} not allowed; allowed: GET"}),
                             headers=[("Allow", "GET")])
    if name is None:             # /dashboard: the page's relative links need the slash
        return AdminResponse(301, b"", "text/plain; charset=utf-8",
                             headers=[("Location", "dashboard/")])
    body, content_type = dashboard.asset(name)
    headers = [("Content-Security-Policy", dashboard.PAGE_POLICY),
               ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer")]
    return AdminResponse(200, body, content_type, headers)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"


def _etag(version: int) -> str:
    return f'"{version}"'


def _media_type(value: bytes) -> str:
    return value.split(b";", 1)[0].strip().lower().decode("latin-1")


def _wants_yaml(accept: bytes) -> bool:
    """YAML only when asked for by name; JSON for */*, absent or anything else."""
    return any(_media_type(part) in _YAML_TYPES for part in accept.split(b","))


def _persist(query: dict[str, str]) -> bool:
    return query.get("persist", "").lower() in ("1", "true", "yes")


def _if_match(request: AdminRequest) -> int | None | AdminResponse:
    """The version an ``If-Match`` names; None without one (or ``*``)."""
    value = request.headers.get(b"if-match")
    if value is None or value.strip() == b"*":
        return None
    tag = value.strip()
    if tag.startswith(b"W/"):
        tag = tag[2:]
    tag = tag.strip(b'"')
    if not tag.isdigit() or len(tag) > 9:
        return AdminResponse(400, _json({"error": "If-Match takes the ETag of GET /config, "
                                                  'e.g. "12"'}))
    return int(tag)
