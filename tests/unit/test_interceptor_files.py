"""The pieces of use_file without a gateway: path segments, byte ranges, file bodies."""
from __future__ import annotations

import os

import pytest

from dakia_prefork.interceptors.body import CHUNK, FileBody
from dakia_prefork.interceptors.fileroot import BadPath, HiddenPath, Root, segments
from dakia_prefork.interceptors.fileserve import parse_range
from dakia_prefork.interceptors.respond import encode_response, response_parts


@pytest.mark.parametrize("path, parts", [
    ("/", []), ("/a/b.txt", ["a", "b.txt"]), ("//a/./b/", ["a", "b"]),
    ("/caf%C3%A9", ["café"]), ("/%252e%252e", ["%2e%2e"]), ("/a%2fb", ["a", "b"]),
])
def test_segments(path: str, parts: list[str]) -> None:
    assert segments(path) == parts


@pytest.mark.parametrize("path", [
    "/..", "/a/../b", "/%2e%2e/x", "/%2E%2e/x", "/..%2f", "/a\\b", "/a%5cb", "/a%00",
    "/a%0d%0a", "/%ff", "/%c0%ae%c0%ae/",
])
def test_segments_refuse_traversal_and_odd_bytes(path: str) -> None:
    with pytest.raises(BadPath):
        segments(path)


def test_hidden_names() -> None:
    with pytest.raises(HiddenPath):
        segments("/.git/config")
    assert segments("/.well-known/x", hidden=True) == [".well-known", "x"]


@pytest.mark.parametrize("value, size, expected", [
    ("bytes=0-0", 10, (0, 0)), ("bytes=2-", 10, (2, 9)), ("bytes=-4", 10, (6, 9)),
    ("bytes=-40", 10, (0, 9)), ("bytes=5-400", 10, (5, 9)), ("BYTES = 1-2", 10, (1, 2)),
    ("bytes=10-", 10, (-1, -1)), ("bytes=-0", 10, (-1, -1)), ("bytes=0-", 0, (-1, -1)),
    ("bytes=3-2", 10, None), ("bytes=1-2,4-5", 10, None), ("bytes=x-", 10, None),
    ("bytes=١-2", 10, None), ("lines=1-2", 10, None), ("bytes 1-2", 10, None),
])
def test_parse_range(value: str, size: int, expected) -> None:
    assert parse_range(value, size) == expected


def _file_body(tmp_path, data: bytes, offset: int = 0, length: int | None = None) -> FileBody:
    path = tmp_path / "f"
    path.write_bytes(data)
    return FileBody(os.open(path, os.O_RDONLY), offset,
                    len(data) - offset if length is None else length)


def test_file_body_streams_in_chunks_and_closes(tmp_path) -> None:
    data = os.urandom(CHUNK * 2 + 5)
    body = _file_body(tmp_path, data, 3)
    chunks = list(body.chunks())
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, 2] and b"".join(chunks) == data[3:]
    assert body._file.closed


def test_file_body_that_shrank_raises(tmp_path) -> None:
    body = _file_body(tmp_path, b"x" * 10, 0, 20)
    with pytest.raises(OSError, match="shrank"):
        list(body.chunks())
    assert body._file.closed


def test_response_parts_stream_and_close_unsent_bodies(tmp_path) -> None:
    body = _file_body(tmp_path, b"0123456789")
    head, chunks = response_parts(200, b"", [], body, head_only=False, trailing=[])
    assert b"content-length: 10" in head and b"".join(chunks) == b"0123456789"
    for status, head_only in ((200, True), (304, False)):
        body = _file_body(tmp_path, b"0123456789")
        head, chunks = response_parts(status, b"", [], body, head_only=head_only, trailing=[])
        assert list(chunks) == [] and body._file.closed
    body = _file_body(tmp_path, b"abc")
    assert encode_response(200, b"", [], body, head_only=False, trailing=[]).endswith(b"\r\n\r\nabc")


def test_root_refuses_what_resolves_outside(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "in.txt").write_text("in")
    (tmp_path / "out.txt").write_text("out")
    os.symlink(tmp_path / "out.txt", root / "out")
    os.symlink("in.txt", root / "ok")
    served = Root(str(root))
    for name, expected in (("in.txt", "in"), ("ok", "in"), ("out", None), ("none", None)):
        opened = served.open([name], None, False)
        if expected is None:
            assert opened is None, name
        else:
            assert opened is not None and os.pread(opened.fd, 10, 0).decode() == expected
            os.close(opened.fd)


def test_atomic_files_are_whole_or_absent_and_stay_inside(tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "planted")
    served = Root(str(root))
    writer = served.writer(["a", "b", "c.txt"])
    writer.write(b"part")
    assert not (root / "a" / "b" / "c.txt").exists()          # not visible until committed
    writer.write(b"s")
    writer.commit()
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"parts"
    writer = served.writer(["a", "d.txt"])
    writer.write(b"x")
    writer.abort()
    assert sorted(p.name for p in (root / "a").iterdir()) == ["b"]    # no temporary left
    with pytest.raises(OSError):
        served.writer(["planted", "x.txt"])                    # a symlink is not followed
    assert list((tmp_path / "elsewhere").iterdir()) == []
