"""The master's end of the config follower's channel (master/follower_link.py), on a real
socketpair without forking: what it takes, what it drops, what it refuses."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from dakia_prefork.master.follower_link import FollowerLink


def _never(channel: socket.socket) -> Any:
    raise AssertionError("no fork here")


@pytest.fixture
def link() -> Iterator[tuple[FollowerLink, socket.socket]]:
    made = FollowerLink(_never)
    mine, theirs = socket.socketpair()
    mine.setblocking(False)
    made._channel = mine
    yield made, theirs
    made.close_channel()
    theirs.close()


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def test_only_the_newest_document_waits_and_the_older_file_is_removed(
        link: tuple[FollowerLink, socket.socket], tmp_path: Path) -> None:
    made, follower = link
    older, newer = tmp_path / "r5.json", tmp_path / "r6.json"
    older.write_text("{}")
    newer.write_text("{}")
    send(follower, {"op": "document", "revision": 5, "path": str(older)})
    send(follower, {"op": "document", "revision": 6, "path": str(newer)})
    made.read()
    assert made.take_pending() == {"op": "document", "revision": 6, "path": str(newer)}
    assert not older.exists() and newer.exists()
    assert made.take_pending() is None
    made.read()                                   # nothing more: never blocks
    assert made.pending is None


def test_a_document_refused_by_the_follower_is_taken_without_a_file(
        link: tuple[FollowerLink, socket.socket]) -> None:
    made, follower = link
    send(follower, {"op": "document", "revision": 9, "error": "too big"})
    made.read()
    assert made.pending == {"op": "document", "revision": 9, "error": "too big"}


@pytest.mark.parametrize("message", [{"op": "other", "revision": 1},
                                     {"op": "document", "revision": "1"},
                                     {"op": "document", "revision": 1, "path": 7}])
def test_unexpected_messages_are_ignored(link: tuple[FollowerLink, socket.socket],
                                         message: dict[str, Any]) -> None:
    made, follower = link
    send(follower, message)
    made.read()
    assert made.pending is None and made.fd is not None


def test_a_line_that_is_not_json_closes_the_channel(
        link: tuple[FollowerLink, socket.socket]) -> None:
    made, follower = link
    follower.sendall(b"not json\n")
    made.read()
    assert made.fd is None


def test_the_follower_going_away_closes_the_channel_after_its_last_words(
        link: tuple[FollowerLink, socket.socket], tmp_path: Path) -> None:
    made, follower = link
    send(follower, {"op": "document", "revision": 3, "path": str(tmp_path / "x")})
    follower.close()
    made.read()
    assert made.fd is None and made.pending is not None and made.pending["revision"] == 3
