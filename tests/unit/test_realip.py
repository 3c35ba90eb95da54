"""routing/realip.py: the client address behind trusted proxies (issue 9, part 6)."""
from __future__ import annotations

import pytest

from dakia_prefork.message.heads import RequestHead
from dakia_prefork.routing.realip import RealIp, joined, parse_address, with_forwarded_for

XFF = b"x-forwarded-for"


def _resolve(real_ip: RealIp, peer: str, *values: bytes,
             name: bytes = XFF) -> tuple[str, str]:
    return real_ip.resolve(peer, [(b"host", b"x"), *((name, v) for v in values)])


LB = RealIp(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize("peer,values,client,prefix", [
    # The peer is not trusted: the header, whatever it says, is ignored.
    ("203.0.113.9", [b"1.2.3.4"], "203.0.113.9", ""),
    ("11.0.0.1", [b"1.2.3.4"], "11.0.0.1", ""),
    ("", [b"1.2.3.4"], "", ""),                               # a unix-socket peer
    # A trusted peer: the rightmost untrusted entry is the client.
    ("10.0.0.1", [b"1.2.3.4"], "1.2.3.4", "1.2.3.4"),
    ("10.0.0.1", [b"6.6.6.6, 1.2.3.4"], "1.2.3.4", "1.2.3.4"),        # spoofed left part
    ("10.0.0.1", [b"6.6.6.6, 1.2.3.4, 10.1.1.1"], "1.2.3.4", "1.2.3.4, 10.1.1.1"),
    ("10.0.0.1", [b"6.6.6.6", b"1.2.3.4,10.1.1.1"], "1.2.3.4", "1.2.3.4, 10.1.1.1"),
    ("10.0.0.1", [b"10.9.9.9, 10.1.1.1"], "10.9.9.9", "10.9.9.9, 10.1.1.1"),  # all trusted
    ("10.0.0.1", [b"1.2.3.4, garbage, 10.1.1.1"], "10.1.1.1", "10.1.1.1"),  # walk stops
    ("10.0.0.1", [b"garbage"], "10.0.0.1", ""),
    ("10.0.0.1", [b""], "10.0.0.1", ""),
    ("10.0.0.1", [], "10.0.0.1", ""),
    # IPv6 peers and entries, bracketed and with ports, mapped IPv4.
    ("fd00::1", [b"2001:db8::7"], "2001:db8::7", "2001:db8::7"),
    ("fd00::1", [b"[2001:db8::7]:4711"], "2001:db8::7", "2001:db8::7"),
    ("fd00::1", [b"1.2.3.4:4711"], "1.2.3.4", "1.2.3.4"),
    ("::ffff:10.0.0.1", [b"::ffff:1.2.3.4"], "1.2.3.4", "1.2.3.4"),
    ("fe80::1", [b"1.2.3.4"], "fe80::1", ""),                 # v6 outside fd00::/8
])
def test_x_forwarded_for(peer: str, values: list[bytes], client: str, prefix: str) -> None:
    assert _resolve(LB, peer, *values) == (client, prefix)


def test_x_real_ip() -> None:
    real_ip = RealIp(["127.0.0.1"], "x-real-ip")
    name = b"x-real-ip"
    assert _resolve(real_ip, "127.0.0.1", b"1.2.3.4", name=name) == ("1.2.3.4", "1.2.3.4")
    assert _resolve(real_ip, "127.0.0.1", b" 2001:DB8::1 ", name=name) == ("2001:db8::1",
                                                                           "2001:db8::1")
    assert _resolve(real_ip, "127.0.0.2", b"1.2.3.4", name=name) == ("127.0.0.2", "")
    assert _resolve(real_ip, "127.0.0.1", b"1.2.3.4, 5.6.7.8", name=name) == ("127.0.0.1", "")
    assert _resolve(real_ip, "127.0.0.1", b"1.2.3.4", b"5.6.7.8", name=name) == (
        "127.0.0.1", "")
    assert _resolve(real_ip, "127.0.0.1", b"nope", name=name) == ("127.0.0.1", "")
    # X-Forwarded-For means nothing to a gateway that reads X-Real-IP.
    assert _resolve(real_ip, "127.0.0.1", b"1.2.3.4") == ("127.0.0.1", "")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RealIp(["10.0.0.1/8"])
    with pytest.raises(ValueError):
        RealIp(["nope"])
    with pytest.raises(ValueError):
        RealIp(["10.0.0.0/8"], "forwarded")


@pytest.mark.parametrize("text,expected", [
    ("1.2.3.4", "1.2.3.4"), (" 1.2.3.4 ", "1.2.3.4"), ("1.2.3.4:80", "1.2.3.4"),
    ("[::1]", "::1"), ("[::1]:80", "::1"), ("::1", "::1"), ("::ffff:1.2.3.4", "1.2.3.4"),
    ("[::1", None), ("[::1]x", None), ("1.2.3", None), ("unknown", None), ("", None),
    ("1.2.3.4.5", None), ("_hidden", None),
])
def test_parse_address(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected


def test_the_forwarded_head_replaces_every_x_forwarded_for_line() -> None:
    head = RequestHead(b"POST", b"/x", b"1.1", [(b"host", b"x"), (XFF, b"6.6.6.6"),
                                                (b"a", b"b"), (XFF, b"1.2.3.4")],
                       5, False, True, False)
    new = with_forwarded_for(head, "1.2.3.4")
    assert new.headers == [(b"host", b"x"), (b"a", b"b"), (XFF, b"1.2.3.4")]
    assert (new.method, new.target, new.content_length, new.keep_alive) == (
        b"POST", b"/x", 5, True)
    assert with_forwarded_for(head, "").headers == [(b"host", b"x"), (b"a", b"b")]
    assert head.headers[1] == (XFF, b"6.6.6.6")              # the original is untouched


def test_joined() -> None:
    assert joined("1.2.3.4", "10.0.0.1") == "1.2.3.4, 10.0.0.1"
    assert joined("", "10.0.0.1") == "10.0.0.1"
    assert joined("1.2.3.4", "") == "1.2.3.4"
    assert joined("", "") == ""


def test_the_forwarded_head_sets_x_real_ip_when_that_is_the_header_read() -> None:
    head = RequestHead(b"GET", b"/", b"1.1", [(b"x-real-ip", b"6.6.6.6"), (b"host", b"x"),
                                              (b"x-real-ip", b"7.7.7.7")],
                       None, False, True, False)
    assert with_forwarded_for(head, "1.2.3.4", "1.2.3.4").headers == [
        (b"host", b"x"), (XFF, b"1.2.3.4"), (b"x-real-ip", b"1.2.3.4")]
    # A unix-socket client has no address: no X-Real-IP at all, rather than a forged one.
    assert with_forwarded_for(head, "", "").headers == [(b"host", b"x")]
    # A gateway reading X-Forwarded-For leaves X-Real-IP alone.
    assert with_forwarded_for(head, "").headers == [
        (b"x-real-ip", b"6.6.6.6"), (b"host", b"x"), (b"x-real-ip", b"7.7.7.7")]
