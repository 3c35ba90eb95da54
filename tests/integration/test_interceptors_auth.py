"""basic_auth and key_auth through a running gateway: who gets in, what the upstream sees."""
from __future__ import annotations

import base64
import hashlib
import threading
import time
from pathlib import Path

import bcrypt
import requests

from dakia_prefork.interceptors.apikeys import hash_key
from dakia_prefork.interceptors.passwords import make_hash

from .harness import node

APR1_ANN = "$apr1$r31Qx1Ab$OJ8s6MXn9DQ/mM9XkR3xR/"       # password "myPassword"


def _basic_gateway(upstreams, gateways, tmp_path, engine, **config):
    up = upstreams(name="app")
    htpasswd = tmp_path / "users.htpasswd"
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"shapass").digest()).decode()
    bob = bcrypt.hashpw(b"bobpass", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    htpasswd.write_text(f"ann:{APR1_ANN}\nbob:{bob}\ncid:{sha}\n")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "basic_auth", "config": {
            "realm": "staff", "htpasswd_file": str(htpasswd),
            "users": [{"username": "alice",
                       "password_hash": make_hash("wonderland", "pbkdf2-sha256")},
                      {"username": "dave", "password": "plain-in-config"}],
            **config}}]})
    return up, gw


def test_basic_auth_refusals_are_401_with_a_challenge(engine, upstreams, gateways, tmp_path):
    up, gw = _basic_gateway(upstreams, gateways, tmp_path, engine)
    for auth in (None, ("alice", "wrong"), ("nobody", "wonderland"), ("bob", "shapass")):
        r = requests.get(gw.url + "/", auth=auth, timeout=10)
        assert r.status_code == 401, auth
        assert r.headers["www-authenticate"] == 'Basic realm="staff", charset="UTF-8"'
    r = requests.get(gw.url + "/", headers={"Authorization": "Basic not-base64!"}, timeout=10)
    assert r.status_code == 401
    assert up.received == []


def test_basic_auth_lets_every_kind_of_user_in(engine, upstreams, gateways, tmp_path):
    up, gw = _basic_gateway(upstreams, gateways, tmp_path, engine)
    for user, password in (("alice", "wonderland"), ("ann", "myPassword"), ("bob", "bobpass"),
                           ("cid", "shapass"), ("dave", "plain-in-config")):
        r = requests.get(gw.url + "/" + user, auth=(user, password), timeout=10)
        assert (r.status_code, r.text) == (200, "app"), user
        assert up.received[-1].header("authorization") is not None   # passed on by default
    stored = Path(gw.config["state_dir"]) / "config" / "v1.json"
    assert "plain-in-config" not in stored.read_text()               # hashed at load


def test_basic_auth_hide_credentials(engine, upstreams, gateways, tmp_path):
    up, gw = _basic_gateway(upstreams, gateways, tmp_path, engine, hide_credentials=True)
    assert requests.get(gw.url + "/", auth=("alice", "wonderland"), timeout=10).ok
    assert up.received[-1].header("authorization") is None


def test_slow_password_hashes_do_not_stall_other_requests(upstreams, gateways):
    """The KDF runs off the gevent hub: requests that need no KDF keep flowing meanwhile."""
    up = upstreams(name="app")
    slow = make_hash("x", "pbkdf2-sha256").split("$")
    slow[2] = "i=4000000"                 # a few hundred ms per attempt
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "filters": [{"name": "secure", "path": {"$starts_with": "/secure"}}],
        "interceptors": [{"name": "basic_auth", "filter": "secure", "config": {
            "users": [{"username": "u", "password_hash": "$".join(slow)}]}}]})
    finished: dict[str, float] = {}

    def attempt() -> None:
        requests.get(gw.url + "/secure", auth=("u", "wrong"), timeout=30)
        finished["auth"] = time.monotonic()

    thread = threading.Thread(target=attempt)
    thread.start()
    time.sleep(0.05)
    for _ in range(5):
        assert requests.get(gw.url + "/open", timeout=10).status_code == 200
    finished["open"] = time.monotonic()
    thread.join(30)
    assert finished["open"] < finished["auth"]


KEY = "ci-key-0123456789abcdef"


def test_key_auth_header_and_query(engine, upstreams, gateways):
    up = upstreams(name="app")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "key_auth", "config": {
            "header": "X-API-Key", "query": "api_key", "realm": "api", "hide_credentials": True,
            "keys": [{"name": "ci", "key_hash": hash_key(KEY)},
                     {"name": "ops", "key": "ops-key-0123456789abcdef"}]}}]})
    r = requests.get(gw.url + "/", timeout=5)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Key realm="api"'
    r = requests.get(gw.url + "/", headers={"X-API-Key": KEY + "x"}, timeout=5)
    assert r.status_code == 403
    r = requests.get(gw.url + "/", params={"api_key": "nope"}, timeout=5)
    assert r.status_code == 403
    assert up.received == []
    r = requests.get(gw.url + "/h", headers={"X-API-Key": KEY}, timeout=5)
    assert r.status_code == 200 and up.received[-1].header("x-api-key") is None
    r = requests.get(gw.url + "/q?a=1&api_key=ops-key-0123456789abcdef", timeout=5)
    assert r.status_code == 200 and up.received[-1].target == "/q?a=1"
