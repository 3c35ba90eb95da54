"""The config loader child (master/reloader.py): a real fork, a scripted ``load``.

Each test forks a loader whose work is a function of the test's, and drives ``poll`` the way
the master's loop does (the reaping included), so every way a load can end is checked in
milliseconds: a verdict, errors, a crash without a verdict, a timeout, a memory limit.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import time
from typing import Callable

import pytest

from dakia_prefork.config.model import ConfigLoadSettings
from dakia_prefork.master.reloader import Loaded, ReloadJob

LIMITS = ConfigLoadSettings(timeout=5.0, max_memory_bytes=2 * 1024 ** 3)


def run(load: Callable[[str], Loaded], limits: ConfigLoadSettings = LIMITS) -> Loaded:
    job = ReloadJob.start("cfg.yaml", limits, time.monotonic(), lambda: None, load)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if job.status is None:
                pid, status = os.waitpid(job.pid, os.WNOHANG)
                if pid:
                    job.status = status
            verdict = job.poll(time.monotonic())
            if verdict is not None:
                return verdict
            time.sleep(0.005)       # the master's loop waits in select; this is its tick
        raise AssertionError("no verdict in 30 s")
    finally:
        job.kill()
        if job.status is None:
            os.waitpid(job.pid, 0)


def test_a_valid_config_comes_back_whole():
    config = {"workers": 2, "gateways": [{"name": "g", "nested": {"list": [1, 2.5, None]}}]}
    verdict = run(lambda path: Loaded(config=config, notices=["a notice"]))
    assert verdict.config == config and verdict.notices == ["a notice"]
    assert verdict.errors == []


def test_errors_come_back_as_they_are():
    verdict = run(lambda path: Loaded(errors=[f"{path}: bad", "gateways[0]: worse"]))
    assert verdict.config is None and verdict.errors == ["cfg.yaml: bad", "gateways[0]: worse"]


def test_an_exception_in_the_load_is_a_verdict():
    def load(path: str) -> Loaded:
        raise RecursionError("maximum recursion depth exceeded " + "x" * 10_000)
    [error] = run(load).errors
    assert error.startswith("cfg.yaml: cannot be loaded: RecursionError: maximum recursion")
    assert len(error) < 400


def test_a_loader_that_dies_without_a_verdict_is_reported():
    def load(path: str) -> Loaded:
        os._exit(7)
    assert run(load).errors == ["cfg.yaml: the config loader exited with code 7 without a "
                                "verdict"]


def test_a_loader_killed_by_a_signal_is_reported():
    def load(path: str) -> Loaded:
        faulthandler.disable()          # pytest's: it would print the child's stack
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(5)
        return Loaded()
    [error] = run(load).errors
    assert "was killed by SIGSEGV (out of memory? config_load.max_memory_bytes" in error


def test_a_load_past_the_timeout_is_killed():
    def load(path: str) -> Loaded:
        time.sleep(30)
        return Loaded()
    started = time.monotonic()
    verdict = run(load, ConfigLoadSettings(timeout=0.3, max_memory_bytes=LIMITS.max_memory_bytes))
    assert 0.3 <= time.monotonic() - started < 5
    assert verdict.errors == ["cfg.yaml: loading took longer than config_load.timeout (0.3s); "
                              "the loader was killed"]


def test_a_load_past_the_memory_limit_is_refused():
    def load(path: str) -> Loaded:
        hog = [bytearray(16 * 1024 * 1024) for _ in range(64)]     # 1 GiB
        return Loaded(errors=[str(len(hog))])
    limits = ConfigLoadSettings(timeout=10, max_memory_bytes=256 * 1024 * 1024 + _vsize())
    assert run(load, limits).errors == [
        f"cfg.yaml: loading it needs more memory than config_load.max_memory_bytes "
        f"({limits.max_memory_bytes})"]


def _vsize() -> int:
    """This process's address space now: the child starts with as much."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("size", [1, 3 * 1024 * 1024])
def test_big_verdicts_arrive_through_the_non_blocking_pipe(size):
    verdict = run(lambda path: Loaded(config={"blob": "x" * size}))
    assert verdict.config == {"blob": "x" * size}
