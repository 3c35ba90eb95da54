"""The control channel's framing between the admin process and the master."""
from __future__ import annotations

import pytest

from dakia_prefork.admin.channel import (MAX_ERRORS, MAX_MESSAGE_BYTES, ChannelError,
                                         LineReader, bounded_errors, encode)


def test_messages_split_anywhere_come_out_whole_and_in_order():
    data = encode({"id": 1, "op": "check", "path": "/a"}) + encode({"id": 2, "op": "reload"})
    for cut in range(len(data) + 1):
        reader = LineReader()
        got = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert got == [{"id": 1, "op": "check", "path": "/a"}, {"id": 2, "op": "reload"}]


def test_an_unending_line_is_refused_at_the_limit():
    reader = LineReader()
    reader.feed(b"{" + b" " * (MAX_MESSAGE_BYTES - 10))
    with pytest.raises(ChannelError):
        reader.feed(b" " * 20)


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b"\"text\"\n"])
def test_a_line_that_is_not_an_object_is_refused(line):
    with pytest.raises(ChannelError):
        LineReader().feed(line)


def test_a_message_over_the_limit_is_not_sent():
    with pytest.raises(ChannelError):
        encode({"errors": ["x" * MAX_MESSAGE_BYTES]})


def test_error_lists_are_bounded():
    errors = [f"e{i}: " + "y" * 5000 for i in range(MAX_ERRORS + 7)]
    shown = bounded_errors(errors)
    assert len(shown) == MAX_ERRORS + 1 and shown[-1] == "... and 7 more"
    assert all(len(e) <= 1000 for e in shown)
    assert len(encode({"errors": shown})) < MAX_MESSAGE_BYTES
