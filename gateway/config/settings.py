"""Typed settings from a TOML file plus the environment.

`parse_settings(mapping, env, providers=…)` is pure: it checks everything, collects every
problem (each with its location and a fix) and raises one `ConfigError` listing them all.
Secrets are references — `env:NAME` or `file:/path` — resolved here and wrapped in
`Secret`; an inline value is accepted only under the development profile (demo configs).
What an account may say depends on its provider kind: the caller passes `providers`, the
rules of each kind (`provider_rules.py`), so the configuration imports no provider.

This module orchestrates and reads the small tables itself (`[server]`, `[cache]`,
`[upstream]`, `[idempotency]`, `[live]`, `[history]`, `[webhooks.NAME]`); the larger ones
have modules of their own: `[accounts.ID]` (accounts.py), `[clients]`, `[jwt]`, `[limits]`
and `[rate_limit]` (security.py), `[logging]`, `[metrics]`, `[tracing]` (operations.py)
and `[trusted_documents]` (documents.py).
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

from gateway.config.accounts import AccountConfig, parse_account
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
from gateway.config.provider_rules import ProviderLookup
from gateway.config.reporting import ReportingSettings, parse_reporting
from gateway.config.secret import Secret
from gateway.config.security import Security, parse_security
from gateway.config.tls import TLS_KEYS, TlsFiles, tls_files
from gateway.config.webhook_secret import FORMAT as WEBHOOK_SECRET_FORMAT
from gateway.config.webhook_secret import webhook_key
from gateway.errors import ConfigError, Problem

PROFILES = ("production", "development")
# The port the built-in simulator listens on (`simulate`), which `base_url =
# "simulator:/…"` points at unless `serve --simulator-port N` moves it.
SIMULATOR_PORT = 8001
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
    "daily_close",
    "webhooks",
    "reporting",
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
    "release_memory_after_connections",
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
    "refresh_join_seconds",
    "response_cache",
    "transactions_fresh_seconds",
    "username",
    "password",
    *TLS_KEYS,
}
IDEMPOTENCY_KEYS = {
    "url",
    "wait_seconds",
    "lease_seconds",
    "pool_size",
    "password",
    "sslmode",
    *TLS_KEYS,
}
# libpq's sslmode values, the strictest first (verify-full checks the host name as well)
SSLMODES = ("verify-full", "verify-ca", "require", "prefer", "allow", "disable")
UPSTREAM_KEYS = {
    "max_attempts",
    "backoff_base_seconds",
    "backoff_max_seconds",
    "breaker_failures",
    "breaker_cooldown_seconds",
    "max_concurrency",
    "max_body_bytes",
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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
    admission_target_delay_seconds: float = 0.020
    min_concurrent_requests: int = 8
    reserved_for_mutations: float = 0.1
    # A response (an event stream above all) whose reader stops: dropped after a write has
    # waited `write_timeout_seconds`, with about `stream_buffer_bytes` queued in the process
    # and as much in the kernel for one stream at most.
    write_timeout_seconds: float = 10.0
    stream_buffer_bytes: int = 64 * 1024
    # Once this many connections have closed since the most that were open and the count has
    # held for a tick, glibc's free memory is given back (server/memory_release.py); 0: never.
    release_memory_after_connections: int = 64
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
    # `refreshBalances` takes an answer read at most this long before it was asked: the
    # refreshes of one moment, on every replica, share one upstream read per account.
    refresh_join_seconds: int = 5
    response_cache: bool = True
    transactions_fresh_seconds: float = 5.0
    # Redis's ACL user and password (a reference: env: or file:), never in the URL; and
    # with rediss://, the CA and an optional client certificate.
    username: str | None = None
    password: Secret | None = None
    tls: TlsFiles = field(default_factory=TlsFiles)


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
    sslmode: str | None = None  # libpq's; None: the URL's, else libpq's default (prefer)
    # the CA for verify-ca/verify-full, a client certificate
    tls: TlsFiles = field(default_factory=TlsFiles)


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
class DailyCloseSettings:
    """`[daily_close]`: yesterday's close of every account computed in the background (the
    gauge, the `daily_close.unexplained` webhook event)."""

    watch: bool = False
    after_minutes: int = 15  # computed this long after each account's local midnight


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
    daily_close: DailyCloseSettings = field(default_factory=DailyCloseSettings)
    webhooks: tuple[WebhookSettings, ...] = ()
    reporting: ReportingSettings = field(default_factory=ReportingSettings)


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
    cache = _cache(check, check.table(data, "cache", "cache"), server.development)
    upstream = _upstream(check, check.table(data, "upstream", "upstream"))
    idempotency = _idempotency(
        check, check.table(data, "idempotency", "idempotency"), server.development
    )
    accounts: dict[str, AccountConfig] = {}
    simulator = f"http://127.0.0.1:{simulator_port}"
    for account_id, raw in check.table(data, "accounts", "accounts").items():
        account = parse_account(
            check,
            account_id,
            raw,
            providers=providers,
            development=server.development,
            fresh_seconds=cache.fresh_seconds,
            stale_seconds=cache.stale_seconds,
            simulator=simulator,
        )
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
    reporting = parse_reporting(check, check.table(data, "reporting", "reporting"))
    daily_close = _daily_close(check, check.table(data, "daily_close", "daily_close"), history)
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
        daily_close=daily_close,
        webhooks=webhooks,
        reporting=reporting,
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
        max_queued_requests=check.whole(
            raw, "max_queued_requests", "server", 256, 100_000, zero="no queue"
        )
        or 0,
        queue_timeout_seconds=check.number(
            raw, "queue_timeout_seconds", "server", 0.0, 60, zero=True
        ),
        admission=check.choice(raw, "admission", "server", ("adaptive", "fixed")),
        admission_target_delay_seconds=check.number(
            raw, "admission_target_delay_seconds", "server", 0.020, 1.0
        ),
        min_concurrent_requests=_floor(check, raw),
        reserved_for_mutations=check.number(
            raw, "reserved_for_mutations", "server", 0.1, 0.5, zero=True
        ),
        write_timeout_seconds=check.number(raw, "write_timeout_seconds", "server", 10.0, 600),
        stream_buffer_bytes=check.whole(raw, "stream_buffer_bytes", "server", 64 * 1024, 1 << 24)
        or 64 * 1024,
        release_memory_after_connections=check.whole(
            raw, "release_memory_after_connections", "server", 64, 1_000_000, zero="never"
        )
        or 0,
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


def _cache(check: Checker, raw: Mapping[str, Any], development: bool) -> CacheSettings:
    check.unknown(raw, CACHE_KEYS, "cache")
    default = CacheSettings()
    url = check.string(raw, "url", "cache", default.url)
    parts = urlsplit(url)
    if parts.scheme not in ("memory", "redis", "rediss"):
        check.add(  # never the URL itself: it may hold a password
            "cache.url",
            f"unsupported cache URL scheme {parts.scheme or '(none)'!r}",
            'use "memory://" or "redis://host:6379/0"',
        )
        url = default.url
    elif parts.username or parts.password or "@" in parts.netloc:
        check.add(
            "cache.url",
            "credentials in the URL would sit in the ConfigMap and every copy of it",
            'set [cache] username = "…" and password = "env:REDIS_PASSWORD" instead',
        )
        url = default.url
    elif parts.query or parts.fragment:
        check.add(
            "cache.url",
            "takes no query parameters (credentials, TLS and the rest are [cache] settings)",
            'e.g. url = "rediss://host:6380/0" with password = "env:REDIS_PASSWORD"',
        )
        url = default.url
    scheme = urlsplit(url).scheme  # the default's, when the URL given was refused
    username = None
    if "username" in raw:
        username = check.string(raw, "username", "cache") or None
    password = None
    if "password" in raw:
        password = check.secret(raw["password"], "cache.password", development)
    if scheme == "memory" and (username or "password" in raw):
        check.add("cache.password", "an in-process cache has no credentials", "use a redis url")
    tls = tls_files(check, raw, "cache")
    if tls.any and scheme != "rediss":
        check.add("cache.ca_file", "TLS files need a rediss:// url", 'url = "rediss://host:6380/0"')
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
        refresh_join_seconds=check.whole(raw, "refresh_join_seconds", "cache", 5, 3600) or 5,
        response_cache=response_cache,
        transactions_fresh_seconds=check.number(
            raw, "transactions_fresh_seconds", "cache", 5.0, 3600, zero=True
        ),
        username=username,
        password=password,
        tls=tls,
    )


def _idempotency(check: Checker, raw: Mapping[str, Any], development: bool) -> IdempotencySettings:
    check.unknown(raw, IDEMPOTENCY_KEYS, "idempotency")
    d = IdempotencySettings()
    url = check.string(raw, "url", "idempotency", d.url)
    scheme = urlsplit(url).scheme
    if scheme not in ("sqlite", "postgresql", "postgres") or (
        scheme == "sqlite" and not url.startswith("sqlite:///")
    ):
        check.add(  # never the URL itself: it may hold a password
            "idempotency.url",
            f"unsupported URL scheme {scheme or '(none)'!r}",
            'use "sqlite:///relative.db", "sqlite:////absolute.db" or "postgresql://…"',
        )
        url = d.url
    elif scheme != "sqlite":
        _postgres_url(check, url)
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
    sslmode = None
    if "sslmode" in raw:
        sslmode = check.choice(raw, "sslmode", "idempotency", SSLMODES)
    tls = tls_files(check, raw, "idempotency")
    if scheme == "sqlite" and (sslmode or tls.any):
        named = "sslmode" if sslmode else next(k for k in TLS_KEYS if k in raw)
        check.add(
            f"idempotency.{named}",
            "a SQLite journal is a local file: no TLS",
            "remove it, or use a postgresql:// url",
        )
    return IdempotencySettings(
        url=url,
        wait_seconds=check.number(raw, "wait_seconds", "idempotency", d.wait_seconds, 60),
        lease_seconds=check.number(raw, "lease_seconds", "idempotency", d.lease_seconds, 3600),
        pool_size=check.whole(raw, "pool_size", "idempotency", d.pool_size, 100) or d.pool_size,
        password=password,
        sslmode=sslmode,
        tls=tls,
    )


def _postgres_url(check: Checker, url: str) -> None:
    """A URL libpq can read, without a password in it (it would sit in the ConfigMap and
    in every copy of it). Never echoed: a problem names what is wrong, not the URL."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parsed = conninfo_to_dict(url)
    except ProgrammingError as exc:
        said = str(exc)
        if "percent-encoded" in said:
            what = "invalid percent-encoding"
        elif "invalid URI query parameter" in said:
            what = f"an unknown parameter {said.split(':', 1)[1].strip()}"
        else:
            what = "not a URL libpq can read"
        check.add("idempotency.url", what, "postgresql://user@host:5432/database")
        return
    if "password" in parsed:
        check.add(
            "idempotency.url",
            "a password in the URL would sit in the ConfigMap and every copy of it",
            'set [idempotency] password = "env:PG_PASSWORD" instead',
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


def _daily_close(
    check: Checker, raw: Mapping[str, Any], history: HistorySettings
) -> DailyCloseSettings:
    check.unknown(raw, {"watch", "after_minutes"}, "daily_close")
    d = DailyCloseSettings()
    watch = check.boolean(raw, "watch", "daily_close", d.watch)
    if watch and not history.enabled:
        check.add(
            "daily_close.watch",
            "the close is computed from the history, which is off",
            "remove [history] enabled = false, or watch = false",
        )
    after = check.whole(raw, "after_minutes", "daily_close", d.after_minutes, 720)
    return DailyCloseSettings(watch=watch, after_minutes=after or d.after_minutes)


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
