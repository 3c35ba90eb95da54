"""Upstream TLS against a real TLS server started by the test: verification by default,
custom CA, SNI, the explicit opt-out, client certificates (mTLS), pooled TLS connections."""
from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.tlsutil import PKI, make_pki

from .harness import node, wait_until
from .tls_upstream import TLSUpstream


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return make_pki(str(tmp_path_factory.mktemp("pki")), server_names=("api.internal",))


@pytest.fixture
def tls_upstreams(upstreams):
    made: list[TLSUpstream] = []

    def make(pki: PKI, **kwargs: Any) -> TLSUpstream:
        up = TLSUpstream(pki, **kwargs)
        made.append(up)
        return up

    yield make
    for up in made:
        up.close()


def tls_node(port: int, host: str = "localhost", **settings: Any) -> dict[str, Any]:
    return {**node(port, host), "tls": True, **settings}


def test_verified_with_a_custom_ca_and_sni_from_the_host_name(engine, pki, tls_upstreams,
                                                               gateways):
    up = tls_upstreams(pki, name="secure")
    gw = gateways([{"name": "app", "upstream_nodes": [tls_node(up.port, ca_file=pki.ca_file)]}],
                  engine=engine)
    for _ in range(5):                      # one keep-alive TLS connection, reused
        r = requests.get(gw.url + "/x", timeout=10)
        assert (r.status_code, r.text) == (200, "secure")
    assert up.sni == ["localhost"]
    assert up.connections == 1
    assert up.received[0].header("x-forwarded-proto") == "http"


def test_ip_literal_is_verified_against_the_certificates_ip(pki, tls_upstreams, gateways):
    up = tls_upstreams(pki, name="by-ip")
    gw = gateways([{"name": "app", "upstream_nodes": [
        tls_node(up.port, host="127.0.0.1", ca_file=pki.ca_file)]}])
    r = requests.get(gw.url + "/", timeout=10)
    assert (r.status_code, r.text) == (200, "by-ip")
    assert up.sni == [None]                 # no SNI for an IP address (RFC 6066)


def test_explicit_sni_is_sent_and_verified(pki, tls_upstreams, gateways):
    up = tls_upstreams(pki, name="named")
    gw = gateways([{"name": "app", "upstream_nodes": [
        tls_node(up.port, host="127.0.0.1", sni="api.internal", ca_file=pki.ca_file)]}])
    assert requests.get(gw.url + "/", timeout=10).text == "named"
    assert up.sni == ["api.internal"]


def test_a_name_the_certificate_does_not_carry_is_rejected(pki, tls_upstreams, gateways):
    up = tls_upstreams(pki, name="named")
    gw = gateways([{"name": "app", "upstream_nodes": [
        tls_node(up.port, sni="other.example", ca_file=pki.ca_file)]}])
    r = requests.get(gw.url + "/", timeout=10)
    assert r.status_code == 502
    assert r.text == "502 Bad Gateway: the TLS handshake with the upstream failed\n"
    assert up.received == []
    wait_until(lambda: "certificate verify failed" in gw.log_text(), 5, "the reason logged")


def test_a_certificate_from_another_ca_is_rejected(engine, pki, tls_upstreams, gateways):
    up = tls_upstreams(pki, name="secure")
    gw = gateways([{"name": "app", "upstream_nodes": [
        tls_node(up.port, ca_file=pki.other_ca_file)]}], engine=engine)
    r = requests.get(gw.url + "/", timeout=10)
    assert r.status_code == 502 and "TLS handshake" in r.text
    assert up.received == []


def test_system_cas_by_default_reject_a_private_ca(pki, tls_upstreams, gateways):
    up = tls_upstreams(pki, name="secure")
    gw = gateways([{"name": "app", "upstream_nodes": [tls_node(up.port)]}])
    assert requests.get(gw.url + "/", timeout=10).status_code == 502


def test_tls_verify_false_is_an_explicit_opt_out(pki, tls_upstreams, gateways):
    up = tls_upstreams(pki, name="unverified")
    gw = gateways([{"name": "app", "upstream_nodes": [
        tls_node(up.port, sni="anything.example", tls_verify=False,
                 ca_file=pki.other_ca_file)]}])
    r = requests.get(gw.url + "/", timeout=10)
    assert (r.status_code, r.text) == (200, "unverified")
    assert up.sni == ["anything.example"]


def test_mtls_passes_only_with_the_client_certificate(engine, pki, tls_upstreams, gateways):
    up = tls_upstreams(pki, name="mutual", require_client_cert=True)
    without = gateways([{"name": "app", "upstream_nodes": [
        tls_node(up.port, ca_file=pki.ca_file)]}], engine=engine)
    assert requests.get(without.url + "/", timeout=10).status_code == 502
    assert up.received == []
    with_cert = gateways([{"name": "app", "upstream_nodes": [
        tls_node(up.port, ca_file=pki.ca_file, client_cert=pki.client_cert,
                 client_key=pki.client_key)]}], engine=engine)
    r = requests.get(with_cert.url + "/", timeout=10)
    assert (r.status_code, r.text) == (200, "mutual")
    assert up.client_subjects == [{"commonName": "dakia gateway"}]


def test_tls_to_a_plain_http_server_is_502(pki, upstreams, gateways):
    plain = upstreams(name="plain")
    gw = gateways([{"name": "app", "upstream_nodes": [
        tls_node(plain.port, ca_file=pki.ca_file)]}])
    assert requests.get(gw.url + "/", timeout=10).status_code == 502


def test_a_failed_handshake_is_retried_on_another_node(pki, tls_upstreams, gateways):
    wrong = tls_upstreams(pki, name="wrong")
    right = tls_upstreams(pki, name="right")
    gw = gateways([{"name": "app", "passive_health": {"max_failures": 0},
                    "upstream_nodes": [tls_node(wrong.port, sni="bad.example",
                                                ca_file=pki.ca_file),
                                       tls_node(right.port, ca_file=pki.ca_file)]}])
    assert {requests.get(gw.url + "/", timeout=10).text for _ in range(4)} == {"right"}


def test_new_connections_resume_the_tls_session(pki, tls_upstreams, gateways):
    def closes(request, sock):
        return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
    up = tls_upstreams(pki, handler=closes)
    gw = gateways([{"name": "app", "upstream_nodes": [tls_node(up.port, ca_file=pki.ca_file)]}])
    for _ in range(3):
        assert requests.get(gw.url + "/", timeout=10).text == "ok"
    assert up.connections == 3
    assert up.resumed == [False, True, True]


def test_try_file_fetches_a_miss_over_the_nodes_tls(pki, tls_upstreams, gateways, tmp_path):
    """try_file talks to the node itself: with the node's TLS settings, never in clear."""
    up = tls_upstreams(pki, name="cached-secure")
    cache = tmp_path / "cache"
    gw = gateways([{"name": "app", "upstream_nodes": [tls_node(up.port, ca_file=pki.ca_file)]}],
                  gateway={"interceptors": [{"name": "try_file",
                                             "config": {"root": str(cache)}}]})
    for _ in range(2):
        r = requests.get(gw.url + "/page.txt", timeout=10)
        assert (r.status_code, r.text) == (200, "cached-secure")
    assert (cache / "page.txt").read_text() == "cached-secure"
    assert [x.target for x in up.received] == ["/page.txt"]
