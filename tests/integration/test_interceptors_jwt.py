"""jwt_auth through a running gateway: good tokens of every algorithm pass with their claims
forwarded; forged, expired, early, misdirected, wrongly signed and alg-confused ones do not."""
from __future__ import annotations

import json
import time

import pytest
import requests

from .harness import node
from .jwt_tokens import KIDS, Keys, b64, encode_part, key_for, token

ALGORITHMS = ["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys.generate()


def claims(**more) -> dict:
    now = int(time.time())
    return {"sub": "alice", "iss": "https://id.test", "aud": ["api", "other"], "exp": now + 300,
            "nbf": now - 10, "roles": ["admin", "ops"], **more}


def jwks_gateway(keys, tmp_path, upstreams, gateways, engine="h11", **config):
    up = upstreams(name="app")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], engine=engine, gateway={
        "interceptors": [{"name": "jwt_auth", "config": {
            "algorithms": ALGORITHMS, "jwks_file": str(jwks),
            "issuer": "https://id.test", "audience": "api", "leeway": 5,
            "forward_claims": {"sub": "X-User", "roles": "X-Roles", "name": "X-Name"},
            **config}}]})
    return up, gw


def rejected(gw, up, tok: str | None, description: str | None, **kwargs) -> None:
    seen = len(up.received)
    headers = {"Authorization": f"Bearer {tok}"} if tok is not None else {}
    r = requests.get(gw.url + "/", headers=headers, timeout=10, **kwargs)
    assert r.status_code == 401, (tok, r.text)
    challenge = r.headers["www-authenticate"]
    if description is None:
        assert challenge == 'Bearer realm="api"'
    else:
        assert challenge == ('Bearer realm="api", error="invalid_token", '
                             f'error_description="{description}"'), challenge
    assert len(up.received) == seen            # the upstream never saw it


def test_every_algorithm_passes_and_claims_are_forwarded(engine, keys, tmp_path, upstreams,
                                                          gateways):
    up, gw = jwks_gateway(keys, tmp_path, upstreams, gateways, engine)
    for alg in ALGORITHMS:
        for header in ({"kid": KIDS[alg]}, {}):          # with the key's kid, and without
            tok = token(alg, key_for(keys, alg), claims(name="Zoë Ünïcode"), **header)
            r = requests.get(gw.url + "/x", timeout=10, headers={
                "Authorization": f"Bearer {tok}", "X-User": "mallory", "X-Name": "spoofed"})
            assert (r.status_code, r.text) == (200, "app"), (alg, header, r.text)
            seen = up.received[-1]
            assert seen.header_all("x-user") == ["alice"]          # the client's copy is gone
            assert json.loads(seen.header("x-roles")) == ["admin", "ops"]
            assert seen.header("x-name") == "Zo%C3%AB %C3%9Cn%C3%AFcode"
            assert seen.header("authorization") == f"Bearer {tok}"


def test_bad_tokens_are_refused(keys, tmp_path, upstreams, gateways):
    up, gw = jwks_gateway(keys, tmp_path, upstreams, gateways)
    now = int(time.time())
    good = token("RS256", keys.rsa, claims())
    head, payload, signature = good.split(".")

    rejected(gw, up, None, None)                                        # no token at all
    r = requests.get(gw.url + "/", auth=("alice", "pw"), timeout=10)    # not a bearer token
    assert r.status_code == 401 and up.received == []
    forged = encode_part(claims(sub="admin"))
    rejected(gw, up, f"{head}.{forged}.{signature}", "invalid signature")
    rejected(gw, up, token("RS256", Keys.generate().rsa, claims()), "invalid signature")
    rejected(gw, up, token("HS256", b"k" * 64, claims()), "invalid signature")
    rejected(gw, up, token("ES256", keys.ec, claims(), kid="rsa"), "invalid signature")
    rejected(gw, up, token("RS256", keys.rsa, claims(), kid="nope"), "invalid signature")
    rejected(gw, up, token("HS256", keys.secret, claims(exp=now - 60)), "the token has expired")
    rejected(gw, up, token("HS256", keys.secret, claims(nbf=now + 60)),
             "the token is not valid yet")
    rejected(gw, up, token("HS256", keys.secret, claims(iss="https://evil.test")),
             "wrong issuer")
    rejected(gw, up, token("HS256", keys.secret, claims(aud="someone-else")), "wrong audience")
    no_exp = claims()
    del no_exp["exp"]
    rejected(gw, up, token("HS256", keys.secret, no_exp), "the exp claim is missing")
    rejected(gw, up, token("HS256", keys.secret, claims(exp="tomorrow")),
             "the exp claim is not a number")
    # alg none, with and without a signature part; and algorithms not configured.
    rejected(gw, up, f"{encode_part({'alg': 'none'})}.{payload}.", "algorithm not allowed")
    rejected(gw, up, f"{encode_part({'alg': 'none'})}.{payload}.{signature}",
             "algorithm not allowed")
    rejected(gw, up, f"{encode_part({'alg': 'NONE'})}.{payload}.", "algorithm not allowed")
    rejected(gw, up, f"{encode_part({'typ': 'JWT'})}.{payload}.{signature}",
             "malformed token (no alg)")
    # malformed encodings and JSON.
    rejected(gw, up, f"{head}.{payload}", "malformed token (not a compact JWS)")
    rejected(gw, up, f"{head}.{payload}.{signature}.x.y", "malformed token (not a compact JWS)")
    rejected(gw, up, f"{head}.{payload}.{signature}==", "malformed token (bad base64url)")
    rejected(gw, up, f"{head}.{payload}.{signature[:-1]}+",
             "malformed token (bad base64url)")
    rejected(gw, up, f"{b64(b'{not json')}.{payload}.{signature}",
             "malformed token (header is not JSON)")
    rejected(gw, up, f"{b64(b'[1]')}.{payload}.{signature}",
             "malformed token (header is not a JSON object)")
    duplicated = b64(b'{"alg":"RS256","alg":"none"}')
    rejected(gw, up, f"{duplicated}.{payload}.{signature}",
             "malformed token (duplicate JSON member)")
    rejected(gw, up, token("RS256", keys.rsa, claims(), crit=["exp"]),
             "unsupported critical header parameters")
    # A good token still works after all of that.
    r = requests.get(gw.url + "/", headers={"Authorization": f"Bearer {good}"}, timeout=10)
    assert r.status_code == 200 and up.received[-1].header("x-user") == "alice"


def test_rs256_public_key_used_as_hs256_secret_is_refused(keys, tmp_path, upstreams,
                                                          gateways):
    """The classic algorithm confusion: sign HS256 with the server's public PEM as secret."""
    up = upstreams(name="app")
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(keys.rsa_public_pem())
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "interceptors": [{"name": "jwt_auth", "config": {
            "algorithms": ["RS256", "HS256"], "public_key_file": str(pem),
            "secret": "an-hmac-secret-of-at-least-32-bytes!"}}]})
    for secret in (keys.rsa_public_pem(), keys.rsa_public_pem().strip()):
        confused = token("HS256", secret, claims())
        r = requests.get(gw.url + "/", headers={"Authorization": f"Bearer {confused}"},
                         timeout=10)
        assert r.status_code == 401 and "invalid signature" in r.headers["www-authenticate"]
    real = token("RS256", keys.rsa, claims())
    r = requests.get(gw.url + "/", headers={"Authorization": f"Bearer {real}"}, timeout=10)
    assert r.status_code == 200
    hs = token("HS256", b"an-hmac-secret-of-at-least-32-bytes!", claims())
    r = requests.get(gw.url + "/", headers={"Authorization": f"Bearer {hs}"}, timeout=10)
    assert r.status_code == 200
    assert len(up.received) == 2


def test_leeway_cookie_query_and_hidden_credentials(keys, tmp_path, upstreams, gateways):
    up = upstreams(name="app")
    secret = tmp_path / "secret"
    secret.write_bytes(keys.secret + b"\n")
    gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], gateway={
        "interceptors": [{"name": "jwt_auth", "config": {
            "algorithms": ["HS512"], "secret_file": str(secret), "leeway": 30,
            "header": None, "cookie": "session", "query": "access_token",
            "hide_credentials": True, "realm": "api"}}]})
    now = int(time.time())
    just_expired = token("HS512", keys.secret, {"sub": "bob", "exp": now - 10})
    r = requests.get(gw.url + "/c", cookies={"theme": "dark", "session": just_expired},
                     timeout=10)
    assert r.status_code == 200                                   # within the leeway
    assert up.received[-1].header("cookie") == "theme=dark"       # the token cookie is gone
    r = requests.get(gw.url + f"/q?a=1&access_token={just_expired}", timeout=10)
    assert r.status_code == 200 and up.received[-1].target == "/q?a=1"
    long_expired = token("HS512", keys.secret, {"sub": "bob", "exp": now - 31})
    r = requests.get(gw.url + f"/q?access_token={long_expired}", timeout=10)
    assert r.status_code == 401
    r = requests.get(gw.url + "/", headers={"Authorization": f"Bearer {just_expired}"},
                     timeout=10)
    assert r.status_code == 401            # the header is not a place this gateway looks


def test_check_reports_unusable_key_configs(keys, tmp_path, upstreams, gateways):
    up = upstreams(name="app")
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(keys.rsa_public_pem())

    def check(*configs):
        gw = gateways([{"name": "app", "upstream_nodes": [node(up.port)]}], start=False,
                      gateway={"interceptors": [{"name": "jwt_auth", "config": config}
                                                for config in configs]})
        gw.write_config()
        done = gw.cli("check")
        assert done.returncode == 1
        return done.stderr

    errors = check({"algorithms": ["HS256"], "secret": "short"},
                   {"algorithms": ["ES256"], "public_key_file": str(pem)},
                   {"algorithms": ["RS256"], "jwks_file": str(tmp_path / "missing.json")})
    for line in (
        "gateways[0].interceptors[0].config: the HMAC secret has 5 bytes; HS256 needs at "
        "least 32",
        "gateways[0].interceptors[1].config.algorithms: ES256 is allowed but no key of the "
        "type it needs is configured",
        "gateways[0].interceptors[1].config.algorithms: the RSA key fits none of the allowed "
        "algorithms",
        "gateways[0].interceptors[2].config.jwks_file: [Errno 2] No such file or directory",
    ):
        assert line in errors, (line, errors)
    (tmp_path / "x.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    assert ("gateways[0].interceptors[0].config.public_key_file: holds a private key"
            in check({"algorithms": ["RS256"], "public_key_file": str(tmp_path / "x.pem")}))
    assert ("gateways[0].interceptors[0].config.algorithms[0]: one of HS256, HS384, HS512"
            in check({"algorithms": ["none"], "secret": "x" * 40}))
