"""The security part of the configuration: clients, JWT, request limits, rate limits."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.access import SCOPES, RateLimit
from gateway.config.checker import Checker
from gateway.config.documents import MODES as DOCUMENT_MODES
from gateway.config.secret import Secret

CLIENT_KEYS = {
    "key_sha256",
    "scopes",
    "accounts",
    "requests_per_second",
    "burst",
    "trusted_documents",
}
CLIENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
JWT_KEYS = {
    "algorithms",
    "issuer",
    "audience",
    "secret",
    "jwks_file",
    "jwks_url",
    "scopes_claim",
    "accounts_claim",
    "name_claim",
    "leeway_seconds",
}
LIMIT_KEYS = {
    "max_depth",
    "max_aliases",
    "max_tokens",
    "max_body_bytes",
    "max_accounts",
    "max_variables_depth",
    "max_errors",
    "allow_get",
}
RATE_KEYS = {"requests_per_second", "burst"}
ALGORITHMS = ("HS256", "RS256", "ES256")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ClientConfig:
    name: str
    key_sha256: str
    scopes: frozenset[str]
    accounts: frozenset[str] | None
    rate_limit: RateLimit | None = None  # None: the configured default
    trusted_documents: str | None = None  # None: [trusted_documents] mode


@dataclass(frozen=True)
class JwtConfig:
    algorithms: tuple[str, ...]
    issuer: str
    audience: str
    secret: Secret | None = None  # HS256
    jwks_file: str | None = None  # RS256 / ES256
    jwks_url: str | None = None
    scopes_claim: str = "scope"
    accounts_claim: str = "accounts"
    name_claim: str = "sub"
    leeway_seconds: int = 30


@dataclass(frozen=True)
class RequestLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2000
    max_body_bytes: int = 256 * 1024
    max_accounts: int = 100
    max_variables_depth: int = 20
    max_errors: int = 5
    allow_get: bool = False


@dataclass(frozen=True)
class Security:
    clients: dict[str, ClientConfig] = field(default_factory=dict)
    jwt: JwtConfig | None = None
    limits: RequestLimits = field(default_factory=RequestLimits)
    rate_limit: RateLimit = field(default_factory=RateLimit)


def parse_security(
    check: Checker, data: Mapping[str, Any], account_ids: set[str], development: bool
) -> Security:
    rate_limit = _rate(check, check.table(data, "rate_limit", "rate_limit"), "rate_limit")
    clients = {
        name: client
        for name, raw in check.table(data, "clients", "clients").items()
        if (client := _client(check, name, raw, account_ids, rate_limit)) is not None
    }
    jwt = _jwt(check, check.table(data, "jwt", "jwt"), development) if "jwt" in data else None
    if not development and not clients and jwt is None:
        check.add(
            "clients",
            "the production profile needs at least one client or [jwt]",
            "create a key with `balance-gateway keys new` and paste its lines",
        )
    return Security(
        clients=clients,
        jwt=jwt,
        limits=_limits(check, check.table(data, "limits", "limits")),
        rate_limit=rate_limit,
    )


def _names(check: Checker, raw: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        check.add(f"{where}.{key}", "must be a list of strings", f'e.g. {key} = ["…"]')
        return []
    return list(value)


def _client(
    check: Checker, name: str, raw: Any, account_ids: set[str], default_rate: RateLimit
) -> ClientConfig | None:
    where = f"clients.{name}"
    if not isinstance(raw, dict):
        check.add(where, "must be a table", f"write it as [{where}]")
        return None
    start = len(check.problems)
    if not CLIENT_NAME.match(name):
        check.add(
            where,
            "client names are lowercase letters, digits, - and _",
            "rename the table, e.g. [clients.ops-dashboard]",
        )
    check.unknown(raw, CLIENT_KEYS, where)
    digest = check.string(raw, "key_sha256", where)
    if not SHA256.match(digest):
        check.add(
            f"{where}.key_sha256",
            "must be the 64-hex-digit SHA-256 of the key",
            "use the line `balance-gateway keys new` printed",
        )
    scopes = _names(check, raw, "scopes", where)
    for scope in sorted(set(scopes) - set(SCOPES)):
        check.add(f"{where}.scopes", f"unknown scope {scope!r}", f"use {', '.join(SCOPES)}")
    accounts = _names(check, raw, "accounts", where)
    for account in sorted(set(accounts) - account_ids - {"*"}):
        check.add(
            f"{where}.accounts", f"no account {account!r}", 'name configured accounts, or "*"'
        )
    documents = None
    if "trusted_documents" in raw:
        documents = check.choice(raw, "trusted_documents", where, DOCUMENT_MODES)
    if len(check.problems) > start:
        return None
    return ClientConfig(
        name=name,
        key_sha256=digest.lower(),
        scopes=frozenset(scopes),
        accounts=None if "*" in accounts else frozenset(accounts),
        rate_limit=_rate(check, raw, where, default_rate) if RATE_KEYS & set(raw) else None,
        trusted_documents=documents,
    )


def _jwt(check: Checker, raw: Mapping[str, Any], development: bool) -> JwtConfig | None:
    start = len(check.problems)
    check.unknown(raw, JWT_KEYS, "jwt")
    algorithms = _names(check, raw, "algorithms", "jwt")
    if not algorithms or not set(algorithms) <= set(ALGORITHMS):
        check.add("jwt.algorithms", "must list HS256, or RS256/ES256", 'algorithms = ["RS256"]')
    symmetric = any(a.startswith("HS") for a in algorithms)
    if symmetric and len(algorithms) > 1:  # one key must never verify both kinds
        check.add(
            "jwt.algorithms",
            "HS256 cannot be mixed with RS256/ES256",
            "use a shared secret (HS256) or a JWKS (RS256/ES256), not both",
        )
    secret = check.secret(raw["secret"], "jwt.secret", development) if "secret" in raw else None
    jwks_file = check.string(raw, "jwks_file", "jwt") or None
    if jwks_file is not None:
        jwks_file = str(check.path(jwks_file))
    jwks_url = check.string(raw, "jwks_url", "jwt") or None
    if symmetric and secret is None:
        check.add("jwt.secret", "HS256 needs a shared secret", 'secret = "env:JWT_SECRET"')
    if not symmetric and not (jwks_file or jwks_url):
        check.add("jwt", "RS256/ES256 need jwks_file or jwks_url", 'jwks_file = "/etc/…/jwks.json"')
    issuer, audience = check.string(raw, "issuer", "jwt"), check.string(raw, "audience", "jwt")
    if not issuer or not audience:
        check.add(
            "jwt",
            "issuer and audience are required (and checked on every token)",
            'issuer = "https://idp.example"\naudience = "balance-gateway"',
        )
    if len(check.problems) > start:
        return None
    return JwtConfig(
        algorithms=tuple(algorithms),
        issuer=issuer,
        audience=audience,
        secret=secret,
        jwks_file=jwks_file,
        jwks_url=jwks_url,
        scopes_claim=check.string(raw, "scopes_claim", "jwt", "scope"),
        accounts_claim=check.string(raw, "accounts_claim", "jwt", "accounts"),
        name_claim=check.string(raw, "name_claim", "jwt", "sub"),
        leeway_seconds=check.whole(raw, "leeway_seconds", "jwt", 30, 600) or 30,
    )


def _limits(check: Checker, raw: Mapping[str, Any]) -> RequestLimits:
    check.unknown(raw, LIMIT_KEYS, "limits")
    d = RequestLimits()

    def whole(key: str, default: int, high: int) -> int:
        return check.whole(raw, key, "limits", default, high) or default

    allow_get = raw.get("allow_get", d.allow_get)
    if not isinstance(allow_get, bool):
        check.add("limits.allow_get", "must be true or false", "allow_get = false")
        allow_get = d.allow_get
    return RequestLimits(
        max_depth=whole("max_depth", d.max_depth, 100),
        max_aliases=whole("max_aliases", d.max_aliases, 10_000),
        max_tokens=whole("max_tokens", d.max_tokens, 100_000),
        max_body_bytes=whole("max_body_bytes", d.max_body_bytes, 16 << 20),
        max_accounts=whole("max_accounts", d.max_accounts, 10_000),
        max_variables_depth=whole("max_variables_depth", d.max_variables_depth, 100),
        max_errors=whole("max_errors", d.max_errors, 100),
        allow_get=allow_get,
    )


def _rate(
    check: Checker, raw: Mapping[str, Any], where: str, default: RateLimit | None = None
) -> RateLimit:
    """`[rate_limit]`, or a client's own `requests_per_second` / `burst` (either one alone
    keeps the other from `default`, the `[rate_limit]` section)."""
    if where == "rate_limit":
        check.unknown(raw, RATE_KEYS, where)
    d = default or RateLimit()
    return RateLimit(
        requests_per_second=check.number(
            raw, "requests_per_second", where, d.requests_per_second, 100_000
        ),
        burst=check.whole(raw, "burst", where, d.burst, 1_000_000) or d.burst,
    )
