"""The master's reconcile loop, decision by decision, with a fake spawner and a fake clock.

Nothing forks here: ``FakeSpawner`` records what the master asks (fork, kill) and hands back
the exits a test scripts; the control block lives in a bytearray; time only moves when the
test moves it. The real processes are exercised by tests/integration (test_master.py,
test_vacant_slots.py, test_master_faults.py).
"""
from __future__ import annotations

import signal
import socket
import time
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from dakia_prefork.config import validate
from dakia_prefork.master.arbiter import COVER_GRACE, Master
from dakia_prefork.master.listeners import Listener, ListenerSpec
from dakia_prefork.shm.control import STATE_DRAINING, STATE_READY, ControlBlock

EXIT_1 = 1 << 8           # a wait status: exited with code 1
KILLED = signal.SIGKILL   # a wait status: killed by SIGKILL


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSpawner:
    def __init__(self) -> None:
        self.next_pid = 100
        self.forked: list[int] = []
        self.signals: list[tuple[int, int]] = []
        self.exits: list[tuple[int, int]] = []

    def fork(self, child: Callable[[], Any]) -> int:
        self.next_pid += 1
        self.forked.append(self.next_pid)
        return self.next_pid

    def kill(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))

    def reap(self) -> tuple[int, int] | None:
        return self.exits.pop(0) if self.exits else None


class Loop:
    """A Master wired to the fakes, and the moves a test makes."""

    def __init__(self, tmp_path: Any, workers: int = 2, **upstream: Any) -> None:
        config, _ = validate({
            "workers": workers, "state_dir": str(tmp_path / "state"),
            "pid_file": str(tmp_path / "dakia.pid"), "access_log": "off",
            "gateways": [{"name": "g", "bind_addresses": [{"host": "127.0.0.1", "port": 1}],
                          "upstreams": [{"name": "u", "default": True, "upstream_nodes": [
                              {"address": {"host": "127.0.0.1", "port": 2}}],
                              **upstream}]}]},
            base_dir=str(tmp_path))
        self.clock = FakeClock()
        self.spawner = FakeSpawner()
        self.master = Master("unused.yaml", config, spawner=self.spawner, clock=self.clock)
        self.control = ControlBlock(SimpleNamespace(buf=bytearray(ControlBlock.SIZE)))
        self.master.control = self.control
        self.master.node_stats = SimpleNamespace(note_record=lambda r: None,
                                                 clear_record=lambda r: None)
        self.sockets: list[socket.socket] = []
        self.add_listener(1)

    def add_listener(self, port: int) -> None:
        """A listener with one (unbound) socket per slot: only identities matter here."""
        spec = ListenerSpec("g", "tcp", "127.0.0.1", port)
        made = [socket.socket() for _ in range(self.master.slots)]
        self.sockets.extend(made)
        self.master.listeners.current[spec.key] = Listener(spec, made)
        self.master.generation += 1

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def turn(self) -> None:
        """One pass of the loop's body (without the wait for an event)."""
        self.master._reap()
        self.master._reconcile()

    def workers(self, slot: int | None = None) -> list[Any]:
        return [w for w in self.master.workers.values() if slot is None or w.slot == slot]

    def ready(self, pid: int) -> None:
        self.control.set_state(self.master.workers[pid].record, STATE_READY)

    def all_ready(self) -> None:
        for worker in self.workers():
            self.ready(worker.pid)

    def exit(self, pid: int, status: int) -> None:
        self.spawner.exits.append((pid, status))

    def quits(self) -> set[int]:
        return {pid for pid, sig in self.spawner.signals if sig == signal.SIGQUIT}


@pytest.fixture
def loop(tmp_path: Any) -> Any:
    made = Loop(tmp_path)
    yield made
    made.close()


def test_an_empty_slot_gets_a_worker_and_ready_waits_for_all(loop):
    loop.turn()
    assert sorted(w.slot for w in loop.workers()) == [0, 1]
    assert loop.control.ready is False
    loop.ready(loop.workers(0)[0].pid)
    loop.turn()
    assert loop.control.ready is False and len(loop.spawner.forked) == 2
    loop.ready(loop.workers(1)[0].pid)
    loop.turn()
    assert loop.control.ready is True and len(loop.spawner.forked) == 2
    loop.turn()
    assert len(loop.spawner.forked) == 2, "a filled slot gets no second worker"


def test_a_crash_at_boot_backs_off_doubling(loop):
    loop.turn()
    delays = []
    for _ in range(6):
        [booting] = loop.workers(1)
        loop.exit(booting.pid, EXIT_1)           # died before it was ever ready
        loop.turn()
        assert loop.workers(1) == [], "no respawn before the back-off"
        waited = 0.0
        while not loop.workers(1):
            loop.clock.advance(0.125)         # exact in binary: no drift in the sum
            waited += 0.125
            loop.turn()
        delays.append(waited)
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]


def test_a_crash_after_serving_respawns_at_once_and_resets_the_back_off(loop):
    loop.turn()
    [first] = loop.workers(1)
    loop.exit(first.pid, EXIT_1)
    loop.turn()
    loop.clock.advance(0.25)
    loop.turn()
    [second] = loop.workers(1)
    loop.ready(second.pid)
    loop.exit(second.pid, KILLED)                # it served: not a boot crash
    loop.turn()
    [third] = loop.workers(1)
    assert third.pid != second.pid
    assert loop.master.slot_failures[1] == 0


def test_a_new_assignment_retires_the_old_workers_only_once_the_new_ones_serve(loop):
    loop.turn()
    loop.all_ready()
    loop.turn()
    old = {w.pid for w in loop.workers()}
    loop.add_listener(3)                          # a reload added a bind address
    loop.turn()
    new = {w.pid for w in loop.workers()} - old
    assert len(new) == 2
    assert loop.quits() == set(), "nothing is retired before its replacement serves"
    loop.ready(sorted(new)[0])
    loop.turn()
    assert loop.quits() == set()
    loop.ready(sorted(new)[1])
    loop.turn()
    assert loop.quits() == old
    # Draining workers that exit are not replaced.
    for pid in old:
        loop.control.set_state(loop.master.workers[pid].record, STATE_DRAINING)
        loop.exit(pid, 0)
    loop.turn()
    assert {w.pid for w in loop.workers()} == new and len(loop.spawner.forked) == 4


def test_fewer_workers_retire_the_slot_above(loop):
    loop.turn()
    loop.all_ready()
    loop.turn()
    [top] = loop.workers(1)
    loop.master._resize(1)
    loop.turn()
    loop.all_ready()
    loop.turn()
    assert top.pid in loop.quits()


def test_a_vacant_slot_is_covered_after_the_grace_and_uncovered_when_filled(loop):
    loop.turn()
    loop.ready(loop.workers(0)[0].pid)
    loop.turn()
    assert loop.control.vacant == frozenset()
    # Slot 1 keeps crashing at boot.
    elapsed = 0.0
    while elapsed < COVER_GRACE - 0.1:
        for worker in loop.workers(1):
            loop.exit(worker.pid, EXIT_1)
        loop.clock.advance(0.1)
        elapsed += 0.1
        loop.turn()
        assert loop.control.vacant == frozenset(), f"covered after only {elapsed:.1f}s"
    loop.clock.advance(0.2)
    loop.turn()
    assert loop.control.vacant == frozenset({1})
    # Its worker finally comes up: covering stops.
    loop.clock.advance(20)
    loop.turn()
    [back] = loop.workers(1)
    loop.ready(back.pid)
    loop.turn()
    assert loop.control.vacant == frozenset()


def test_no_covering_without_a_ready_worker_to_do_it(loop):
    loop.turn()
    loop.clock.advance(COVER_GRACE * 3)
    loop.turn()
    assert loop.control.vacant == frozenset()


def test_a_slot_whose_old_worker_still_serves_is_not_vacant(loop):
    loop.turn()
    loop.all_ready()
    loop.turn()
    loop.add_listener(3)                          # a roll: new workers boot slowly
    loop.turn()
    loop.clock.advance(COVER_GRACE * 3)
    loop.turn()
    assert loop.control.vacant == frozenset()


def test_the_control_block_records_the_vacant_slots_and_the_last_reload():
    control = ControlBlock(SimpleNamespace(buf=bytearray(ControlBlock.SIZE)))
    control.set_vacant(frozenset({0, 63, 64, 200}))
    assert control.vacant == frozenset({0, 63, 64, 200})
    assert control.last_reload() is None and control.reload_sequence == 0
    control.publish_reload({"ok": False, "version": 3, "errors": ["e" * 5000] * 50})
    result = control.last_reload()
    assert result is not None and result["ok"] is False and result["version"] == 3
    assert result["errors"][-1].startswith("... and ") and control.reload_sequence == 2
    control.publish_reload({"ok": True, "version": 4, "errors": []})
    assert control.last_reload() == {"ok": True, "version": 4, "errors": []}
    assert control.reload_sequence == 4


def test_the_control_block_shows_the_helper_processes_while_they_run(tmp_path):
    checked = Loop(tmp_path, health_check={"path": "/health"})
    try:
        checked.turn()
        checker = checked.master.checker.pid
        assert checker is not None
        [helper] = checked.control.helpers()
        assert (helper.role, helper.pid) == ("health_checker", checker)
        assert abs(helper.started - time.time()) < 60
        checked.exit(checker, 1 << 8)                # it died (exit code 1)
        checked.master._reap()
        assert checked.control.helpers() == []
        checked.clock.advance(1.0)                   # past its back-off: started again
        checked.turn()
        [again] = checked.control.helpers()
        assert again.pid == checked.master.checker.pid != checker
    finally:
        checked.close()
