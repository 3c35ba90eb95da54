"""From a raw config mapping to a normalised one: schema, then semantics.

Theory of operation
-------------------
1. The document must be plain JSON-shaped data, then valid against schema.json. Every
   violation is collected; if there is any, the run stops there, because the semantic
   checks rely on the shape the schema guarantees.
2. On a deep copy (the caller's mapping is never touched): Dakia-only top-level keys are
   mapped or dropped (dakia.py), absent keys get the schema's defaults (defaults.py).
3. Semantic checks and normalisation run together, section by section (settings.py,
   gateways.py, upstreams.py, interceptors.py, listeners.py), recording every error and
   notice at its location instead of stopping at the first.
4. Any error raises :class:`ConfigError` with all of them, sorted by location; otherwise
   the normalised config and the notices are returned.

The normalised config is itself a valid config: fed back through :func:`validate` it
comes out unchanged, with no notices. That is what lets a stored version be reloaded,
served by the controller and edited as any other config.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any

from .dakia import absorb_dakia_keys
from .defaults import fill_defaults
from .errors import ConfigError
from .findings import Findings
from .gateways import normalise_gateways
from .listeners import check_unique_listeners
from .location import TOP_LEVEL
from .schema import load_schema, plain_data_problems, schema_problems
from .settings import normalise_settings
from .source import load_source


def validate(raw: dict[str, Any], *, base_dir: str) -> tuple[dict[str, Any], list[str]]:
    """Validate and normalise ``raw``; relative paths resolve against ``base_dir``.

    Returns ``(normalised config, notices)``; notices are ``"<path>: <message>"`` lines
    about things accepted but ignored or changed. Raises :class:`ConfigError` listing
    every error found.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{TOP_LEVEL}: the configuration must be a mapping, "
                          f"got {type(raw).__name__}")
    findings = Findings()
    for path, message in plain_data_problems(raw) or schema_problems(raw):
        findings.error(path, message)
    findings.raise_errors()

    config = copy.deepcopy(raw)
    absorb_dakia_keys(config, findings)
    fill_defaults(config, load_schema())
    normalise_settings(config, base_dir, findings)
    normalise_gateways(config["gateways"], base_dir, findings)
    check_unique_listeners(config, findings)
    findings.raise_errors()
    return config, findings.notice_lines()


def load(path: str) -> tuple[dict[str, Any], list[str]]:
    """Read and validate the config file at ``path``; relative paths in it are relative
    to its directory. Returns and raises as :func:`validate` (and :func:`load_source`)."""
    raw = load_source(path)
    return validate(raw, base_dir=os.path.dirname(os.path.abspath(path)))


def dump_normalised(config: dict[str, Any]) -> str:
    """Canonical JSON text of a normalised config: sorted keys, fixed layout, ASCII.

    Equal configs give byte-equal text, so a version's file can be compared and hashed.
    """
    return json.dumps(config, sort_keys=True, indent=2, ensure_ascii=True,
                      allow_nan=False) + "\n"
