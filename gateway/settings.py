"""Typed settings from a TOML file plus the environment.

`parse_settings(mapping, env)` is pure: it checks everything, collects every problem (each
with its location and a fix) and raises one `ConfigError` listing them all. Secrets are
references — `env:NAME` or `file:/path` — resolved here and wrapped in `Secret`; an inline
value is accepted only under the development profile (demo configs).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.accounts import AccountConfig, Secret
from gateway.domain import COUNTRIES, ProviderKind, is_known_currency
from gateway.errors import ConfigError, Problem
from gateway.providers import PROVIDERS

PROFILES = ("production", "development")
ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SERVER_KEYS = {"profile", "cors_origins", "request_deadline_seconds", "max_upstream_body_bytes"}
ACCOUNT_KEYS = {
    "provider",
    "base_url",
    "label",
    "currency",
    "country",
    "timezone",
    "timeout_seconds",
}
CREDENTIAL_KEYS = {"api_key", "private_key", "secret_key", "public_key"}


@dataclass(frozen=True)
class ServerSettings:
    profile: str = "production"
    cors_origins: tuple[str, ...] = ()
    request_deadline_seconds: float = 8.0
    max_upstream_body_bytes: int = 1024 * 1024

    @property
    def development(self) -> bool:
        return self.profile == "development"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    accounts: dict[str, AccountConfig] = field(default_factory=dict)


def config_path(cli_value: str | None, env: Mapping[str, str]) -> str:
    path = cli_value or env.get("GATEWAY_CONFIG")
    if not path:
        raise ConfigError(
            [
                Problem(
                    "--config",
                    "no configuration file given",
                    "pass --config FILE or set GATEWAY_CONFIG",
                )
            ]
        )
    return path


def load_settings(path: str, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            [Problem(path, f"cannot read: {exc.strerror}", "check the path")]
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(path, f"not valid TOML: {exc}", "fix the syntax")]) from None
    return parse_settings(data, env)


class _Checker:
    """Collects problems while reading one mapping; typed getters return a default on error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def add(self, location: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(location, message, fix))

    def table(self, data: Mapping[str, Any], key: str, location: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.add(location, "must be a table", f"write it as [{location}]")
            return {}
        return value

    def unknown(self, data: Mapping[str, Any], allowed: set[str], location: str) -> None:
        for key in sorted(set(data) - allowed):
            self.add(
                f"{location}.{key}" if location else key,
                "unknown key",
                "remove it, or check the spelling against the README",
            )

    def string(self, data: Mapping[str, Any], key: str, location: str, default: str = "") -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            self.add(f"{location}.{key}", "must be a string", f'write {key} = "…"')
            return default
        return value

    def number(
        self, data: Mapping[str, Any], key: str, location: str, default: float, high: float
    ) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
            self.add(
                f"{location}.{key}",
                f"must be a number above 0 and at most {high}",
                f"for example {key} = {default}",
            )
            return default
        return float(value)

    def secret(self, value: Any, location: str, development: bool) -> Secret | None:
        if not isinstance(value, str) or not value:
            self.add(location, "must be a non-empty string", 'use "env:NAME" or "file:/path"')
            return None
        if value.startswith("env:"):
            name = value[4:]
            if name not in self.env or not self.env[name]:
                self.add(
                    location,
                    f"environment variable {name} is not set",
                    f"export {name}=… before starting",
                )
                return None
            return Secret(self.env[name])
        if value.startswith("file:"):
            try:
                return Secret(Path(value[5:]).read_text(encoding="utf-8").strip())
            except OSError as exc:
                self.add(
                    location,
                    f"cannot read the secret file: {exc.strerror}",
                    "check the path and its permissions",
                )
                return None
        if not development:
            self.add(
                location,
                "inline secrets are refused outside the development profile",
                'use "env:NAME" or "file:/path"',
            )
            return None
        return Secret(value)


def parse_settings(data: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    check = _Checker(env)
    check.unknown(data, {"server", "accounts"}, "")
    server = _server(check, check.table(data, "server", "server"))
    accounts: dict[str, AccountConfig] = {}
    for account_id, raw in check.table(data, "accounts", "accounts").items():
        account = _account(check, account_id, raw, server.development)
        if account is not None:
            accounts[account_id] = account
    if not data.get("accounts"):
        check.add("accounts", "no accounts configured", "add at least one [accounts.NAME] table")
    if check.problems:
        raise ConfigError(check.problems)
    return Settings(server=server, accounts=accounts)


def _server(check: _Checker, raw: Mapping[str, Any]) -> ServerSettings:
    check.unknown(raw, SERVER_KEYS, "server")
    profile = check.string(raw, "profile", "server", "production")
    if profile not in PROFILES:
        check.add(
            "server.profile", f"unknown profile {profile!r}", 'use "production" or "development"'
        )
        profile = "production"
    origins = raw.get("cors_origins", [])
    if not isinstance(origins, list) or not all(
        isinstance(o, str) and o != "*" and urlsplit(o).scheme in ("http", "https") for o in origins
    ):
        check.add(
            "server.cors_origins",
            'must be a list of origins like "https://app.example"',
            'name each origin exactly; "*" is not allowed',
        )
        origins = []
    body_cap = check.number(raw, "max_upstream_body_bytes", "server", 1024 * 1024, 64 * 1024 * 1024)
    return ServerSettings(
        profile=profile,
        cors_origins=tuple(origins),
        request_deadline_seconds=check.number(raw, "request_deadline_seconds", "server", 8.0, 120),
        max_upstream_body_bytes=int(body_cap),
    )


def _account(check: _Checker, account_id: str, raw: Any, development: bool) -> AccountConfig | None:
    where = f"accounts.{account_id}"
    if not ACCOUNT_ID.match(account_id):
        check.add(
            where,
            "account ids are lowercase letters, digits, - and _",
            "rename the table, e.g. [accounts.ourvoice-sn]",
        )
    if not isinstance(raw, dict):
        check.add(where, "must be a table", f"write it as [{where}]")
        return None
    start = len(check.problems)
    kind_name = check.string(raw, "provider", where)
    try:
        spec = PROVIDERS[ProviderKind(kind_name)]
    except ValueError:
        names = ", ".join(k.value for k in ProviderKind)
        check.add(f"{where}.provider", f"unknown provider {kind_name!r}", f"use one of: {names}")
        check.unknown(raw, ACCOUNT_KEYS | CREDENTIAL_KEYS, where)
        return None
    allowed_credentials = spec.required_credentials | spec.optional_credentials
    check.unknown(raw, ACCOUNT_KEYS | allowed_credentials, where)
    credentials: dict[str, Secret] = {}
    for name in sorted(allowed_credentials):
        if name in raw:
            secret = check.secret(raw[name], f"{where}.{name}", development)
            if secret is not None:
                credentials[name] = secret
        elif name in spec.required_credentials:
            check.add(f"{where}.{name}", f"{kind_name} needs {name}", f'add {name} = "env:NAME"')
    base_url = check.string(raw, "base_url", where)
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        check.add(
            f"{where}.base_url",
            "must be an http(s) URL without a query",
            'e.g. base_url = "https://api.example.com"',
        )
    currency = _currency(check, raw, where, spec.default_currency, kind_name)
    country = check.string(raw, "country", where) or None
    if country is not None and country not in COUNTRIES:
        check.add(
            f"{where}.country",
            f"unknown country {country!r}",
            "use an ISO 3166 alpha-2 code, e.g. SN",
        )
    zone_name = check.string(raw, "timezone", where, "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        check.add(f"{where}.timezone", f"unknown time zone {zone_name!r}", 'e.g. "Africa/Dakar"')
        zone = ZoneInfo("UTC")
    timeout = check.number(raw, "timeout_seconds", where, 10.0, 120)
    if len(check.problems) > start:
        return None
    return AccountConfig(
        id=account_id,
        provider=spec.kind,
        base_url=base_url,
        label=check.string(raw, "label", where) or account_id,
        capabilities=spec.capabilities,
        credentials=credentials,
        currency=currency,
        country=country,
        timezone=zone,
        timeout_seconds=timeout,
    )


def _currency(
    check: _Checker, raw: Mapping[str, Any], where: str, default: str | None, kind: str
) -> str | None:
    if "currency" not in raw:
        return default
    if default is None:
        check.add(
            f"{where}.currency",
            f"{kind} states the currency of every balance itself",
            "remove currency",
        )
        return None
    currency = check.string(raw, "currency", where)
    if not is_known_currency(currency):
        check.add(
            f"{where}.currency", f"unknown currency {currency!r}", "use an ISO 4217 code, e.g. XOF"
        )
        return None
    return currency
