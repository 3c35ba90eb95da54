"""A response body that is read from a file as it is sent, not held in memory.

Interceptors answer with a ``Reply`` (or replace a response's ``body``); until now a body
was ``bytes``, which is fine for a 401 and wrong for a 2 GB file. ``FileBody`` is the other
kind of body: an open file, an offset and a length. Its length is known up front, so the
response still goes out with a Content-Length, and ``chunks()`` yields it in pieces of
``CHUNK`` bytes read with ``os.pread`` (no shared file position, so one open file could
serve several ranges).

How it reaches the client is ``respond.response_parts``: the response head, then the body
as an iterator of chunks, which a writer sends one after the other with bounded memory.
``respond.encode_response`` (the whole response as one ``bytes``) joins those chunks, for a
caller that wants a single buffer; see respond.py.

Reads from a regular file are not cooperative under gevent (no event loop can wait on a
disk); a 64 KiB read from the page cache takes microseconds, and a cold read is what every
non-AIO static server does too, so chunks are read inline.

The file is closed when the chunks are exhausted, when the body is dropped unsent
(``close``), or at the latest when the object is garbage-collected (``io.FileIO``).
"""
from __future__ import annotations

import io
import os
from collections.abc import Iterator

CHUNK = 65536


class FileBody:
    """``length`` bytes of the open file ``fd`` from ``offset``; takes ownership of ``fd``."""

    __slots__ = ("_file", "offset", "length")

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._file = io.FileIO(fd, "rb", closefd=True)
        self.offset = offset
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def chunks(self) -> Iterator[bytes]:
        """The body in pieces of at most ``CHUNK`` bytes, then the file is closed.

        Raises OSError if the file shrank under us: the head has promised ``length``
        bytes, and a writer must then close the connection rather than send fewer.
        """
        try:
            fd = self._file.fileno()
            position, end = self.offset, self.offset + self.length
            while position < end:
                data = os.pread(fd, min(CHUNK, end - position), position)
                if not data:
                    raise OSError(f"the file shrank while it was sent ({position} of "
                                  f"{end} bytes)")
                position += len(data)
                yield data
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"FileBody(offset={self.offset}, length={self.length})"


Body = bytes | FileBody
"""What an interceptor may give as a response body."""
