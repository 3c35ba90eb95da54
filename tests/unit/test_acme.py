"""ACME without a CA: the config checks, the renewal schedule, the storage on disk."""
from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from dakia_prefork.acme.renewer import MAX_RETRY, RECHECK, Renewer
from dakia_prefork.acme.storage import (AcmeStorage, challenge_answer, valid_token,
                                        write_private)
from dakia_prefork.config import validate
from dakia_prefork.config.model import AcmeSettings, Settings

from test_config import errors_of, with_gateway

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def acme(**keys: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"directory": "https://acme.example/dir",
                             "names": ["api.example.com"], "storage": "acme"}
    block.update(keys)
    return block


# -- config ---------------------------------------------------------------------------------
def test_defaults_and_paths(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    config = validate(with_gateway(acme=acme(names=["API.Example.com."], ca_file="ca.pem")),
                      base_dir=str(tmp_path))[0]
    block = config["gateways"][0]["acme"]
    assert block == {"directory": "https://acme.example/dir", "email": None,
                     "names": ["api.example.com"], "storage": str(tmp_path / "acme"),
                     "renew_before_days": 30, "ca_file": str(tmp_path / "ca.pem"),
                     "retry_seconds": 60.0}
    name = config["gateways"][0]["name"]
    assert Settings.from_config(config).acme == ((name, AcmeSettings(
        "https://acme.example/dir", None, ("api.example.com",), str(tmp_path / "acme"), 30,
        str(tmp_path / "ca.pem"), 60.0)),)


@pytest.mark.parametrize("block, message", [
    (acme(directory="http://acme.example/dir"),
     "gateways[0].acme.directory: expected an https:// URL (ACME runs over HTTPS), got "
     "'http://acme.example/dir'"),
    (acme(names=["*.example.com"]),
     "gateways[0].acme.names[0]: '*.example.com': a wildcard name cannot be proved by "
     "HTTP-01, the challenge the gateway answers: list each name"),
    (acme(names=["10.0.0.1"]), "gateways[0].acme.names[0]: '10.0.0.1': an IP address: "
                               "ACME certificates here are for DNS names"),
    (acme(names=["localhost"]), "gateways[0].acme.names[0]: 'localhost': not a DNS host "
                                "name (letters, digits and '-' in dot-separated labels)"),
    (acme(names=["a.example", "A.example"]),
     "gateways[0].acme.names[1]: 'A.example' is listed twice"),
    (acme(ca_file="/nonexistent/ca.pem"),
     "gateways[0].acme.ca_file: no such file: /nonexistent/ca.pem"),
    (acme(names=[]), "gateways[0].acme.names: [] should be non-empty"),
    (acme(renew_before_days=0), "gateways[0].acme.renew_before_days: 0 is less than the "
                                "minimum of 1"),
])
def test_bad_blocks_are_refused_with_their_place(block: dict[str, Any], message: str) -> None:
    errors = errors_of(with_gateway(acme=block))
    assert any(e.startswith(message) for e in errors), errors


# -- the schedule -----------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = NOW

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += datetime.timedelta(seconds=seconds)


def settings(**keys: Any) -> AcmeSettings:
    values: dict[str, Any] = {"directory": "https://acme.example/dir", "email": None,
                              "names": ("a.example",), "storage": "/tmp/x",
                              "renew_before_days": 30, "ca_file": None,
                              "retry_seconds": 60.0}
    values.update(keys)
    return AcmeSettings(**values)


class FakeCA:
    """Issues certificates valid for ``lifetime`` from the clock's now, or fails."""

    def __init__(self, clock: Clock, lifetime: datetime.timedelta) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.failing = False
        self.orders = 0
        self.held: tuple[datetime.datetime, datetime.datetime] | None = None

    def obtain(self, gateway: str, wanted: AcmeSettings) -> str:
        self.orders += 1
        if self.failing:
            raise RuntimeError("connection refused")
        self.held = (self.clock.wall, self.clock.wall + self.lifetime)
        return "/tmp/x/certs/a.example.pem"

    def validity(self, wanted: AcmeSettings) -> tuple[datetime.datetime,
                                                     datetime.datetime] | None:
        return self.held


def renewer(ca: FakeCA, clock: Clock) -> Renewer:
    return Renewer(ca.obtain, ca.validity, lambda: clock.mono, lambda: clock.wall)


def test_obtains_at_once_then_renews_before_expiry() -> None:
    clock = Clock()
    ca = FakeCA(clock, datetime.timedelta(days=90))
    schedule = renewer(ca, clock)
    schedule.apply((("g", settings()),))
    assert schedule.step() == 0.0 and ca.orders == 1      # none yet: ordered, looked again
    wait = schedule.step()
    assert ca.orders == 1 and wait == RECHECK             # valid: looked at twice a day
    # Sixty days on (30 before the 90-day expiry) it is renewed.
    for _ in range(int(60 * 86400 / RECHECK) - 1):
        clock.advance(RECHECK)
        schedule.step()
    assert ca.orders == 1
    clock.advance(RECHECK)
    schedule.step()
    assert ca.orders == 2


def test_failures_back_off_doubling_and_keep_the_certificate() -> None:
    clock = Clock()
    ca = FakeCA(clock, datetime.timedelta(days=90))
    schedule = renewer(ca, clock)
    ca.failing = True
    schedule.apply((("g", settings(retry_seconds=10)),))
    waits = []
    for _ in range(12):
        waits.append(schedule.step())
        clock.advance(waits[-1])
    assert waits[:5] == [10, 20, 40, 80, 160]
    assert max(waits) == MAX_RETRY and ca.orders == 12 and ca.held is None
    ca.failing = False
    schedule.step()
    assert ca.held is not None
    assert schedule.entries["g"].failures == 0


def test_a_short_lived_certificate_is_renewed_at_two_thirds_not_in_a_loop() -> None:
    clock = Clock()
    ca = FakeCA(clock, datetime.timedelta(days=6))      # shorter than renew_before_days
    schedule = renewer(ca, clock)
    schedule.apply((("g", settings()),))
    schedule.step()
    assert ca.orders == 1
    # Looked at twice a day until four days (of six) are over, then renewed once.
    for _ in range(int(4 * 86400 / RECHECK)):
        assert schedule.step() == RECHECK
        assert ca.orders == 1
        clock.advance(RECHECK)
    schedule.step()
    assert ca.orders == 2


def test_a_reload_keeps_the_schedule_of_an_unchanged_block_and_restarts_a_changed_one() -> None:
    clock = Clock()
    ca = FakeCA(clock, datetime.timedelta(days=90))
    schedule = renewer(ca, clock)
    ca.failing = True
    schedule.apply((("g", settings()),))
    schedule.step()
    schedule.apply((("g", settings()),))
    assert schedule.entries["g"].failures == 1              # same block: same state
    schedule.apply((("g", settings(names=("b.example",))),))
    assert schedule.entries["g"].failures == 0 and schedule.entries["g"].due == 0.0
    schedule.apply(())
    assert schedule.entries == {}


# -- storage --------------------------------------------------------------------------------
@pytest.mark.parametrize("token, valid", [
    (b"abcDEF012-_", True), (b"a" * 256, True), (b"", False), (b"a" * 257, False),
    (b"../etc", False), (b"a/b", False), (b"a.b", False), (b"a%2Fb", False),
    (b"\x00", False), ("é".encode(), False),
])
def test_tokens_name_one_file_and_nothing_else(token: bytes, valid: bool) -> None:
    assert valid_token(token) is valid


def test_challenge_answers_are_read_bounded(tmp_path: Path) -> None:
    store = AcmeStorage(str(tmp_path / "acme"))
    store.prepare()
    store.write_challenge("tok", "tok.print")
    assert challenge_answer(store.challenges, b"tok") == b"tok.print"
    assert challenge_answer(store.challenges, b"missing") is None
    (tmp_path / "acme" / "challenges" / "big").write_bytes(b"x" * 5000)
    answer = challenge_answer(store.challenges, b"big")
    assert answer is not None and len(answer) == 1024
    with pytest.raises(ValueError, match="unusable token"):
        store.write_challenge("../x", "y")
    store.drop_pending()
    assert os.listdir(store.challenges) == []


def test_storage_is_private(tmp_path: Path) -> None:
    root = tmp_path / "acme"
    root.mkdir(mode=0o755)
    store = AcmeStorage(str(root))
    store.prepare()
    for directory in (root, root / "certs", root / "challenges"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    path = store.write_bundle(("a.example",), b"KEY\n\n", b"CHAIN\n")
    assert Path(path).read_bytes() == b"KEY\nCHAIN\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    write_private(path, b"again")
    assert Path(path).read_bytes() == b"again"
    assert [n for n in os.listdir(root / "certs") if n.startswith(".tmp-")] == []
