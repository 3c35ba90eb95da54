"""A gateway's ``real_ip`` through the running gateway (issue 9, part 6).

Loopback accepts any 127.0.0.0/8 source, so the test's clients bind their own source
address: 127.0.0.2 plays the trusted load balancer, 127.0.0.3 a client that reaches the
gateway directly. The client address must reach everything that asks for it: routing
filters (``remote_addr``), ``ip_restriction``, the rate limiter's ``key: ip``, the access
log and the X-Forwarded-For sent upstream.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Callable

from .harness import Gateway, Upstream, free_port, node, read_responses, wait_until

LB = "127.0.0.2"
DIRECT = "127.0.0.3"


def _get(gw: Gateway, source: str, target: str = "/", headers: str = "",
         host: str = "127.0.0.1", port: int | None = None) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect((host, port or gw.port))
        s.sendall(f"GET {target} HTTP/1.1\r\nhost: x\r\n{headers}connection: close\r\n\r\n"
                  .encode())
        (response, body), = read_responses(s, 1)
        return response.status_code, body


def _last(upstream: Upstream, target: str) -> Any:
    return [r for r in upstream.received if r.target == target][-1]


def _access_lines(gw: Gateway) -> list[str]:
    try:
        with open(os.path.join(gw.tmp, "access.log")) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def _gateway(gateways: Callable[..., Gateway], engine: str, upstreams_: list[Upstream],
             real_ip: dict[str, Any], **more: Any) -> Gateway:
    app, other = upstreams_
    gateway = {"real_ip": real_ip,
               "routers": [{"upstream": "other", "filter": "from_other"},
                           {"upstream": "app"}],
               "filters": [{"name": "from_other", "remote_addr": "192.0.2.99"}],
               **more}
    return gateways([{"name": "app", "upstream_nodes": [node(app.port)]},
                     {"name": "other", "upstream_nodes": [node(other.port)]}],
                    engine=engine, gateway=gateway)


def test_x_forwarded_for_from_a_trusted_proxy(upstreams, gateways, engine) -> None:
    app, other = upstreams(name="app"), upstreams(name="other")
    gw = _gateway(gateways, engine, [app, other],
                  {"trusted_proxies": [LB + "/32", "10.0.0.0/8"]},
                  interceptors=[{"name": "ip_restriction",
                                 "config": {"deny": ["198.51.100.0/24"]}}])
    # The client is the rightmost untrusted entry; the spoofed left part is dropped from
    # the X-Forwarded-For sent upstream, the trusted hop and our peer are kept.
    status, _ = _get(gw, LB, "/a", "x-forwarded-for: 6.6.6.6, 203.0.113.5, 10.1.2.3\r\n")
    assert status == 200
    assert _last(app, "/a").header("x-forwarded-for") == f"203.0.113.5, 10.1.2.3, {LB}"
    wait_until(lambda: any(line.startswith("203.0.113.5 ") and "/a " in line
                           for line in _access_lines(gw)), 5, "the access-log line")
    # Routing filters see it.
    status, body = _get(gw, LB, "/b", "x-forwarded-for: 192.0.2.99\r\n")
    assert (status, body) == (200, b"other")
    # ip_restriction sees it.
    status, _ = _get(gw, LB, "/c", "x-forwarded-for: 198.51.100.7\r\n")
    assert status == 403
    # Repeated header lines are one list.
    status, body = _get(gw, LB, "/d", "x-forwarded-for: 192.0.2.99\r\n"
                                      "x-forwarded-for: 10.1.2.3\r\n")
    assert (status, body) == (200, b"other")
    assert _last(other, "/d").header("x-forwarded-for") == f"192.0.2.99, 10.1.2.3, {LB}"
    # Garbage in the chain ends the walk: the last trusted hop is the client.
    status, _ = _get(gw, LB, "/e", "x-forwarded-for: 198.51.100.7, nonsense, 10.1.2.3\r\n")
    assert status == 200
    assert _last(app, "/e").header("x-forwarded-for") == f"10.1.2.3, {LB}"


def test_an_untrusted_peer_cannot_choose_its_address(upstreams, gateways, engine) -> None:
    app, other = upstreams(name="app"), upstreams(name="other")
    gw = _gateway(gateways, engine, [app, other], {"trusted_proxies": [LB]},
                  interceptors=[{"name": "ip_restriction",
                                 "config": {"allow": [LB, DIRECT, "192.0.2.99"]}}])
    # It claims to be an allowed address, or the address the filter routes: it is not.
    status, body = _get(gw, DIRECT, "/f", "x-forwarded-for: 192.0.2.99\r\n")
    assert (status, body) == (200, b"app")
    assert _last(app, "/f").header("x-forwarded-for") == DIRECT
    status, _ = _get(gw, "127.0.0.4", "/g", "x-forwarded-for: 192.0.2.99\r\n")
    assert status == 403
    wait_until(lambda: any(line.startswith(DIRECT + " ") and "/f " in line
                           for line in _access_lines(gw)), 5, "the access-log line")


def test_x_real_ip(upstreams, gateways, engine) -> None:
    app, other = upstreams(name="app"), upstreams(name="other")
    gw = _gateway(gateways, engine, [app, other],
                  {"trusted_proxies": [LB], "header": "x-real-ip"})
    status, body = _get(gw, LB, "/h", "x-real-ip: 192.0.2.99\r\n")
    assert (status, body) == (200, b"other")
    assert _last(other, "/h").header("x-forwarded-for") == f"192.0.2.99, {LB}"
    assert _last(other, "/h").header_all("x-real-ip") == ["192.0.2.99"]
    # From an untrusted peer, its X-Real-IP is not what the upstream gets either.
    status, body = _get(gw, DIRECT, "/h2", "x-real-ip: 192.0.2.99\r\n")
    assert (status, body) == (200, b"app")
    assert _last(app, "/h2").header_all("x-real-ip") == [DIRECT]
    assert _last(app, "/h2").header("x-forwarded-for") == DIRECT
    # Two values, a list, or garbage: none is believed.
    for headers in ("x-real-ip: 192.0.2.99\r\nx-real-ip: 192.0.2.99\r\n",
                    "x-real-ip: 192.0.2.99, 1.2.3.4\r\n", "x-real-ip: nope\r\n",
                    "x-forwarded-for: 192.0.2.99\r\n"):
        status, body = _get(gw, LB, "/i", headers)
        assert (status, body) == (200, b"app"), headers


def test_the_rate_limiter_counts_each_client_behind_the_proxy(upstreams, gateways,
                                                             engine) -> None:
    app, other = upstreams(name="app"), upstreams(name="other")
    gw = _gateway(gateways, engine, [app, other], {"trusted_proxies": [LB]},
                  interceptors=[{"name": "rate_limiter",
                                 "config": {"capacity": 2, "refill_rate": 1,
                                            "refill_interval": 60000, "key": "ip"}}])

    def codes(client: str, count: int) -> list[int]:
        return [_get(gw, LB, "/r", f"x-forwarded-for: {client}\r\n")[0] for _ in range(count)]

    assert codes("203.0.113.1", 3) == [200, 200, 429]
    assert codes("203.0.113.2", 2) == [200, 200]      # another client: its own bucket
    assert codes("203.0.113.1", 1) == [429]


def test_ipv6_proxies_and_clients(upstreams, gateways, engine) -> None:
    app, other = upstreams(name="app"), upstreams(name="other")
    gw = gateways([{"name": "app", "upstream_nodes": [node(app.port)]}], engine=engine,
                  start=False)
    v6_port = free_port("::1")
    gw.config["gateways"][0]["bind_addresses"] = [{"host": "::1", "port": v6_port}]
    gw.config["gateways"][0]["real_ip"] = {"trusted_proxies": ["::1/128"]}
    gw.config["gateways"][0]["interceptors"] = [
        {"name": "ip_restriction", "config": {"deny": ["2001:db8:bad::/48"]}}]
    gw.start()
    status, _ = _get(gw, "::1", "/v6", "x-forwarded-for: [2001:DB8::7]:4711\r\n", host="::1",
                     port=v6_port)
    assert status == 200
    assert _last(app, "/v6").header("x-forwarded-for") == "2001:db8::7, ::1"
    status, _ = _get(gw, "::1", "/v6", "x-forwarded-for: 2001:db8:bad::1\r\n", host="::1",
                     port=v6_port)
    assert status == 403
    # An IPv4 client behind the IPv6 proxy.
    status, _ = _get(gw, "::1", "/v4", "x-forwarded-for: 192.0.2.1\r\n", host="::1",
                     port=v6_port)
    assert status == 200
    assert _last(app, "/v4").header("x-forwarded-for") == "192.0.2.1, ::1"
    assert other.received == []


def test_a_bad_trusted_proxy_is_a_check_error(gateways, upstreams) -> None:
    app = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(app.port)]}], start=False,
                  gateway={"real_ip": {"trusted_proxies": ["10.0.0.0/8", "10.0.0.1/8", "x"]}})
    gw.write_config()
    result = gw.cli("check")
    assert result.returncode == 1
    assert ("gateways[0].real_ip.trusted_proxies[1]: 10.0.0.1/8 has host bits set; did you "
            "mean 10.0.0.0/8?") in result.stderr + result.stdout
    assert "gateways[0].real_ip.trusted_proxies[2]" in result.stderr + result.stdout


def test_try_file_fetches_forward_the_same_chain(upstreams, gateways, engine,
                                                 tmp_path) -> None:
    """try_file's own fetch upstream sends the X-Forwarded-For the proxy would."""
    app = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(app.port)]}], engine=engine,
                  gateway={"real_ip": {"trusted_proxies": [LB]},
                           "interceptors": [{"name": "try_file", "config": {
                               "root": str(tmp_path / "cache"), "timeout": 2}}]})
    status, _ = _get(gw, LB, "/t1.txt", "x-forwarded-for: 6.6.6.6, 203.0.113.5\r\n")
    assert status == 200
    fetch = _last(app, "/t1.txt")
    assert fetch.header("accept-encoding") == "identity"      # try_file's fetch, not a proxy
    assert fetch.header("x-forwarded-for") == f"203.0.113.5, {LB}"
    status, _ = _get(gw, DIRECT, "/t2.txt", "x-forwarded-for: 203.0.113.5\r\n")
    assert status == 200
    assert _last(app, "/t2.txt").header("x-forwarded-for") == DIRECT
