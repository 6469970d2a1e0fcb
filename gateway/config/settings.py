"""Typed settings from a TOML file plus the environment.

`parse_settings(mapping, env, providers=…)` is pure: it checks everything, collects every
problem (each with its location and a fix) and raises one `ConfigError` listing them all.
Secrets are references — `env:NAME` or `file:/path` — resolved here and wrapped in
`Secret`; an inline value is accepted only under the development profile (demo configs).
What an account may say depends on its provider kind: the caller passes `providers`, the
rules of each kind (`provider_rules.py`), so the configuration imports no provider.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config.accounts import AccountConfig
from gateway.config.checker import Checker
from gateway.config.documents import TrustedDocumentsSettings, parse_documents
from gateway.config.operations import (
    LoggingSettings,
    MetricsSettings,
    TracingSettings,
    parse_logging,
    parse_metrics,
    parse_tracing,
)
from gateway.config.provider_rules import ProviderLookup, ProviderRules
from gateway.config.secret import Secret
from gateway.config.security import Security, parse_security
from gateway.config.webhook_secret import FORMAT as WEBHOOK_SECRET_FORMAT
from gateway.config.webhook_secret import webhook_key
from gateway.domain import (
    COUNTRIES,
    Capability,
    Money,
    ProviderKind,
    ThresholdRule,
    Thresholds,
    fits,
    is_known_currency,
)
from gateway.errors import ConfigError, Problem

PROFILES = ("production", "development")
# `base_url = "simulator:/magma"` (development only): the built-in simulator, wherever it
# listens — `serve --simulator-port N` moves it (default 8001, as `simulate` listens).
SIMULATOR_SCHEME = "simulator:"
SIMULATOR_PORT = 8001
ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TOP_LEVEL = {
    "server",
    "cache",
    "upstream",
    "idempotency",
    "accounts",
    "clients",
    "jwt",
    "limits",
    "rate_limit",
    "logging",
    "metrics",
    "tracing",
    "trusted_documents",
    "live",
    "history",
    "webhooks",
}
SERVER_KEYS = {
    "profile",
    "cors_origins",
    "request_deadline_seconds",
    "cursor_secret",
    "max_header_bytes",
    "header_timeout_seconds",
    "keep_alive_seconds",
    "body_timeout_seconds",
    "max_concurrent_requests",
    "max_queued_requests",
    "queue_timeout_seconds",
    "admission",
    "admission_target_delay_seconds",
    "min_concurrent_requests",
    "reserved_for_mutations",
    "write_timeout_seconds",
    "stream_buffer_bytes",
    "drain_seconds",
    "shutdown_timeout_seconds",
    "workers",
}
CACHE_KEYS = {
    "url",
    "fresh_seconds",
    "stale_seconds",
    "namespace",
    "fill_wait_seconds",
    "response_cache",
    "transactions_fresh_seconds",
}
UPSTREAM_KEYS = {
    "max_attempts",
    "backoff_base_seconds",
    "backoff_max_seconds",
    "breaker_failures",
    "breaker_cooldown_seconds",
    "max_concurrency",
    "max_body_bytes",
}
ACCOUNT_KEYS = {
    "provider",
    "base_url",
    "label",
    "currency",
    "country",
    "timezone",
    "timeout_seconds",
    "fresh_seconds",
    "stale_seconds",
    "calls_per_minute",
    "calls_per_day",
    "topup_status",
    "topup_max_amount",
    "history_days",
    "history_window_days",
    "thresholds",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
THRESHOLD_KEYS = {"asset", "balance", "currency", "warning", "critical", "hysteresis"}
AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")
CREDENTIAL_KEYS = {"api_key", "private_key", "secret_key", "public_key"}


@dataclass(frozen=True)
class ServerSettings:
    profile: str = "production"
    cors_origins: tuple[str, ...] = ()
    request_deadline_seconds: float = 8.0
    cursor_secret: Secret | None = None
    # What one connection may cost before the gateway reads a request (_compat/uvicorn.py):
    max_header_bytes: int = 32 * 1024  # a request line and headers, JWTs included
    header_timeout_seconds: float = 10.0  # to receive a request's head, idle or trickling
    keep_alive_seconds: float = 5.0  # an idle kept-alive connection is closed after this
    body_timeout_seconds: float = 30.0  # to receive a body (256 KiB at 70 kbit/s)
    # Admission (gateway/server/admission.py): GraphQL requests running at once — a limit
    # that follows the event loop's delay ("adaptive") between `min_concurrent_requests`
    # and the ceiling `max_concurrent_requests`, or the ceiling alone ("fixed") — a share
    # of it only mutations may use, how many wait and how long; beyond, a 503 at once.
    max_concurrent_requests: int = 256
    max_queued_requests: int = 256
    queue_timeout_seconds: float = 0.0
    admission: str = "adaptive"
    admission_target_delay_seconds: float = 0.010
    min_concurrent_requests: int = 8
    reserved_for_mutations: float = 0.1
    # A response (an event stream above all) whose reader stops: dropped after a write has
    # waited `write_timeout_seconds`, with about `stream_buffer_bytes` queued in the process
    # and as much in the kernel for one stream at most.
    write_timeout_seconds: float = 10.0
    stream_buffer_bytes: int = 64 * 1024
    # SIGTERM: readiness turns 503 at once and requests are still served for `drain_seconds`
    # (load balancers need that long to notice); then the listener closes and in-flight
    # requests get `shutdown_timeout_seconds`. Together below Kubernetes' 30 s grace.
    drain_seconds: float = 5.0
    shutdown_timeout_seconds: float = 20.0
    workers: int = 1  # processes sharing the port (`serve --workers N` overrides)

    @property
    def development(self) -> bool:
        return self.profile == "development"


@dataclass(frozen=True)
class CacheSettings:
    url: str = "memory://"
    fresh_seconds: float = 15.0
    stale_seconds: float = 300.0
    namespace: str = "balance-gateway"
    fill_wait_seconds: float = 2.0
    response_cache: bool = True
    transactions_fresh_seconds: float = 5.0


@dataclass(frozen=True)
class UpstreamSettings:
    max_attempts: int = 3
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 2.0
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 30.0
    max_concurrency: int = 8
    max_body_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class IdempotencySettings:
    url: str = "sqlite:///balance-gateway.db"
    wait_seconds: float = 2.0
    lease_seconds: float = 30.0
    pool_size: int = 10  # PostgreSQL connections per process
    password: Secret | None = None  # PostgreSQL's, kept out of the URL (env: or file:)


@dataclass(frozen=True)
class LiveSettings:
    """`[live]`: balance subscriptions over Server-Sent Events."""

    max_streams: int = 1000  # open at once in one process
    max_streams_per_client: int = 20
    heartbeat_seconds: float = 15.0  # a comment after this long without an event


@dataclass(frozen=True)
class HistorySettings:
    """`[history]`: balances kept in the journal's database (history and runway)."""

    enabled: bool = True
    every_seconds: int = 300  # one stored point per balance per bucket of this many seconds
    retention_days: int = 90
    # Development only (the demo): a balance read for the first time gets this many days of
    # made-up hourly past, marked synthetic, so the history line and runway show at once.
    demo_past_days: int = 0


@dataclass(frozen=True)
class WebhookSettings:
    """`[webhooks.NAME]`: where balance-level events are POSTed, signed with `secret`."""

    name: str
    url: str
    secret: Secret


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    idempotency: IdempotencySettings = field(default_factory=IdempotencySettings)
    accounts: dict[str, AccountConfig] = field(default_factory=dict)
    security: Security = field(default_factory=Security)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    documents: TrustedDocumentsSettings = field(default_factory=TrustedDocumentsSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    webhooks: tuple[WebhookSettings, ...] = ()


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


def load_settings(
    path: str,
    env: Mapping[str, str] | None = None,
    simulator_port: int = SIMULATOR_PORT,
    *,
    providers: ProviderLookup,
) -> Settings:
    """The file at `path`; relative paths in it are relative to its folder."""
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            [Problem(path, f"cannot read: {exc.strerror}", "check the path")]
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(path, f"not valid TOML: {exc}", "fix the syntax")]) from None
    return parse_settings(
        data, env, Path(path).resolve().parent, simulator_port, providers=providers
    )


def parse_settings(
    data: Mapping[str, Any],
    env: Mapping[str, str],
    base: Path | None = None,
    simulator_port: int = SIMULATOR_PORT,
    *,
    providers: ProviderLookup,
) -> Settings:
    """`base` is the folder relative paths start from (the config file's); `providers`
    gives each provider kind's rules (the composition root passes the registry's)."""
    check = Checker(env, base)
    check.unknown(data, TOP_LEVEL, "")
    server = _server(check, check.table(data, "server", "server"))
    cache = _cache(check, check.table(data, "cache", "cache"))
    upstream = _upstream(check, check.table(data, "upstream", "upstream"))
    idempotency = _idempotency(
        check, check.table(data, "idempotency", "idempotency"), server.development
    )
    accounts: dict[str, AccountConfig] = {}
    simulator = f"http://127.0.0.1:{simulator_port}"
    for account_id, raw in check.table(data, "accounts", "accounts").items():
        account = _account(check, account_id, raw, server.development, cache, simulator, providers)
        if account is not None:
            accounts[account_id] = account
    if not data.get("accounts"):
        check.add("accounts", "no accounts configured", "add at least one [accounts.NAME] table")
    account_ids = set(check.table(data, "accounts", "accounts"))
    security = parse_security(check, data, account_ids, server.development)
    logging = parse_logging(check, check.table(data, "logging", "logging"))
    metrics = parse_metrics(check, check.table(data, "metrics", "metrics"))
    tracing = parse_tracing(check, check.table(data, "tracing", "tracing"))
    documents = parse_documents(check, check.table(data, "trusted_documents", "trusted_documents"))
    live = _live(check, check.table(data, "live", "live"))
    history = _history(check, check.table(data, "history", "history"), server.development)
    webhooks = _webhooks(check, check.table(data, "webhooks", "webhooks"), server.development)
    if check.problems:
        raise ConfigError(check.problems)
    return Settings(
        server=server,
        cache=cache,
        upstream=upstream,
        idempotency=idempotency,
        accounts=accounts,
        security=security,
        logging=logging,
        metrics=metrics,
        tracing=tracing,
        documents=documents,
        live=live,
        history=history,
        webhooks=webhooks,
    )


def _server(check: Checker, raw: Mapping[str, Any]) -> ServerSettings:
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
    return ServerSettings(
        profile=profile,
        cors_origins=tuple(origins),
        request_deadline_seconds=check.number(raw, "request_deadline_seconds", "server", 8.0, 120),
        cursor_secret=_cursor_secret(check, raw, profile == "development"),
        max_header_bytes=check.whole(raw, "max_header_bytes", "server", 32 * 1024, 1 << 20)
        or 32 * 1024,
        header_timeout_seconds=check.number(raw, "header_timeout_seconds", "server", 10.0, 300),
        keep_alive_seconds=check.number(raw, "keep_alive_seconds", "server", 5.0, 300),
        body_timeout_seconds=check.number(raw, "body_timeout_seconds", "server", 30.0, 600),
        max_concurrent_requests=check.whole(raw, "max_concurrent_requests", "server", 256, 100_000)
        or 256,
        max_queued_requests=_queued(check, raw),
        queue_timeout_seconds=check.number(
            raw, "queue_timeout_seconds", "server", 0.0, 60, zero=True
        ),
        admission=check.choice(raw, "admission", "server", ("adaptive", "fixed")),
        admission_target_delay_seconds=check.number(
            raw, "admission_target_delay_seconds", "server", 0.010, 1.0
        ),
        min_concurrent_requests=_floor(check, raw),
        reserved_for_mutations=check.number(
            raw, "reserved_for_mutations", "server", 0.1, 0.5, zero=True
        ),
        write_timeout_seconds=check.number(raw, "write_timeout_seconds", "server", 10.0, 600),
        stream_buffer_bytes=check.whole(raw, "stream_buffer_bytes", "server", 64 * 1024, 1 << 24)
        or 64 * 1024,
        drain_seconds=check.number(raw, "drain_seconds", "server", 5.0, 300, zero=True),
        shutdown_timeout_seconds=check.number(raw, "shutdown_timeout_seconds", "server", 20.0, 600),
        workers=check.whole(raw, "workers", "server", 1, 64) or 1,
    )


def _floor(check: Checker, raw: Mapping[str, Any]) -> int:
    """The adaptive limit's floor: under the ceiling."""
    floor = check.whole(raw, "min_concurrent_requests", "server", 8, 100_000) or 8
    ceiling = raw.get("max_concurrent_requests", 256)
    if "min_concurrent_requests" in raw and isinstance(ceiling, int) and floor > ceiling:
        check.add(
            "server.min_concurrent_requests",
            f"must be at most max_concurrent_requests ({ceiling})",
            "lower it, or raise max_concurrent_requests",
        )
    return floor


def _queued(check: Checker, raw: Mapping[str, Any]) -> int:
    """0 is allowed: no queue, shed as soon as every slot is taken."""
    if raw.get("max_queued_requests") == 0:
        return 0
    return check.whole(raw, "max_queued_requests", "server", 256, 100_000) or 256


def _cursor_secret(check: Checker, raw: Mapping[str, Any], development: bool) -> Secret | None:
    if "cursor_secret" not in raw:
        if not development:
            check.add(
                "server.cursor_secret",
                "production needs a cursor secret shared by replicas",
                'cursor_secret = "env:GATEWAY_CURSOR_SECRET" (32+ random bytes)',
            )
        return None
    secret = check.secret(raw["cursor_secret"], "server.cursor_secret", development)
    if secret is not None and len(secret.reveal()) < 16:
        check.add("server.cursor_secret", "too short to sign anything", "use 32+ random bytes")
    return secret


def _cache(check: Checker, raw: Mapping[str, Any]) -> CacheSettings:
    check.unknown(raw, CACHE_KEYS, "cache")
    default = CacheSettings()
    url = check.string(raw, "url", "cache", default.url)
    if urlsplit(url).scheme not in ("memory", "redis", "rediss"):
        check.add(
            "cache.url",
            f"unsupported cache URL {url!r}",
            'use "memory://" or "redis://host:6379/0"',
        )
        url = default.url
    namespace = check.string(raw, "namespace", "cache", default.namespace)
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", namespace):
        check.add(
            "cache.namespace",
            "must be 1-64 letters, digits or _ . : -",
            'e.g. namespace = "balance-gateway"',
        )
        namespace = default.namespace
    response_cache = raw.get("response_cache", default.response_cache)
    if not isinstance(response_cache, bool):
        check.add("cache.response_cache", "must be true or false", "response_cache = true")
        response_cache = default.response_cache
    return CacheSettings(
        url=url,
        fresh_seconds=check.number(raw, "fresh_seconds", "cache", 15.0, 86_400, zero=True),
        stale_seconds=check.number(raw, "stale_seconds", "cache", 300.0, 7 * 86_400, zero=True),
        namespace=namespace,
        fill_wait_seconds=check.number(raw, "fill_wait_seconds", "cache", 2.0, 30),
        response_cache=response_cache,
        transactions_fresh_seconds=check.number(
            raw, "transactions_fresh_seconds", "cache", 5.0, 3600, zero=True
        ),
    )


def _idempotency(check: Checker, raw: Mapping[str, Any], development: bool) -> IdempotencySettings:
    check.unknown(
        raw, {"url", "wait_seconds", "lease_seconds", "pool_size", "password"}, "idempotency"
    )
    d = IdempotencySettings()
    url = check.string(raw, "url", "idempotency", d.url)
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "postgresql", "postgres") or (
        scheme == "sqlite" and not url.startswith("sqlite:///")
    ):
        check.add(
            "idempotency.url",
            f"unsupported URL {url!r}",
            'use "sqlite:///relative.db", "sqlite:////absolute.db" or "postgresql://…"',
        )
        url = d.url
    if scheme == "sqlite":
        url = f"sqlite:///{check.path(url[len('sqlite:///') :])}"
    password = None
    if "password" in raw:
        password = check.secret(raw["password"], "idempotency.password", development)
        if scheme == "sqlite":
            check.add(
                "idempotency.password",
                "a SQLite journal has no password",
                "remove it, or use a postgresql:// url",
            )
    return IdempotencySettings(
        url=url,
        wait_seconds=check.number(raw, "wait_seconds", "idempotency", d.wait_seconds, 60),
        lease_seconds=check.number(raw, "lease_seconds", "idempotency", d.lease_seconds, 3600),
        pool_size=check.whole(raw, "pool_size", "idempotency", d.pool_size, 100) or d.pool_size,
        password=password,
    )


def _live(check: Checker, raw: Mapping[str, Any]) -> LiveSettings:
    check.unknown(raw, {"max_streams", "max_streams_per_client", "heartbeat_seconds"}, "live")
    d = LiveSettings()
    return LiveSettings(
        max_streams=check.whole(raw, "max_streams", "live", d.max_streams, 100_000)
        or d.max_streams,
        max_streams_per_client=check.whole(
            raw, "max_streams_per_client", "live", d.max_streams_per_client, 10_000
        )
        or d.max_streams_per_client,
        heartbeat_seconds=check.number(raw, "heartbeat_seconds", "live", d.heartbeat_seconds, 300),
    )


def _webhooks(
    check: Checker, raw: Mapping[str, Any], development: bool
) -> tuple[WebhookSettings, ...]:
    found = []
    for name, entry in raw.items():
        where = f"webhooks.{name}"
        if not isinstance(entry, dict):
            check.add(where, "must be a table", f"write it as [{where}]")
            continue
        check.unknown(entry, {"url", "secret"}, where)
        url = check.string(entry, "url", where)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            check.add(f"{where}.url", "must be an http(s) URL", 'url = "https://example.com/hooks"')
        elif parts.scheme == "http" and not development and parts.hostname not in LOOPBACK:
            check.add(f"{where}.url", "events leave the host: use https", "an https:// URL")
        secret = check.secret(entry.get("secret"), f"{where}.secret", development)
        if secret is not None and not _webhook_secret(check, secret, f"{where}.secret"):
            secret = None
        if secret is not None:
            found.append(WebhookSettings(name, url, secret))
    return tuple(found)


def _webhook_secret(check: Checker, secret: Secret, where: str) -> bool:
    """A Standard Webhooks secret (`whsec_…`), or a problem naming the command that makes
    one (the secret itself is never shown)."""
    try:
        webhook_key(secret.reveal())
    except ValueError as exc:
        check.add(
            where,
            f"not a Standard Webhooks secret ({WEBHOOK_SECRET_FORMAT}): {exc}",
            "generate one: balance-gateway webhooks secret",
        )
        return False
    return True


def _history(check: Checker, raw: Mapping[str, Any], development: bool) -> HistorySettings:
    check.unknown(raw, {"enabled", "every_seconds", "retention_days", "demo_past_days"}, "history")
    demo_past = check.whole(raw, "demo_past_days", "history", None, 30) or 0
    if demo_past and not development:
        check.add(
            "history.demo_past_days",
            "a made-up past is for the development profile's demo only",
            "remove demo_past_days",
        )
    d = HistorySettings()
    enabled = raw.get("enabled", d.enabled)
    if not isinstance(enabled, bool):
        check.add("history.enabled", "must be true or false", "enabled = true")
        enabled = d.enabled
    every = check.whole(raw, "every_seconds", "history", d.every_seconds, 86_400)
    if every is not None and every < 10:
        check.add("history.every_seconds", "at least 10 seconds", "every_seconds = 300")
    return HistorySettings(
        enabled=enabled,
        every_seconds=every or d.every_seconds,
        retention_days=check.whole(raw, "retention_days", "history", d.retention_days, 3650)
        or d.retention_days,
        demo_past_days=demo_past,
    )


def _upstream(check: Checker, raw: Mapping[str, Any]) -> UpstreamSettings:
    check.unknown(raw, UPSTREAM_KEYS, "upstream")
    d = UpstreamSettings()
    where = "upstream"
    return UpstreamSettings(
        max_attempts=check.whole(raw, "max_attempts", where, d.max_attempts, 10) or 1,
        backoff_base_seconds=check.number(raw, "backoff_base_seconds", where, 0.1, 10),
        backoff_max_seconds=check.number(raw, "backoff_max_seconds", where, 2.0, 60),
        breaker_failures=check.whole(raw, "breaker_failures", where, d.breaker_failures, 1000)
        or d.breaker_failures,
        breaker_cooldown_seconds=check.number(raw, "breaker_cooldown_seconds", where, 30.0, 3600),
        max_concurrency=check.whole(raw, "max_concurrency", where, d.max_concurrency, 1000)
        or d.max_concurrency,
        max_body_bytes=check.whole(raw, "max_body_bytes", where, d.max_body_bytes, 64 << 20)
        or d.max_body_bytes,
    )


def _account(
    check: Checker,
    account_id: str,
    raw: Any,
    development: bool,
    cache: CacheSettings,
    simulator: str,
    providers: ProviderLookup,
) -> AccountConfig | None:
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
        spec = providers(ProviderKind(kind_name).value)
    except (ValueError, KeyError):
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
    if base_url.startswith(SIMULATOR_SCHEME):
        if not development:
            check.add(
                f"{where}.base_url",
                "the built-in simulator is for the development profile only",
                "point base_url at the provider",
            )
        base_url = simulator + "/" + base_url[len(SIMULATOR_SCHEME) :].lstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        check.add(
            f"{where}.base_url",
            "must be an http(s) URL without a query",
            'e.g. base_url = "https://api.example.com"',
        )
    currency = _currency(check, raw, where, spec.default_currency, kind_name)
    if currency is None and Capability.TOP_UP in spec.capabilities:
        check.add(
            f"{where}.currency", f"{kind_name} tops up in one currency", 'e.g. currency = "XOF"'
        )
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
    fresh = check.number(raw, "fresh_seconds", where, cache.fresh_seconds, 86_400, zero=True)
    stale = check.number(raw, "stale_seconds", where, cache.stale_seconds, 7 * 86_400, zero=True)
    per_minute = check.whole(raw, "calls_per_minute", where, spec.calls_per_minute, 1_000_000)
    per_day = check.whole(raw, "calls_per_day", where, spec.calls_per_day, 100_000_000)
    topup_status, topup_max = _topup(check, raw, where, Capability.TOP_UP in spec.capabilities)
    thresholds = _thresholds(check, raw.get("thresholds", []), where, account_id, currency, spec)
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
        fresh_seconds=fresh,
        stale_seconds=stale,
        calls_per_minute=per_minute,
        calls_per_day=per_day,
        topup_status=topup_status,
        topup_max_amount=topup_max,
        history_days=check.whole(raw, "history_days", where, 7, 366) or 7,
        history_window_days=check.whole(raw, "history_window_days", where, 31, 366) or 31,
        thresholds=thresholds,
    )


def _thresholds(
    check: Checker,
    raw: Any,
    where: str,
    account_id: str,
    account_currency: str | None,
    spec: ProviderRules,
) -> tuple[ThresholdRule, ...]:
    """`[[accounts.ID.thresholds]]`: each names one `asset` (its code) or one `balance` (its
    id, `<account>:<key>`), its `currency`, a `warning` and/or `critical` amount, and an
    optional `hysteresis` (the margin above a threshold before an alert clears)."""
    example = 'e.g. { asset = "XOF", currency = "XOF", warning = "100000", critical = "20000" }'
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        check.add(f"{where}.thresholds", "must be a list of tables", example)
        return ()
    rules: list[ThresholdRule] = []
    named: set[tuple[str, str]] = set()
    for index, entry in enumerate(raw):
        at = f"{where}.thresholds[{index}]"
        start = len(check.problems)
        check.unknown(entry, THRESHOLD_KEYS, at)
        asset, balance = entry.get("asset"), entry.get("balance")
        if (asset is None) == (balance is None) or not isinstance(asset or balance, str):
            check.add(at, "names one asset or one balance", 'asset = "XOF" or balance = "ID:KEY"')
            continue
        target = ("asset", asset) if asset is not None else ("balance", balance)
        if balance is not None and not balance.startswith(f"{account_id}:"):
            check.add(
                f"{at}.balance",
                f"unknown balance id {balance!r}: this account's ids start with {account_id}:",
                "copy the id from a Balance the gateway answers",
            )
        if target in named:
            check.add(at, f"a second rule for {target[0]} {target[1]!r}", "keep one")
        named.add(target)
        currency = check.string(entry, "currency", at)
        if not currency:
            check.add(f"{at}.currency", "the amounts' currency is missing", 'currency = "XOF"')
        elif not is_known_currency(currency):
            check.add(f"{at}.currency", f"unknown currency {currency!r}", "e.g. currency = XOF")
        elif account_currency is not None and currency != account_currency:
            check.add(
                f"{at}.currency",
                f"wrong currency {currency!r}: this account's balances are in {account_currency}",
                f'currency = "{account_currency}"',
            )
        else:
            _check_documented_currency(check, f"{at}.currency", currency, spec, target, account_id)
        levels = {
            name: amount
            for name in ("warning", "critical")
            if (amount := _amount(check, entry, at, name)) is not None
        }
        hysteresis = _amount(check, entry, at, "hysteresis")
        if not levels and len(check.problems) == start:
            check.add(at, "sets neither warning nor critical", 'warning = "100000"')
        warning, critical = levels.get("warning"), levels.get("critical")
        if warning is not None and critical is not None and warning <= critical:
            check.add(
                f"{at}.warning",
                f"warning {warning} is not above critical {critical}",
                "warning is the higher level: it comes first as a balance falls",
            )
        if len(check.problems) > start:
            continue
        thresholds = Thresholds(
            Money(warning, currency) if warning is not None else None,
            Money(critical, currency) if critical is not None else None,
            Money(hysteresis, currency) if hysteresis is not None else None,
        )
        rules.append(ThresholdRule(thresholds, asset=asset, balance=balance))
    return tuple(rules)


def _amount(check: Checker, entry: Mapping[str, Any], at: str, name: str) -> Decimal | None:
    """An amount of a threshold rule (absent: None): an exact string within the money
    domain, not negative (a whole number may be a plain integer)."""
    value = entry.get(name)
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and text.startswith("-"):
        check.add(f"{at}.{name}", f"negative: {name} is 0 or more", f'{name} = "100"')
        return None
    if not isinstance(text, str) or not AMOUNT.fullmatch(text) or not fits(Decimal(text)):
        check.add(f"{at}.{name}", "must be an amount, written as a string", '"100000.50"')
        return None
    return Decimal(text)


def _expected_currency(spec: ProviderRules, target: tuple[str, str], account_id: str) -> str | None:
    """The currency the provider's documentation gives the balances a rule names (by its
    asset code, or by its balance id's key), or None when the spec cannot say."""
    kind, name = target
    if kind == "asset":
        derive, code = spec.asset_currency, name
    elif name.startswith(f"{account_id}:"):
        derive, code = spec.balance_currency, name[len(account_id) + 1 :]
    else:
        return None  # another account's id: a problem of its own
    found = derive(code) if derive is not None else None
    return found if is_known_currency(found) else None


def _check_documented_currency(
    check: Checker,
    at: str,
    currency: str,
    spec: ProviderRules,
    target: tuple[str, str],
    account_id: str,
) -> None:
    """For a provider that states currencies itself (Magma OnePay, Muda), a rule's
    `currency` must be the one its balances are documented to be in: any other can never
    match, and its level would stay null forever."""
    expected = _expected_currency(spec, target, account_id)
    if expected is None or currency == expected:
        return
    kind, name = target
    whose = f"balances of asset {name} are" if kind == "asset" else f"balance {name!r} is"
    check.add(at, f"wrong currency {currency!r}: {whose} in {expected}", f'currency = "{expected}"')


def _topup(
    check: Checker, raw: Mapping[str, Any], where: str, can_top_up: bool
) -> tuple[str, Decimal]:
    status, maximum = "completed", Decimal("10000000")
    if not can_top_up:
        for key in ("topup_status", "topup_max_amount"):
            if key in raw:
                check.add(f"{where}.{key}", "this provider has no top-up", f"remove {key}")
        return status, maximum
    status = check.string(raw, "topup_status", where, status) or status
    value = raw.get("topup_max_amount", maximum)
    try:
        parsed = Decimal(str(value))
    except ArithmeticError:
        parsed = Decimal(0)
    if isinstance(value, bool) or not parsed.is_finite() or parsed <= 0:
        check.add(f"{where}.topup_max_amount", "must be a positive number", "e.g. 1000000")
        return status, maximum
    return status, parsed


def _currency(
    check: Checker, raw: Mapping[str, Any], where: str, default: str | None, kind: str
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
