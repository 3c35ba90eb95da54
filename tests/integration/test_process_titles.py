"""Process titles: each process of a running gateway names its role in ps and top
(/proc/<pid>/cmdline), as nginx's and gunicorn's do."""
from __future__ import annotations

import os
import signal

from .harness import Gateway, node, wait_until


def title(pid: int) -> str:
    """What ps shows for ``pid``: its argv, NUL-separated and padded, as one line ("" once
    it has exited)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return ""
    return " ".join(part.decode() for part in raw.split(b"\0") if part)


def retitled_children(master: int, known: set[int]) -> list[str]:
    """The titles of the master's children outside ``known`` once each has set its own
    (right after fork a child still shows the master's title)."""
    master_title = title(master)
    titles = [t for t in (title(pid) for pid in children(master) - known) if t]
    return titles if titles and master_title not in titles else []


def children(pid: int) -> set[int]:
    """The live (not zombie) children of ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def test_master_workers_and_health_checker_name_their_role(upstreams, gateways):
    up = upstreams(name="app")
    gw: Gateway = gateways([{"name": "app", "health_check": {"path": "/hc", "interval": 0.2},
                             "upstream_nodes": [node(up.port)]}], workers=2)
    assert title(gw.master_pid) == f"dakia master -c {gw.config_path}"
    workers = {w["pid"]: w["slot"] for w in gw.workers()}
    assert sorted(workers.values()) == [0, 1]
    for pid, slot in workers.items():
        assert title(pid) == f"dakia worker {slot}"
    checker = wait_until(lambda: retitled_children(gw.master_pid, set(workers)), 10,
                         "the health checker")
    assert checker == ["dakia health"]


def test_the_config_loader_names_its_role(upstreams, gateways):
    up = upstreams(name="app")
    gw: Gateway = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}],
                           extra={"config_load": {"timeout": 20}})
    workers = {w["pid"] for w in gw.workers()}
    with open(gw.config_path) as f:
        original = f.read()
    # A file pure-Python YAML takes many seconds to parse keeps the loader alive to be seen.
    with open(gw.config_path, "w") as f:
        f.write(original + "\npadding: [" + ", ".join(["1"] * 900_000) + "]\n")
    gw.signal(signal.SIGHUP)
    loader = wait_until(lambda: retitled_children(gw.master_pid, workers), 10,
                        "the config loader")
    assert loader == ["dakia config loader"]
