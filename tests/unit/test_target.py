"""Request targets (message/target.py, http/engines/policy.py): absolute-form becomes
origin-form with its authority as the Host, on both engines; the other forms are decided."""
from __future__ import annotations

import pytest

from dakia_prefork.http.engines import select_engine
from dakia_prefork.message.heads import ProtocolError, RequestHead
from dakia_prefork.message.target import origin_form, split_absolute, with_host
from inmemory import ENGINES


def parse(engine: str, raw: bytes) -> RequestHead:
    parser = select_engine(engine).request_parser(65536)
    parser.feed(raw)
    event = parser.next_event()
    assert isinstance(event, RequestHead), event
    return event


def refusal(engine: str, raw: bytes) -> int:
    parser = select_engine(engine).request_parser(65536)
    parser.feed(raw)
    with pytest.raises(ProtocolError) as caught:
        parser.next_event()
    return caught.value.status


@pytest.mark.parametrize(("target", "authority", "rest"), [
    (b"http://example.com/a?b", b"example.com", b"/a?b"),
    (b"http://example.com:8080", b"example.com:8080", b""),
    (b"https://[::1]:8443/x", b"[::1]:8443", b"/x"),
    (b"HTTP://Example.com?q=1", b"Example.com", b"?q=1"),
])
def test_split_absolute(target: bytes, authority: bytes, rest: bytes) -> None:
    assert split_absolute(target) == (authority, rest)


@pytest.mark.parametrize("target", [
    b"http://user@example.com/", b"http://a:b@example.com/", b"http://example.com/#frag",
    b"http://@example.com/",
])
def test_split_absolute_refuses(target: bytes) -> None:
    assert split_absolute(target) is None


def test_origin_form() -> None:
    assert origin_form(b"", b"GET") == b"/"
    assert origin_form(b"", b"OPTIONS") == b"*"       # RFC 9112 3.2.4
    assert origin_form(b"?x=1", b"GET") == b"/?x=1"
    assert origin_form(b"/a/b?c", b"GET") == b"/a/b?c"


def test_with_host_replaces_every_host() -> None:
    headers = [(b"accept", b"*/*"), (b"host", b"served.example")]
    assert with_host(headers, b"other.example") == [(b"host", b"other.example"),
                                                    (b"accept", b"*/*")]
    assert with_host([], b"a") == [(b"host", b"a")]


@pytest.mark.parametrize("engine", ENGINES)
def test_absolute_form_is_origin_form_with_its_authority_as_host(engine: str) -> None:
    head = parse(engine, b"GET http://unserved.example:81/p?q=1 HTTP/1.1\r\n"
                         b"Host: served.example\r\nAccept: */*\r\n\r\n")
    assert head.target == b"/p?q=1"
    assert [v for n, v in head.headers if n == b"host"] == [b"unserved.example:81"]
    assert (b"accept", b"*/*") in head.headers


@pytest.mark.parametrize("engine", ENGINES)
def test_absolute_form_gives_an_http10_request_its_host(engine: str) -> None:
    head = parse(engine, b"GET http://a.example HTTP/1.0\r\n\r\n")
    assert head.target == b"/"
    assert head.headers == [(b"host", b"a.example")]


@pytest.mark.parametrize("engine", ENGINES)
def test_options_absolute_form_without_path_is_asterisk(engine: str) -> None:
    head = parse(engine, b"OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n")
    assert head.target == b"*"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("raw", "status"), [
    (b"GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    (b"GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    (b"GET a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
    (b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 405),
])
def test_other_forms_are_refused(engine: str, raw: bytes, status: int) -> None:
    assert refusal(engine, raw) == status


@pytest.mark.parametrize("engine", ENGINES)
def test_origin_and_asterisk_forms_pass_unchanged(engine: str) -> None:
    head = parse(engine, b"OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n")
    assert head.target == b"*"
    head = parse(engine, b"GET /x?y HTTP/1.1\r\nHost: a.example\r\n\r\n")
    assert head.target == b"/x?y" and head.headers == [(b"host", b"a.example")]
