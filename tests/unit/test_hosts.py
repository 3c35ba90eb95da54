"""Host header normalisation and downstream host matching (routing/hosts.py)."""
from __future__ import annotations

import pytest

from dakia_prefork.routing.hosts import (
    HostMatcher,
    HostPatternError,
    normalise_host,
    normalise_pattern,
    split_host_port,
)


@pytest.mark.parametrize(("value", "expected"), [
    ("example.com", "example.com"),
    ("Example.COM", "example.com"),
    ("example.com:8080", "example.com"),
    ("EXAMPLE.com:80", "example.com"),
    ("example.com.", "example.com"),
    ("example.com.:443", "example.com"),
    ("localhost", "localhost"),
    ("my_host-1.internal", "my_host-1.internal"),
    ("127.0.0.1", "127.0.0.1"),
    ("127.0.0.1:8080", "127.0.0.1"),
    ("[::1]", "::1"),
    ("[::1]:8080", "::1"),
    ("[0:0:0:0:0:0:0:1]:80", "::1"),
    ("[2001:DB8::1]", "2001:db8::1"),
    ("::1", "::1"),
    ("example.com:0", "example.com"),
    ("example.com:65535", "example.com"),
    # RFC 3986: an empty port is legal (the scheme's default)...
    ("example.com:", "example.com"),
    ("[::1]:", "::1"),
    # ...and so are sub-delims in a reg-name, "*" among them; escapes of unreserved
    # characters are the characters themselves.
    ("*.example.com", "*.example.com"),
    ("a!$&'()*+,;=~b.example", "a!$&'()*+,;=~b.example"),
    ("Exa%4Dple.com", "example.com"),
    ("a%2fb.example", "a%2Fb.example"),
    ("x" * 63 + ".example", "x" * 63 + ".example"),
    (".".join(["a" * 63] * 3) + "." + "b" * 61, ".".join(["a" * 63] * 3) + "." + "b" * 61),
])
def test_normalise_host_accepts(value: str, expected: str) -> None:
    assert normalise_host(value) == expected


@pytest.mark.parametrize("value", [
    "",
    ":80",
    "example.com:65536",
    "example.com:99999",
    "example.com:-1",
    "example.com:8o",
    "example.com:123456",
    "example.com:80:80x",
    "a b",
    "a/b",
    "user@example.com",
    "a..b",
    ".example.com",
    ".",
    "[::1",
    "::1]",
    "[::1]x",
    "[::1]:99999",
    # A name DNS could not hold: a label over 63 octets, over 253 in all, an empty label.
    "x" * 64 + ".example",
    ".".join(["a" * 63] * 3) + "." + "b" * 62,
    "a.b..",
    # Not an escape.
    "a%zz.example",
    "a%2",
    "a?b",
    "a#b",
    "[127.0.0.1]",
    "[example.com]",
    "[]",
    "1:2:3",
    "exämple.com",
    "\u212aexample.com",
])
def test_normalise_host_rejects(value: str) -> None:
    assert normalise_host(value) is None


def test_split_host_port_returns_the_port() -> None:
    assert split_host_port("Example.com:8080") == ("example.com", 8080)
    assert split_host_port("[::1]:9901") == ("::1", 9901)
    assert split_host_port("::") == ("::", None)
    assert split_host_port("10.0.0.1") == ("10.0.0.1", None)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("127.0.0.1", "127.0.0.1"),
    ("*", "*"),
    ("*.Example.com", "*.example.com"),
    ("~^API[0-9]+\\.example\\.com$", "~^API[0-9]+\\.example\\.com$"),
])
def test_normalise_pattern(pattern: str, expected: str) -> None:
    assert normalise_pattern(pattern) == expected


@pytest.mark.parametrize(("pattern", "message"), [
    ("~((", "invalid regex: missing ): (("),
    ("~(a)\\1", "invalid regex: invalid escape sequence: \\1: RE2 does not support this"),
    ("~(?=a)a", "invalid regex: invalid perl operator: (?=: RE2 does not support this"),
    ("~", "empty regex after '~'"),
    ("a.*.com", "'*' is only allowed as the whole leftmost label"),
    ("*example.com", "'*' is only allowed as the whole leftmost label"),
    ("*.", "'*.' must be followed by a host name"),
    ("*.*.example.com", "'*.' must be followed by a host name"),
    ("*.example.com:80", "'*.' must be followed by a host name"),
    ("example.com:80", "a host pattern has no port"),
    ("bad host", "is not a host name or an IP address"),
])
def test_normalise_pattern_rejects(pattern: str, message: str) -> None:
    with pytest.raises(HostPatternError) as info:
        normalise_pattern(pattern)
    assert message in str(info.value)


def test_empty_pattern_list_matches_everything() -> None:
    matcher = HostMatcher([])
    assert matcher.match("anything.example") == "*"
    assert matcher.match("") == "*"


def test_exact_match_and_miss() -> None:
    matcher = HostMatcher(["example.com", "Example.NET", "[::1]", "127.0.0.1"])
    assert matcher.match("example.com") == "example.com"
    assert matcher.match("example.net") == "Example.NET"
    assert matcher.match("::1") == "[::1]"
    assert matcher.match("127.0.0.1") == "127.0.0.1"
    assert matcher.match("www.example.com") is None
    assert matcher.match("example.org") is None


def test_wildcard_matches_subdomains_at_any_depth_but_not_the_bare_domain() -> None:
    matcher = HostMatcher(["*.example.com"])
    assert matcher.match("x.example.com") == "*.example.com"
    assert matcher.match("x.y.example.com") == "*.example.com"
    assert matcher.match("example.com") is None
    assert matcher.match("badexample.com") is None
    assert matcher.match("example.com.evil") is None


def test_most_specific_wildcard_wins_whatever_the_order() -> None:
    matcher = HostMatcher(["*.example.com", "*.a.b.example.com", "*.b.example.com"])
    assert matcher.match("x.a.b.example.com") == "*.a.b.example.com"
    assert matcher.match("a.b.example.com") == "*.b.example.com"
    assert matcher.match("x.b.example.com") == "*.b.example.com"
    assert matcher.match("b.example.com") == "*.example.com"


def test_precedence_exact_then_wildcard_then_any_then_regex() -> None:
    matcher = HostMatcher(["~.*", "*", "*.example.com", "www.example.com"])
    assert matcher.match("www.example.com") == "www.example.com"
    assert matcher.match("api.example.com") == "*.example.com"
    assert matcher.match("other.org") == "*"


def test_regexes_in_config_order_after_wildcards() -> None:
    matcher = HostMatcher(["~api[0-9]+\\.example\\.com", "~api.*", "*.example.com"])
    assert matcher.match("api1.example.com") == "*.example.com"
    matcher = HostMatcher(["~api[0-9]+\\.example\\.com", "~api.*"])
    assert matcher.match("api1.example.com") == "~api[0-9]+\\.example\\.com"
    assert matcher.match("apix.example.com") == "~api.*"
    assert matcher.match("www.example.com") is None


def test_regex_is_anchored_fullmatch_on_the_lower_cased_host() -> None:
    matcher = HostMatcher(["~api\\.example\\.com"])
    assert matcher.match("api.example.com") == "~api\\.example\\.com"
    assert matcher.match("API.Example.com") == "~api\\.example\\.com"
    assert matcher.match("xapi.example.com") is None
    assert matcher.match("api.example.com.evil") is None


def test_match_lower_cases_its_input() -> None:
    assert HostMatcher(["example.com"]).match("EXAMPLE.com") == "example.com"


def test_first_duplicate_pattern_wins() -> None:
    matcher = HostMatcher(["Example.com", "example.com", "*.A.com", "*.a.com"])
    assert matcher.match("example.com") == "Example.com"
    assert matcher.match("x.a.com") == "*.A.com"


def test_invalid_pattern_raises() -> None:
    with pytest.raises(HostPatternError):
        HostMatcher(["ok.example", "~(("])


def test_a_thousand_hosts_answer_by_lookup_without_trying_the_regexes() -> None:
    exact = [f"h{i}.example.com" for i in range(1000)]
    wildcards = [f"*.w{i}.example.net" for i in range(1000)]
    matcher = HostMatcher(["~.*\\.example\\.(com|net)", *exact, *wildcards])
    tried: list[str] = []

    def counting(host: str) -> None:
        tried.append(host)
    matcher._regexes = ((counting, "~spy"),)
    assert matcher.match("h999.example.com") == "h999.example.com"
    assert matcher.match("h0.example.com") == "h0.example.com"
    assert matcher.match("a.b.w999.example.net") == "*.w999.example.net"
    assert tried == []
    assert matcher.match("h1000.example.com") is None
    assert tried == ["h1000.example.com"]


def test_host_lookup_agrees_with_normalise_and_match() -> None:
    from dakia_prefork.routing.hosts import HostLookup
    matcher = HostMatcher(["example.com", "*.example.org", "~^api[0-9]+\\.test$"])
    lookup = HostLookup(matcher)
    for raw in (b"example.com", b"EXAMPLE.com:8080", b"a.example.org", b"api7.test",
                b"other.test", b"", b"a b", b"[::1", b"x:99999", b"example.com."):
        host = normalise_host(raw.decode("latin-1")) if raw else ""
        expected = (host, host is not None and matcher.match(host) is not None)
        assert lookup.lookup(raw) == expected, raw
        assert lookup.lookup(raw) == expected, raw        # the memoised answer too


def test_host_lookup_memo_is_bounded() -> None:
    from dakia_prefork.routing.hosts import HostLookup
    lookup = HostLookup(HostMatcher(["example.com"]))
    long_value = b"a" * (HostLookup.MAX_KEY + 1)
    assert lookup.lookup(long_value) == (normalise_host(long_value.decode()), False)
    assert long_value not in lookup._seen                   # too long to keep
    for index in range(HostLookup.MAX_ENTRIES * 2):
        lookup.lookup(b"h%d.example.com" % index)
        assert len(lookup._seen) <= HostLookup.MAX_ENTRIES
