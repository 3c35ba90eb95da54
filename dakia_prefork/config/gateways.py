"""Gateways: the semantic checks and normalisation of each ``gateways[i]``.

The order matters only in one place: filters are compiled before routers and
interceptors are checked, so a reference to a filter that exists but does not compile
reports the filter's own error, not a second "no filter named" one.
"""
from __future__ import annotations

from collections.abc import Container, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from ..routing.filters import FilterError, compile_filter, normalise_filter_spec
from ..routing.hosts import HostPatternError, normalise_pattern
from .acme import check_acme_listeners, normalise_acme
from .addresses import normalise_address
from .findings import Findings
from .interceptors import check_interceptors
from .listener_tls import check_redirects, normalise_tls
from .location import child
from .realip import check_real_ip
from .upstreams import normalise_upstreams

_OPTIONAL_LISTS = ("downstreams", "routers", "interceptors", "filters")
DEFAULT_UPSTREAM_ALIAS = "default"


WHOLE_GATEWAY = "*"
"""In a gateway's set of quarantined sections: the gateway itself failed the schema."""


class _EveryName:
    """The names of a section that failed the schema: unknown, so any reference passes
    (the section's own schema error is what the user needs to see)."""

    def __contains__(self, name: object) -> bool:
        return True


def normalise_gateways(gateways: list[dict[str, Any]], base_dir: str, findings: Findings,
                       quarantined: Mapping[int, AbstractSet[str]] | None = None) -> None:
    """Check and normalise, in place, every defaults-filled gateway.

    ``quarantined`` maps a gateway's index to its sections (``bind_addresses``,
    ``routers``, ...) that failed the schema, or to :data:`WHOLE_GATEWAY`: their shape
    cannot be relied on, so their checks are skipped, and references into them (a router's
    upstream, an interceptor's filter) are taken as resolved.
    """
    quarantined = quarantined or {}
    first_by_name: dict[str, str] = {}
    for index, gateway in enumerate(gateways):
        broken = quarantined.get(index, frozenset())
        if WHOLE_GATEWAY in broken:
            continue
        path = child("gateways", index)
        name_path = child(path, "name")
        if "name" in broken:
            pass
        elif gateway["name"] in first_by_name:
            findings.error(name_path, f"duplicate gateway name {gateway['name']!r} "
                                      f"(also {first_by_name[gateway['name']]})")
        else:
            first_by_name[gateway["name"]] = name_path
        for key in _OPTIONAL_LISTS:
            # YAML's `routers:` with nothing under it is null: the same as absent.
            if gateway[key] is None:
                gateway[key] = []
        if "bind_addresses" not in broken:
            _normalise_binds(gateway["bind_addresses"], child(path, "bind_addresses"),
                             base_dir, findings)
        if "real_ip" not in broken:
            check_real_ip(gateway, path, findings)
        if "acme" not in broken:
            normalise_acme(gateway, path, base_dir, findings)
            if "bind_addresses" not in broken:
                check_acme_listeners(gateway, path, findings)
        if "downstreams" not in broken:
            _normalise_downstreams(gateway["downstreams"], child(path, "downstreams"),
                                   findings)
        if "upstreams" not in broken:
            normalise_upstreams(gateway["upstreams"], child(path, "upstreams"), base_dir,
                                findings)
        filter_names: Container[str] = (
            _EveryName() if "filters" in broken
            else _normalise_filters(gateway["filters"], child(path, "filters"), findings))
        if "routers" not in broken:
            _resolve_routers(gateway, path, filter_names, findings,
                             upstreams_known="upstreams" not in broken)
        if "interceptors" not in broken:
            check_interceptors(gateway["interceptors"], child(path, "interceptors"),
                               filter_names, findings, base_dir)


def _normalise_binds(binds: list[dict[str, Any]], path: str, base_dir: str,
                     findings: Findings) -> None:
    for index, bind in enumerate(binds):
        bind_path = child(path, index)
        address = normalise_address(bind, bind_path, base_dir, findings)
        if address is not None:
            # Not part of the address (the master binds by address alone): the worker
            # reads them per connection, so a reload can turn them on or off. Kept only
            # when on, so a plain listener normalises to its address.
            if bind.get("proxy_protocol"):
                address["proxy_protocol"] = True
            if "tls" in bind and bind.get("proxy_protocol"):
                findings.error(child(bind_path, "proxy_protocol"),
                               "not supported on a TLS listener yet (the PROXY header comes "
                               "before the handshake)")
            if "tls" in bind:
                address["tls"] = normalise_tls(bind["tls"], child(bind_path, "tls"),
                                               base_dir, findings)
            if bind.get("redirect_https"):
                address["redirect_https"] = True
            binds[index] = address
    check_redirects(binds, path, findings)


def _normalise_downstreams(downstreams: list[dict[str, str]], path: str,
                           findings: Findings) -> None:
    first_by_pattern: dict[str, str] = {}
    for index, downstream in enumerate(downstreams):
        host_path = child(child(path, index), "host")
        try:
            pattern = normalise_pattern(downstream["host"])
        except HostPatternError as exc:
            findings.error(host_path, str(exc))
            continue
        if pattern in first_by_pattern:
            findings.error(host_path, f"duplicate host pattern {pattern!r} "
                                      f"(also {first_by_pattern[pattern]})")
        else:
            first_by_pattern[pattern] = host_path
        downstream["host"] = pattern


def _normalise_filters(filters: list[dict[str, Any]], path: str,
                       findings: Findings) -> set[str]:
    """Compile every filter, normalise the ones that compile; return all names given."""
    first_by_name: dict[str, str] = {}
    for index, spec in enumerate(filters):
        filter_path = child(path, index)
        name = spec["name"]
        if name in first_by_name:
            findings.error(child(filter_path, "name"),
                           f"duplicate filter name {name!r} (also {first_by_name[name]})")
        else:
            first_by_name[name] = child(filter_path, "name")
        body = {key: value for key, value in spec.items() if key != "name"}
        try:
            compile_filter(body, filter_path)
        except FilterError as exc:
            findings.error(exc.path, exc.message)
            continue
        filters[index] = {"name": name, **normalise_filter_spec(body)}
    return set(first_by_name)


def _check_router_name(name: str | None, router_path: str, names: dict[str, str],
                       findings: Findings) -> None:
    """A router's ``name`` labels its metrics (metrics/keys.py), so it must tell it from
    every other route: unique, not ``-`` (no route), not digits alone (an unnamed router's
    label is its index)."""
    if name is None:
        return
    where = child(router_path, "name")
    if name == "-" or name.isdigit():
        findings.error(where, f"{name!r} is reserved: a router without a name is labelled "
                              "by its index, and '-' labels requests with no route")
    elif name in names:
        findings.error(where, f"duplicate router name {name!r} (also {names[name]})")
    else:
        names[name] = where


def _resolve_routers(gateway: dict[str, Any], path: str, filter_names: Container[str],
                     findings: Findings, *, upstreams_known: bool = True) -> None:
    """Resolve router upstreams (``default`` included) and filters; note dead routes.

    With ``upstreams_known`` false (the upstreams failed the schema), router upstreams are
    left as they are and taken as resolved."""
    upstream_names = {u["name"] for u in gateway["upstreams"]} if upstreams_known else set()
    default = (next((u["name"] for u in gateway["upstreams"] if u["default"]), None)
               if upstreams_known else None)
    routers_path = child(path, "routers")
    catch_all: str | None = None
    names: dict[str, str] = {}
    for index, router in enumerate(gateway["routers"]):
        router_path = child(routers_path, index)
        _check_router_name(router.get("name"), router_path, names, findings)
        target = router["upstream"]
        if target in upstream_names or not upstreams_known:
            pass  # A real name wins over the alias, even an upstream named "default".
        elif target == DEFAULT_UPSTREAM_ALIAS and default is not None:
            router["upstream"] = default
        elif target == DEFAULT_UPSTREAM_ALIAS:
            findings.error(child(router_path, "upstream"),
                           "no upstream named 'default' and no upstream is marked "
                           "default: true")
        else:
            findings.error(child(router_path, "upstream"), f"no upstream named {target!r}")
        filter_name = router["filter"]
        if filter_name is not None and filter_name not in filter_names:
            findings.error(child(router_path, "filter"), f"no filter named {filter_name!r}")
        if catch_all is not None:
            findings.notice(router_path, f"never used: {catch_all} has no filter and "
                                         "takes every request first")
        elif filter_name is None:
            catch_all = router_path
    if not gateway["routers"] and default is None and upstreams_known:
        findings.notice(routers_path, "no routers and no upstream marked default: true; "
                                      "every request will be answered 404")
