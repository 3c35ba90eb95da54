"""Properties of the path normaliser (message/paths.py) on generated paths: idempotent, no
dot segment ever left, never above the root, and the fast path never skips work."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from dakia_prefork.message.paths import DECODE, KEEP, REJECT, is_canonical, normalise

# Segments rich in what the normaliser acts on: dots in every spelling, escapes of
# unreserved and reserved characters, escaped slashes, empty segments, parameters.
_PIECES = ["a", "B", "admin", ".", "..", "...", "", "%2e", "%2E", ".%2e", "%2e%2E", "%61",
           "%7E", "%2f", "%2F", "%5c", "\\", "%25", "%252e", "%c3%a9", ";x", "..;", "a;b",
           "~", "-", "_", "%", "%2", "%zz", "x.y"]
segment = st.lists(st.sampled_from(_PIECES), max_size=3).map("".join)
paths = st.lists(segment, max_size=8).map(lambda parts: "/" + "/".join(parts))
any_text_paths = st.text(alphabet=st.sampled_from(list("/.%2eEfF5cC\\a;")), max_size=24).map(
    lambda text: "/" + text)
modes = st.sampled_from([KEEP, REJECT, DECODE])


@settings(max_examples=1500, deadline=None)
@given(st.one_of(paths, any_text_paths), st.booleans(), modes)
def test_idempotent(path: str, merge: bool, mode: int) -> None:
    once = normalise(path, merge, mode)
    if once is not None:
        assert normalise(once, merge, mode) == once


@settings(max_examples=1500, deadline=None)
@given(st.one_of(paths, any_text_paths), st.booleans(), modes)
def test_no_dot_segment_is_left(path: str, merge: bool, mode: int) -> None:
    result = normalise(path, merge, mode)
    if result is None:
        return
    assert result.startswith("/")
    assert "/../" not in result + "/" and "/./" not in result + "/"
    for segment in result.split("/"):
        assert segment not in (".", "..")
        assert "%2E" not in segment.upper()       # an escaped dot is a dot
    if merge:
        assert "//" not in result
    if mode == DECODE:
        assert "%2F" not in result.upper() and "%5C" not in result.upper()
        assert "\\" not in result


def _climbs(path: str, merge: bool) -> bool:
    """Whether ``path`` (with no escapes of dots, slashes or anything else) goes above
    the root, walked segment by segment as RFC 3986 5.2.4 does."""
    depth = 0
    for segment in path.split("/")[1:]:
        if segment == "..":
            if depth == 0:
                return True
            depth -= 1
        elif segment == "." or (not segment and merge):
            continue
        else:
            depth += 1
    return False


plain_segment = st.sampled_from(["a", "b", ".", "..", "", "x.y", "..."])
plain_paths = st.lists(plain_segment, max_size=10).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=1500, deadline=None)
@given(plain_paths, st.booleans())
def test_never_above_the_root(path: str, merge: bool) -> None:
    assert (normalise(path, merge) is None) == _climbs(path, merge)


@settings(max_examples=1500, deadline=None)
@given(plain_paths, st.booleans())
def test_escaped_dots_climb_like_dots(path: str, merge: bool) -> None:
    escaped = path.replace(".", "%2e")
    assert normalise(escaped, merge) == normalise(path, merge)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(paths, any_text_paths), st.booleans(), modes)
def test_the_fast_path_skips_only_what_has_nothing_to_do(path: str, merge: bool,
                                                          mode: int) -> None:
    if is_canonical(path):
        assert normalise(path, merge, mode) == path
