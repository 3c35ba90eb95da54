"""README.md's fenced code blocks, what each one asks of tests/integration/test_readme.py,
and the configs its YAML fragments are checked in.

The convention (README.md, Development):

- a block with no language (```) is shown output: a terminal transcript, log lines, a
  layout. It is not run.
- ```sh blocks are run by bash (``set -euo pipefail``) in a fresh network namespace, so
  the fixed ports the README uses (8080, 3000, 9901, 2379...) are free by construction.
- ```yaml and ```json blocks are configurations: a whole file, or a fragment that is
  placed where its keys belong in a small base config; then ``dakia-master check``.
- ```console blocks: the ``$ `` lines are run; ```python blocks are run by the gateway's
  interpreter; ```toml blocks are parsed.
- An HTML comment on the line before the fence changes that:
  ``<!-- readme: skip REASON -->`` (not run; the reason is required),
  ``<!-- readme: session NAME -->`` (run in one namespace with the other blocks of that
  session, in README order, after the session's setup), ``<!-- readme: given NAME -->``
  (a step the prose asks the reader to do by hand, done by the test first),
  ``<!-- readme: schema REASON -->`` (a fragment validated against the JSON Schema only,
  because the semantic checks need files or hosts the example names).
  Several may be given in one comment, separated by ``;`` (a ``;`` in a reason stays).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[A-Za-z0-9_+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*readme:\s*(?P<body>.*?)\s*-->\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
KNOWN_LANGUAGES = {"", "sh", "console", "yaml", "json", "python", "toml"}
ACTIONS = {"skip", "session", "given", "schema"}


@dataclass
class Block:
    line: int                     # 1-based line of the opening fence
    lang: str
    text: str                     # dedented by the fence's indentation
    section: str                  # the nearest heading above it
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        return f"L{self.line}-{self.lang or 'text'}"

    def first_line(self) -> str:
        return next((line for line in self.text.splitlines() if line.strip()), "")


class ReadmeError(Exception):
    pass


def parse_marker(body: str, line: int) -> dict[str, str]:
    marks: dict[str, str] = {}
    # `;` separates marks only before another mark's name: a reason may contain `;`.
    parts = re.split(r";\s*(?=(?:%s)\s)" % "|".join(sorted(ACTIONS)), body)
    for part in filter(None, (p.strip() for p in parts)):
        action, _, argument = part.partition(" ")
        if action not in ACTIONS:
            raise ReadmeError(f"README.md:{line}: unknown readme marker {action!r} "
                              f"(known: {', '.join(sorted(ACTIONS))})")
        if not argument.strip():
            raise ReadmeError(f"README.md:{line}: `readme: {action}` needs "
                              f"{'a reason' if action in ('skip', 'schema') else 'a name'}")
        marks[action] = argument.strip()
    return marks


def parse(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        heading = _HEADING.match(lines[i])
        if heading:
            section = heading.group(2)
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, lang = fence.group("indent"), fence.group("lang")
        end = i + 1
        while end < len(lines) and not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        if end == len(lines):
            raise ReadmeError(f"README.md:{i + 1}: a fence that is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                for line in lines[i + 1:end]]
        marks: dict[str, str] = {}
        before = i - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        marker = _MARKER.match(lines[before]) if before >= 0 else None
        if marker:
            marks = parse_marker(marker.group("body"), before + 1)
        blocks.append(Block(i + 1, lang, "\n".join(body) + "\n", section, marks))
        i = end + 1
    return blocks


# -- placing a configuration fragment ---------------------------------------------------
def schema_keys(schema: dict[str, Any]) -> dict[str, set[str]]:
    """The property names of each level a fragment can belong to."""
    defs = schema["$defs"]
    return {"top": set(schema["properties"]), "gateway": set(defs["gateway"]["properties"]),
            "upstream": set(defs["upstream"]["properties"])}


def base_config() -> dict[str, Any]:
    """Where fragments go: one gateway with an upstream and a route, valid as it is."""
    return {
        "workers": 1,
        "gateways": [{
            "name": "readme",
            "bind_addresses": [{"host": "127.0.0.1", "port": 8080}],
            "upstreams": [{"name": "readme_app", "default": True,
                           "upstream_nodes": [{"address": {"host": "127.0.0.1",
                                                           "port": 3000}}]}],
            "routers": [{"upstream": "default"}],
        }],
    }


def place(fragment: Any, keys: dict[str, set[str]]) -> dict[str, Any]:
    """The base config with ``fragment`` where its keys belong.

    A mapping's keys go to the first level that has them (top level, the gateway, its
    upstream): a key given at the top level replaces the base's, ``gateways`` included
    (each given gateway completed with what the base gateway has and it lacks). A list of
    named entries is a gateway's interceptors. Routers and interceptors that name filters
    or upstreams the fragment does not define get one of that name, so that an example
    cut from a larger file is checked for what it shows.
    """
    config = base_config()
    gateway = config["gateways"][0]
    upstream = gateway["upstreams"][0]
    if isinstance(fragment, list):
        if not all(isinstance(item, dict) and "name" in item for item in fragment):
            raise ReadmeError("a list fragment must be interceptors (entries with a name)")
        gateway["interceptors"] = fragment
    elif isinstance(fragment, dict):
        for key, value in fragment.items():
            if key == "gateways":
                config["gateways"] = [_complete(g, gateway) for g in value]
            elif key in keys["top"]:
                config[key] = value
            elif key in keys["gateway"]:
                gateway[key] = value
            elif key in keys["upstream"]:
                upstream[key] = value
            else:
                raise ReadmeError(f"{key!r} belongs to no level of the schema")
    else:
        raise ReadmeError("a config fragment is a mapping or a list of interceptors")
    for each in config["gateways"]:
        _define_references(each)
    return config


def _complete(given: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    done = copy.deepcopy(given)
    for key in ("bind_addresses", "upstreams", "routers"):
        if key not in done and "config_source" not in done:
            done[key] = copy.deepcopy(base[key])
    return done


def _define_references(gateway: dict[str, Any]) -> None:
    filters = gateway.setdefault("filters", [])
    upstreams = gateway.setdefault("upstreams", [])
    known_filters = {f.get("name") for f in filters}
    known_upstreams = {u.get("name") for u in upstreams} | {"default"}
    if not any(u.get("default") for u in upstreams) and upstreams:
        upstreams[0] = {**upstreams[0], "default": True}
    for entry in [*gateway.get("routers", []), *gateway.get("interceptors", [])]:
        name = entry.get("filter")
        if isinstance(name, str) and name not in known_filters:
            filters.append({"name": name, "path": {"$starts_with": f"/{name}"}})
            known_filters.add(name)
    for router in gateway.get("routers", []):
        name = router.get("upstream")
        if isinstance(name, str) and name not in known_upstreams:
            upstreams.append({"name": name, "upstream_nodes": [
                {"address": {"host": "127.0.0.1", "port": 3001}}]})
            known_upstreams.add(name)
