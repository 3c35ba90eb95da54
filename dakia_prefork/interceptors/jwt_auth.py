"""``jwt_auth``: bearer tokens (JWT in compact JWS form) verified at the gateway.

::

    config:
      algorithms: [RS256, ES256]          # required; none is never accepted
      secret: null                        # HS*: the secret as text (prefer secret_file)
      secret_file: null                   # HS*: the file's bytes, a final newline dropped
      public_key_file: /etc/dakia/jwt.pem # a PEM public key or certificate
      jwks_file: /etc/dakia/jwks.json     # {"keys": [...]}; the token's kid picks the key
      issuer: https://id.example          # a string or a list; null: not checked
      audience: api                       # a string or a list; null: not checked
      leeway: 30                          # seconds of clock skew allowed on exp and nbf
      required_claims: [exp]              # the default; [] accepts tokens that never expire
      forward_claims: {sub: X-User}       # claims sent upstream as request headers
      header: Authorization               # where the token is: "Bearer <token>"
      cookie: null                        # or a cookie's name
      query: null                         # or a query parameter's name
      realm: api
      hide_credentials: false             # true: the upstream does not get the token

Verification (jws.py, jwk.py) accepts only the configured algorithms, with keys of the
type each algorithm needs. Then ``exp`` and ``nbf`` are checked with ``leeway``, and
``iss`` and ``aud`` when configured (an ``aud`` list passes when one entry is accepted).

No token: 401 with ``WWW-Authenticate: Bearer realm="api"``; a token that fails: 401 with
``error="invalid_token"`` and a short ``error_description`` (RFC 6750 3). The headers named
in ``forward_claims`` are always removed from what the client sent, so a client cannot
claim to be someone by sending ``X-User`` itself; a claim that is not a string is sent as
JSON, and text outside printable ASCII is percent-encoded (UTF-8). The ``sub`` claim is
``ctx.consumer``, and every claim is in ``ctx.vars["jwt_claims"]``.

Verification is a few tens of microseconds of OpenSSL per request, so it runs inline.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import quote

from .base import Interceptor, Problem, Problems, register
from .context import Context, Reply
from .headers import header_name
from .jwk import Key, jwks_keys, pem_key, secret_key
from .jws import ALGORITHMS, Token, TokenError, parse

_UNAUTHORIZED = b"401 Unauthorized\n"
_FILE_KEYS = ("secret_file", "public_key_file", "jwks_file")
_MAX_KEY_FILE = 1 << 20
# What a forwarded text claim may carry as it is: printable ASCII except '%', which is
# then reserved for the percent-encoding of everything else.
_CLAIM_SAFE = "".join(chr(c) for c in range(0x20, 0x7f) if chr(c) != "%")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(_MAX_KEY_FILE + 1)
    if len(data) > _MAX_KEY_FILE:
        raise ValueError("larger than 1 MiB: not a key file")
    return data


def _as_set(value: str | list[str] | None) -> frozenset[str]:
    if value is None:
        return frozenset()
    return frozenset([value] if isinstance(value, str) else value)


@register
class JwtAuth(Interceptor):
    name = "jwt_auth"

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        """Make key file paths absolute, then build (which reads and checks the keys)."""
        config = entry["config"]
        for key in _FILE_KEYS:
            if config.get(key):
                config[key] = os.path.join(base_dir, config[key])
        return super().check(entry, base_dir)

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        problems = Problems()
        self.algorithms = frozenset(config["algorithms"])
        self.keys = self._load_keys(config, problems)
        self._check_keys_fit(problems)
        self.issuers = _as_set(config.get("issuer"))
        self.audiences = _as_set(config.get("audience"))
        self.leeway = float(config.get("leeway", 30))
        self.required = tuple(config.get("required_claims", ["exp"]))
        self.forward: list[tuple[str, bytes]] = []
        for claim, header in config.get("forward_claims", {}).items():
            try:
                self.forward.append((claim, header_name(header)))
            except ValueError as exc:
                problems.add(f"config.forward_claims.{claim}", str(exc))
        self.header: bytes | None = None
        if config.get("header", "authorization") is not None:
            try:
                self.header = header_name(config.get("header", "authorization"))
            except ValueError as exc:
                problems.add("config.header", str(exc))
        self.cookie: str | None = config.get("cookie")
        self.query: str | None = config.get("query")
        if self.header is None and self.cookie is None and self.query is None:
            problems.add("config", "give header, cookie or query: where is the token?")
        self.hide_credentials = bool(config.get("hide_credentials", False))
        problems.raise_any()
        realm = config.get("realm", "api")
        self.realm = realm
        self.missing = Reply(401, _UNAUTHORIZED, [("www-authenticate", f'Bearer realm="{realm}"')])
        self.header_text = self.header.decode("latin-1") if self.header else None

    # -- configuration -------------------------------------------------------------------
    def _load_keys(self, config: dict[str, Any], problems: Problems) -> list[Key]:
        keys: list[Key] = []
        if config.get("secret") is not None and config.get("secret_file"):
            problems.add("config.secret", "give secret or secret_file, not both")
        if config.get("secret") is not None:
            keys.append(secret_key(config["secret"].encode("utf-8")))
        loaders = (("secret_file", lambda data: [secret_key(data[:-1] if data.endswith(b"\n")
                                                            else data)]),
                   ("public_key_file", lambda data: [pem_key(data)]),
                   ("jwks_file", jwks_keys))
        for name, load in loaders:
            if config.get(name):
                try:
                    keys.extend(load(_read(config[name])))
                except (OSError, ValueError) as exc:
                    problems.add(f"config.{name}", str(exc))
        if not keys and not problems.found:
            problems.add("config", "no keys: give secret, secret_file, public_key_file or "
                                   "jwks_file")
        return keys

    def _check_keys_fit(self, problems: Problems) -> None:
        """Every configured algorithm has a key, every key an algorithm, secrets are long
        enough for the HMAC algorithms they may verify."""
        for alg in sorted(self.algorithms):
            if self.keys and not any(key.fits(alg, ALGORITHMS[alg]) for key in self.keys):
                problems.add("config.algorithms", f"{alg} is allowed but no key of the type "
                                                  f"it needs is configured")
        for key in self.keys:
            usable = [alg for alg in self.algorithms if key.fits(alg, ALGORITHMS[alg])]
            if not usable:
                problems.add("config.algorithms", f"the {key.describe()} fits none of the "
                                                  "allowed algorithms")
            for alg in usable:
                needed = ALGORITHMS[alg].min_secret
                if key.kty == "oct" and len(key.material) < needed:
                    problems.add("config", f"the {key.describe()} has {len(key.material)} "
                                           f"bytes; {alg} needs at least {needed}")

    # -- requests ------------------------------------------------------------------------
    def request_filter(self, ctx: Context) -> Reply | None:
        token = self._token(ctx)
        if token is None:
            return self.missing
        try:
            claims = self.verify(token, time.time())
            forwarded = [(header, _claim_text(claims[claim]))
                         for claim, header in self.forward if claim in claims]
        except TokenError as exc:
            return self._invalid(str(exc))
        if self.forward:
            headers = ctx.upstream_request.headers
            for _, header in self.forward:
                headers.remove(header)            # never trust the client's own copy
            for header, value in forwarded:
                headers.set(header, value)
        ctx.vars["jwt_claims"] = claims
        subject = claims.get("sub")
        ctx.consumer = subject if isinstance(subject, str) else None
        if self.hide_credentials:
            self._hide(ctx)
        return None

    def _token(self, ctx: Context) -> str | None:
        request = ctx.request
        if self.header_text is not None:
            value = request.header(self.header_text)
            if value is not None:
                scheme, _, rest = value.strip().partition(" ")
                if scheme.lower() == "bearer" and rest.strip():
                    return rest.strip()
                if self.header_text != "authorization" and value.strip():
                    return value.strip()
        if self.cookie is not None:
            value = _cookie(request.header("cookie"), self.cookie)
            if value:
                return value
        if self.query is not None:
            return request.query(self.query) or None
        return None

    def verify(self, text: str, now: float) -> dict[str, Any]:
        """The claims of a token that verifies and is valid at ``now``; TokenError if not."""
        token = parse(text, self.algorithms)
        if not self._signature_ok(token):
            raise TokenError("invalid signature")
        self._check_claims(token.claims, now)
        return token.claims

    def _signature_ok(self, token: Token) -> bool:
        algorithm = ALGORITHMS[token.alg]
        kid = token.kid
        candidates = [key for key in self.keys if key.fits(token.alg, algorithm)]
        if kid is not None and any(key.kid is not None for key in candidates):
            candidates = [key for key in candidates if key.kid == kid]
        return any(algorithm.verify(key.material, token.signing_input, token.signature)
                   for key in candidates)

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        for name in self.required:
            if name not in claims:
                raise TokenError(f"the {name} claim is missing")
        expires = _numeric(claims, "exp")
        if expires is not None and now >= expires + self.leeway:
            raise TokenError("the token has expired")
        not_before = _numeric(claims, "nbf")
        if not_before is not None and now < not_before - self.leeway:
            raise TokenError("the token is not valid yet")
        _numeric(claims, "iat")
        if self.issuers and claims.get("iss") not in self.issuers:
            raise TokenError("wrong issuer")
        if self.audiences:
            audience = claims.get("aud")
            given = [audience] if isinstance(audience, str) else audience
            if not isinstance(given, list) or not self.audiences.intersection(
                    a for a in given if isinstance(a, str)):
                raise TokenError("wrong audience")

    def _invalid(self, description: str) -> Reply:
        return Reply(401, _UNAUTHORIZED, [(
            "www-authenticate", f'Bearer realm="{self.realm}", error="invalid_token", '
                                f'error_description="{description}"')])

    def _hide(self, ctx: Context) -> None:
        upstream = ctx.upstream_request
        if self.header is not None:
            upstream.headers.remove(self.header)
        if self.query is not None:
            upstream.remove_query_param(self.query)
        if self.cookie is not None:
            cookies = [part.strip() for value in upstream.headers.get_all("cookie")
                       for part in value.split(";")]
            kept = [part for part in cookies if part and part.partition("=")[0] != self.cookie]
            upstream.headers.remove(b"cookie")
            if kept:
                upstream.headers.set(b"cookie", "; ".join(kept))


def _numeric(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TokenError(f"the {name} claim is not a number")
    return float(value)


def _claim_text(value: Any) -> str:
    """A claim as a header value: strings as they are, anything else as JSON; text outside
    printable ASCII percent-encoded."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                            ensure_ascii=False)
    if all(c in _CLAIM_SAFE for c in text):
        return text
    return quote(text, safe=_CLAIM_SAFE)


def _cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header, or None."""
    if not header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"') or None
    return None
