"""Properties of host matching (routing/hosts.py), checked with hypothesis.

HostMatcher is compared with a plain reference of the documented precedence (an exact name,
then the most specific wildcard, then ``*``, then regexes in config order; the first of
equal patterns wins), over names drawn from three labels so that patterns and hosts
overlap often. Nothing is asserted about which characters a Host may hold beyond what
hosts.py documents: that is another part of the gateway's policy.
"""
from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dakia_prefork.routing.hosts import HostLookup, HostMatcher, normalise_host

_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None)

names = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4).map(".".join)
# Patterns as an operator may write them: any case, exact or wildcard, or '*'.
patterns = (names | names.map(lambda n: "*." + n) | st.just("*")) \
    .flatmap(lambda p: st.sampled_from([p, p.upper()]))
regex_patterns = st.sampled_from(["~^a\\..*$", "~^(b|c)+$", "~.*c$", "~^[ab.]+$"])


def reference(config: list[str], host: str) -> str | None:
    """The documented precedence, written out plainly."""
    for pattern in config:
        if not pattern.startswith(("*", "~")) and pattern.lower() == host:
            return pattern
    best: tuple[int, str] | None = None
    for pattern in config:
        if pattern.startswith("*."):
            suffix = pattern[2:].lower()
            if host.endswith("." + suffix) and (best is None or len(suffix) > best[0]):
                best = (len(suffix), pattern)
    if best is not None:
        return best[1]
    if "*" in config:
        return "*"
    return None


@_SETTINGS
@given(st.lists(patterns, min_size=1, max_size=6), names)
def test_matcher_follows_the_documented_precedence(config: list[str], host: str) -> None:
    assert HostMatcher(config).match(host) == reference(config, host)


@_SETTINGS
@given(st.lists(patterns, min_size=1, max_size=6), names, st.randoms(use_true_random=False))
def test_order_matters_only_between_equal_patterns(config: list[str], host: str,
                                                   rng: random.Random) -> None:
    shuffled = list(config)
    rng.shuffle(shuffled)
    first, second = HostMatcher(config).match(host), HostMatcher(shuffled).match(host)
    # The same pattern up to case (the first spelling given wins).
    assert (first or "").lower() == (second or "").lower()


@_SETTINGS
@given(names, names)
def test_exact_beats_wildcard_and_a_wildcard_never_matches_its_own_suffix(
        label: str, suffix: str) -> None:
    host = f"{label}.{suffix}"
    for config in ([f"*.{suffix}", host], [host, f"*.{suffix}"]):
        assert HostMatcher(config).match(host) == host
    assert HostMatcher([f"*.{suffix}"]).match(suffix) is None
    assert HostMatcher([f"*.{suffix}"]).match(host) == f"*.{suffix}"


@_SETTINGS
@given(st.lists(patterns, min_size=1, max_size=4), st.lists(regex_patterns, max_size=3),
       names)
def test_regexes_come_last_in_config_order(config: list[str], regexes: list[str],
                                           host: str) -> None:
    matcher = HostMatcher(config + regexes)
    plain = reference(config, host)
    if plain is not None:
        assert matcher.match(host) == plain
        return
    expected = next((r for r in regexes if HostMatcher([r]).match(host) is not None), None)
    assert matcher.match(host) == expected


@_SETTINGS
@given(st.lists(patterns, max_size=6), names, st.integers(0, 65535))
def test_case_port_and_trailing_dot_never_change_the_answer(config: list[str], host: str,
                                                             port: int) -> None:
    matcher = HostMatcher(config)
    lookup = HostLookup(matcher)
    expected = (host, matcher.match(host) is not None)
    for raw in (host, host.upper(), f"{host}:{port}", f"{host.upper()}.:{port}", host + "."):
        assert normalise_host(raw) == host
        assert lookup.lookup(raw.encode()) == expected
    if not config:
        assert expected[1]       # no downstreams: every host is answered


@_SETTINGS
@given(st.text(alphabet="aB1-_.:[]", max_size=12))
def test_normalising_is_idempotent(raw: str) -> None:
    host = normalise_host(raw)
    if host is not None:
        assert normalise_host(host) == host
        assert host == host.lower()
        assert normalise_host(raw.upper()) == host


@_SETTINGS
@given(st.sampled_from(["::1", "0:0::1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "::ffff:1.2.3.4"]),
       st.integers(0, 65535))
def test_ipv6_literals_in_every_spelling(literal: str, port: int) -> None:
    host = normalise_host(literal)
    assert host is not None
    assert normalise_host(f"[{literal}]") == host
    assert normalise_host(f"[{literal}]:{port}") == host
    assert normalise_host(f"[{literal.upper()}]") == host
    assert HostMatcher([f"[{literal}]"]).match(host) == f"[{literal}]"
