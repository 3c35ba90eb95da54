"""A node's config when the shared part lives elsewhere (``config_source``): two documents
made into one.

Theory of operation
-------------------
A fleet runs one *shared document* (in etcd) on many nodes, each with its own *local
file*. The two never overlap:

- the shared document supplies :data:`SHARED_KEYS`: the gateways and the settings that
  decide how a request is handled, which must be the same on every node for the nodes to
  behave as one;
- the local file supplies everything else: what is the node's own (workers, pid_file,
  state_dir, admin, logs, limits, http_parser, config_load, config_source itself...).

A key given on the wrong side is ignored with a notice, never an error: a document pulled
from a single node's config (``config pull`` of a former file) still loads, and the
notice says what was dropped. The combined mapping is then validated exactly as a config
file is (``validate``, with ``${NAME}`` from this node's environment), so every error of
the document is reported at its usual location, and ``check``, a start, the follower and
the admin API all give the same verdict.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .source import load_source, parse_document
from .validate import validate

SHARED_KEYS = frozenset({"gateways", "headers_with_underscores", "path_normalization",
                         "upstream_keepalive_pool_size"})
"""Top-level keys a shared document supplies; every other key is node-level."""

DOCUMENT = "(shared document)"
"""How messages name the document (its revision is added where known)."""


def has_source(raw: Mapping[str, Any]) -> bool:
    """Whether a local file's mapping names a config_source (before validation)."""
    return isinstance(raw.get("config_source"), dict)


def combine(local: Mapping[str, Any], document: Mapping[str, Any]
            ) -> tuple[dict[str, Any], list[str]]:
    """The local file's node-level keys with the document's shared ones, and the notices
    about keys ignored on either side. Raises ConfigError when the document has no
    gateways (a node with nothing to serve is a mistake, not a state)."""
    notices = []
    combined = {key: value for key, value in local.items() if key not in SHARED_KEYS}
    for key in sorted(set(local) & SHARED_KEYS):
        notices.append(f"{key}: ignored in the local file: config_source supplies it")
    for key, value in document.items():
        if key in SHARED_KEYS:
            combined[key] = value
        else:
            notices.append(f"{DOCUMENT} {key}: a node-level setting, taken from the local "
                           "file; ignored in the document")
    gateways = document.get("gateways")
    if not isinstance(gateways, list) or not gateways:
        raise ConfigError(f"{DOCUMENT} gateways: the shared document needs at least one "
                          "gateway")
    return combined, notices


def validate_combined(local_path: str, document: dict[str, Any],
                      environ: Mapping[str, str] | None = None
                      ) -> tuple[dict[str, Any], list[str]]:
    """Read the local file at ``local_path`` and validate it with ``document`` as one
    config (paths relative to the local file). Raises ConfigError with every error."""
    local = load_source(local_path)
    if not has_source(local):
        raise ConfigError(f"{local_path}: config_source: the local file no longer names "
                          "one; restart the node to leave the fleet")
    combined, notices = combine(local, document)
    config, more = validate(combined,
                            base_dir=os.path.dirname(os.path.abspath(local_path)),
                            environ=os.environ if environ is None else environ)
    return config, notices + more


def parse_shared(raw: bytes, revision: int | None) -> dict[str, Any]:
    """A shared document's bytes (JSON, as stored in etcd) to a mapping, under the same
    bounds as a config file. Raises ConfigError."""
    name = DOCUMENT if revision is None else f"{DOCUMENT} at etcd revision {revision}"
    return parse_document(raw, name, as_json=True)
