"""From a raw config mapping to a normalised one: schema, then semantics.

Theory of operation
-------------------
1. The document must be plain JSON-shaped data (if not, the run stops there), then valid
   against schema.json. Every schema violation is collected.
2. The semantic checks rely on the shape the schema guarantees, so they skip the parts a
   schema violation is in, and only those (quarantine): a top-level setting that fails
   the schema is replaced by its default for the rest of the run, a gateway that fails it
   is left out of the gateway checks. One run thus reports a schema error in
   ``gateways[0]`` together with a semantic one in ``gateways[1]`` or in ``limits``.
3. On a deep copy (the caller's mapping is never touched): Dakia-only top-level keys are
   mapped or dropped (dakia.py), absent keys get the schema's defaults (defaults.py).
4. Semantic checks and normalisation run together, section by section (settings.py,
   gateways.py, upstreams.py, interceptors.py, listeners.py), recording every error and
   notice at its location instead of stopping at the first.
5. Any error raises :class:`ConfigError` with all of them, sorted by location; otherwise
   the normalised config and the notices are returned.

The normalised config is itself a valid config: fed back through :func:`validate` it
comes out unchanged, with no notices. That is what lets a stored version be reloaded,
served by the controller and edited as any other config.
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .dakia import absorb_dakia_keys
from .defaults import fill_defaults
from .environment import substitute
from .errors import ConfigError
from .findings import Findings
from .gateways import WHOLE_GATEWAY, normalise_gateways
from .listeners import check_controllers, check_unique_listeners
from .location import TOP_LEVEL, steps
from .schema import load_schema, plain_data_problems, schema_problems
from .settings import normalise_settings
from .source import load_source


def validate(raw: dict[str, Any], *, base_dir: str,
             environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Validate and normalise ``raw``; relative paths resolve against ``base_dir``.

    With ``environ``, ``${NAME}`` references in string values are substituted from it
    first (environment.py); a stored version, already substituted, is validated without.

    Returns ``(normalised config, notices)``; notices are ``"<path>: <message>"`` lines
    about things accepted but ignored or changed. Raises :class:`ConfigError` listing
    every error found.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{TOP_LEVEL}: the configuration must be a mapping, "
                          f"got {type(raw).__name__}")
    findings = Findings()
    for path, message in plain_data_problems(raw):
        findings.error(path, message)
    findings.raise_errors()
    unresolved: list[tuple[str, str]] = []
    if environ is not None:
        raw, unresolved = substitute(raw, environ)
    # A value left with an unresolved reference is as unusable as one of the wrong shape.
    problems = unresolved + schema_problems(raw)
    for path, message in problems:
        findings.error(path, message)
    quarantine = Quarantine.of(path for path, _ in problems)
    if quarantine.whole_document:
        findings.raise_errors()

    config = copy.deepcopy(raw)
    for key in quarantine.settings:
        config.pop(key, None)
    if quarantine.all_gateways:
        config["gateways"] = []
    absorb_dakia_keys(config, findings)
    fill_defaults(config, load_schema())
    # A node-level file naming a config_source needs no gateways: they come from there.
    config.setdefault("gateways", [])
    normalise_settings(config, base_dir, findings)
    normalise_gateways(config["gateways"], base_dir, findings, quarantine.gateways)
    check_unique_listeners(config, findings, skip=quarantine.listener_checks_skip())
    check_controllers(config, findings, skip=frozenset(quarantine.gateways))
    findings.raise_errors()
    return config, findings.notice_lines()


_GATEWAY_SECTIONS = frozenset({"name", "bind_addresses", "downstreams", "upstreams",
                               "routers", "interceptors", "filters", "real_ip"})
"""The keys of a gateway that gateways.py checks one by one (see normalise_gateways)."""


@dataclass(frozen=True)
class Quarantine:
    """The parts of a document that failed the schema, kept away from the semantic checks."""

    whole_document: bool
    """A violation of the document itself (not a mapping of known shape): nothing runs."""
    settings: frozenset[str]
    """Top-level keys other than ``gateways`` that failed: replaced by their defaults."""
    all_gateways: bool
    """``gateways`` itself failed (absent, not a list, empty): no gateway checks run."""
    gateways: dict[int, frozenset[str]]
    """Per gateway index, its sections that failed, or WHOLE_GATEWAY."""

    @classmethod
    def of(cls, locations: Iterable[str]) -> "Quarantine":
        whole = all_gateways = False
        settings: set[str] = set()
        gateways: dict[int, set[str]] = {}
        for location in locations:
            parts = steps(location)
            if not parts or location == TOP_LEVEL or not isinstance(parts[0], str):
                whole = True
            elif parts[0] != "gateways":
                settings.add(parts[0])
            elif len(parts) < 2 or not isinstance(parts[1], int):
                all_gateways = True
            else:
                section = parts[2] if len(parts) > 2 else WHOLE_GATEWAY
                if not isinstance(section, str) or section not in _GATEWAY_SECTIONS:
                    section = WHOLE_GATEWAY
                gateways.setdefault(parts[1], set()).add(section)
        return cls(whole, frozenset(settings), all_gateways,
                   {index: frozenset(sections) for index, sections in gateways.items()})

    def listener_checks_skip(self) -> frozenset[int]:
        """Gateways whose names or addresses cannot be compared with the others'."""
        return frozenset(index for index, sections in self.gateways.items()
                         if sections & {WHOLE_GATEWAY, "name", "bind_addresses"})


def load(path: str) -> tuple[dict[str, Any], list[str]]:
    """Read and validate the config file at ``path``; relative paths in it are relative
    to its directory, and ``${NAME}`` values come from this process's environment.
    Returns and raises as :func:`validate` (and :func:`load_source`)."""
    raw = load_source(path)
    return validate(raw, base_dir=os.path.dirname(os.path.abspath(path)), environ=os.environ)


def dump_normalised(config: dict[str, Any]) -> str:
    """Canonical JSON text of a normalised config: sorted keys, fixed layout, ASCII.

    Equal configs give byte-equal text, so a version's file can be compared and hashed.
    """
    return json.dumps(config, sort_keys=True, indent=2, ensure_ascii=True,
                      allow_nan=False) + "\n"
