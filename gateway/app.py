"""The composition root: `create_app(settings, transport=, clock=, sleep=)` → Starlette.

The only module that knows every layer. Process-wide parts — the stores, the upstream
client, one channel and adapter per account, the services — are built in the lifespan
(`parts`) and closed with it; per-request state lives in the GraphQL context. The edge's
routes and middleware come from `server/edge.py`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway._compat.asyncio import TURN, Turn
from gateway._compat.strawberry import core_schema
from gateway.cache.changes import ChangeFeed
from gateway.cache.handout import Handout
from gateway.cache.read_through import Generations, ReadThroughCache
from gateway.cache.responses import ResponseCache
from gateway.cache.store import RedisAccess, Store, open_store
from gateway.clock import Clock
from gateway.config.accounts import AccountConfig
from gateway.config.settings import ServerSettings, Settings
from gateway.domain import Capability
from gateway.errors import UpstreamContext
from gateway.observability import log_context, log_format
from gateway.observability.metrics import Metrics
from gateway.observability.tracing import NO_TRACING, Tracing
from gateway.providers.base import get_ok, upstream_context
from gateway.providers.loading import spec
from gateway.providers.protocols import TopUpProvider, TransactionSource
from gateway.schema import build_schema
from gateway.schema.execution.operation_stats import without_literals
from gateway.server import edge
from gateway.server.admission import AdaptiveLimit, Admission, LoopDelayProbe
from gateway.server.auth import Authenticator, JwtVerifier
from gateway.server.documents import TrustedDocuments
from gateway.server.early_hits import EarlyHits
from gateway.server.early_shed import EarlyShed, Record
from gateway.server.endpoint import GraphQLEndpoint
from gateway.server.events import EventStreams
from gateway.server.exposition import Exposition
from gateway.server.mcp import McpEndpoint
from gateway.server.memory_release import MemoryRelease
from gateway.server.persisted_queries import PersistedQueries
from gateway.server.rate_limit import RateLimiter
from gateway.server.readiness import Draining, Readiness
from gateway.server.request_metrics import Observer, observer
from gateway.server.view import GatewayGraphQL
from gateway.services.balances import BalanceService
from gateway.services.close_watch import CloseWatch
from gateway.services.cursor import Cursors
from gateway.services.daily_close import DailyCloseService
from gateway.services.gauges import BalanceGauges
from gateway.services.history import HistoryRecorder, SqlHistory
from gateway.services.journal import Journal, open_journal, postgres_refusal
from gateway.services.live import BalanceWatch
from gateway.services.notifications import Notifier
from gateway.services.rates import RATES, HttpRates, RateSource, StaticRates
from gateway.services.topups import JournalTransactions, TopUpService
from gateway.services.transactions import TransactionService
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.channel import Channel, RetryPolicy, Sleep
from gateway.upstream.client import UpstreamClient
from gateway.upstream.quota import CallLimits, Quota
from gateway.upstream.webhooks import WebhookClient

FLUSH_ON_STOP_SECONDS = 5.0  # queued history points and levels written at shutdown
log = logging.getLogger("gateway.app")


def settle_the_collector() -> None:
    """Everything built so far lives as long as the process: keep it out of the cycle
    collector's way, so that a full collection does not stall requests for tens of ms.
    A request leaves no reference cycle (tests/app/test_reference_cycles.py), so a full
    collection finds next to nothing, yet walks every live request's objects (up to ~40 ms
    under load); at Python's default (700, 10, 10) they came three times a second. At
    (700, 10, 100) they are ten times rarer (issue #24: sheds answered within 50 ms)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    live_sleep: Sleep = asyncio.sleep,
    tracer_provider: Any = None,
    turn: Turn = TURN,
) -> Starlette:
    """Build the gateway. `transport` reaches the providers (default: aiohttp); `clock`
    (seconds since the epoch) drives freshness, budgets, breakers and token expiry; `sleep`
    is how retries wait and the history writer rests between statements (tests pass one
    that does not); `live_sleep` how live streams wait between reads and heartbeats (tests
    pass one they tick); `tracer_provider` receives the spans when `[tracing]` is enabled
    (default: OTLP as the `OTEL_*` variables say); `turn` budgets the first steps a
    request's reads take at once in one turn of the loop (`_compat/asyncio.started`:
    2 ms by the process's counter; tests pass one on a clock they hold)."""
    metrics = Metrics()
    tracing = tracing_for(settings, tracer_provider)
    development = settings.server.development
    limits = settings.security.limits
    schema = build_schema(development=development, limits=limits)
    graphql = GatewayGraphQL(
        schema,
        graphql_ide=None,  # our own page (gateway.server.pages.graphiql): no CDN
        # GET reaches Strawberry only past the endpoint, which lets through queries when
        # [limits] allow_get is on, and trusted documents always (mutations never: 405).
        allow_queries_via_get=True,
        subscription_protocols=(),
        development=development,
        max_errors=limits.max_errors,
    )
    authenticator = Authenticator(
        settings.security.clients,
        JwtVerifier(settings.security.jwt, clock) if settings.security.jwt else None,
        development=development,
    )
    # the accounts' own deadline, plus a second to assemble and send the answer
    deadline = settings.server.request_deadline_seconds + 1.0
    draining = Draining()  # set by the server on SIGTERM (`serving.py`)
    admission = admission_for(settings.server, metrics)
    handout = Handout()  # reads' results handed to their waiters a few per turn

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with components(
            settings, transport, clock, sleep, metrics, tracing, handout
        ) as built:
            takes_top_ups = any(
                Capability.TOP_UP in a.capabilities for a in settings.accounts.values()
            )
            app.state.readiness = Readiness(
                built.store, built.journal if takes_top_ups else None, draining
            )
            app.state.journal, app.state.service, app.state.daily_close = (
                built.journal,
                built.service,
                built.daily_close,
            )
            app.state.recorder, app.state.notifier, app.state.close_watch = (
                built.recorder,
                built.notifier,
                built.close_watch,
            )
            app.state.graphql = GraphQLEndpoint(
                graphql,
                built.service,
                built.transactions,
                built.topups,
                authenticator,
                built.rate_limiter,
                built.response_cache,
                metrics,
                clock,
                limits,
                settings.cache.fresh_seconds,
                settings.server.body_timeout_seconds,
                deadline,
                admission,
                documents=TrustedDocuments(
                    settings.documents,
                    PersistedQueries(built.store, schema, limits.max_tokens),
                ),
                daily_close=built.daily_close,
                turn=turn,
                handout=handout,
            )
            # The manifest's documents as MCP tools, behind the same gate (`server/mcp.py`).
            app.state.mcp = McpEndpoint.of_manifest(
                app.state.graphql,
                dict(settings.documents.documents),
                core_schema(schema),
                settings.server.cors_origins,
            )
            app.state.live = live = BalanceWatch(
                built.service,
                live_sleep,
                max_streams=settings.live.max_streams,
                max_streams_per_client=settings.live.max_streams_per_client,
                metrics=metrics,
            )
            draining.listeners.append(live.close_all)  # streams move to other replicas
            app.state.events = EventStreams(
                app.state.graphql,
                live,
                live_sleep,
                settings.live.heartbeat_seconds,
                settings.live.max_streams_per_client,
            )
            settle_the_collector()
            running = hear_changes(built, live, live_sleep)
            if admission.adaptive is not None:
                running.append(
                    asyncio.create_task(
                        LoopDelayProbe(admission.observe, handout.backlog_seconds).run(),
                        name="admission",
                    )
                )
            try:
                async with app.state.mcp.running():
                    yield
            finally:
                for task in running:
                    task.cancel()
                if running:  # (the subscription's connection back before the store closes)
                    await asyncio.wait(running)
                live.close_all()
                tracing.close()

    log_context.install_record_factory()  # request id and client on every record
    log_format.add_secrets(secrets_of(settings))
    if development:
        log.warning(
            "development profile: requests without a key get every scope on every "
            "account, and GraphiQL and introspection are on; never expose this"
        )
    observe = observer(metrics, settings.metrics.operation_names)
    app = Starlette(
        routes=edge.routes(development),
        middleware=edge.middleware(
            settings.server,
            access_log=settings.logging.access_log,
            log_health_checks=settings.logging.health_checks,
            observe=observe,
            tracing=tracing,
        ),
        lifespan=lifespan,
    )
    app.state.draining = draining
    app.state.admission = admission
    app.state.exposition = Exposition(metrics, app.state, clock)  # both ports' /metrics
    app.state.memory_release = MemoryRelease(  # read by its server (`serving.py`)
        settings.server.release_memory_after_connections, metrics.memory_releases
    )
    # a traced request is shed, or answered from the cache, the whole way (its span)
    app.state.early_shed = early_answers(app.state, admission, observe, settings, tracing)
    return app


def early_answers(
    state: Any, admission: Admission, observe: Observer, settings: Settings, tracing: Tracing
) -> EarlyShed | None:
    """What the connection's protocol answers from a request's bytes (`serving.py`): a
    query the gate sheds now, a response-cache hit — none when tracing is on."""
    if tracing is not NO_TRACING:
        return None
    record = Record(observe, access=settings.logging.access_log)
    cors = bool(settings.server.cors_origins)
    return EarlyShed(admission, record, cors=cors, hits=EarlyHits(state, record, cors=cors).answer)


def hear_changes(built: Components, live: BalanceWatch, sleep: Sleep) -> list[asyncio.Task[None]]:
    """A change made here wakes this process's live streams (a top-up, a refresh), and on a
    shared cache every other replica's too, at once (Redis pub/sub: `cache/changes.py`):
    the subscription's task, or none in memory."""
    changes = ChangeFeed(built.store, sleep)
    changes.heard.append(live.wake)
    built.service.invalidated.append(live.wake)
    built.service.changes = changes
    if not built.store.shared:
        return []
    return [asyncio.create_task(changes.run(), name="balance changes")]


def admission_for(server: ServerSettings, metrics: Metrics) -> Admission:
    adaptive = None
    if server.admission == "adaptive":
        adaptive = AdaptiveLimit(
            server.max_concurrent_requests,
            server.min_concurrent_requests,
            server.admission_target_delay_seconds,
        )
    return Admission(
        server.max_concurrent_requests,
        server.max_queued_requests,
        server.queue_timeout_seconds,
        metrics,
        adaptive=adaptive,
        reserved_for_mutations=server.reserved_for_mutations,
    )


def tracing_for(settings: Settings, provider: Any) -> Tracing:
    """Nothing of OpenTelemetry is imported unless `[tracing] enabled = true`."""
    if not settings.tracing.enabled:
        return NO_TRACING
    from gateway.observability.tracing import OpenTelemetryTracing

    document = without_literals if settings.tracing.include_document else None
    return OpenTelemetryTracing(provider, document)


def journal_for(settings: Settings) -> Journal:
    """The top-up journal the configuration names (the gateway's, and the operator CLI's)."""
    journal = settings.idempotency
    return open_journal(journal.url, journal.pool_size, *postgres_access(settings))


def postgres_access(settings: Settings) -> tuple[str | None, dict[str, str]]:
    """The journal's password, and libpq's TLS parameters from `[idempotency]`."""
    journal = settings.idempotency
    password = journal.password.reveal() if journal.password is not None else None
    named = {
        "sslmode": journal.sslmode,
        "sslrootcert": journal.tls.ca_file,
        "sslcert": journal.tls.cert_file,
        "sslkey": journal.tls.key_file,
    }
    return password, {k: str(v) for k, v in named.items() if v is not None}


def store_for(settings: Settings, metrics: Metrics | None = None) -> Store:
    """The shared store `[cache]` names, with its credentials and TLS files."""
    cache = settings.cache
    tls = cache.tls
    access = RedisAccess(
        username=cache.username,
        password=cache.password.reveal() if cache.password is not None else None,
        ca_file=str(tls.ca_file) if tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls.cert_file else None,
        key_file=str(tls.key_file) if tls.key_file else None,
    )
    return open_store(cache.url, f"{cache.namespace}:v1", metrics, access=access)


async def refused_by_shared_parts(settings: Settings) -> list[str]:
    """What the parts the replicas share refuse — Redis this gateway's credentials, ACL
    or TLS; PostgreSQL its password, pg_hba.conf or TLS — each naming the settings to fix.
    Checked before serving, so a wrong credential stops the start with one clear line
    instead of a gateway that quietly runs without its cache or its journal. A part that
    cannot be reached now is not refused: readiness reports it, and it may come up."""
    refused = []
    store = store_for(settings)
    store.quiet = True  # the line below says it
    try:
        reach, reason = await store.reach()  # "ok" for an in-process store
    finally:
        await store.close()
    if reach == "refused":
        refused.append(
            f"[cache] Redis refused the gateway: {reason}; check [cache] username, "
            "password, url and the TLS files (ca_file, cert_file, key_file)"
        )
    journal = settings.idempotency
    if not journal.url.startswith("sqlite:"):
        said = await postgres_refusal(journal.url, *postgres_access(settings))
        if said is not None:
            refused.append(
                f"[idempotency] PostgreSQL refused the gateway: {said}; check [idempotency] "
                "url, password, sslmode and the TLS files (ca_file, cert_file, key_file)"
            )
    return refused


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the configuration holds, for log redaction."""
    values = [s.reveal() for a in settings.accounts.values() for s in a.credentials.values()]
    if settings.server.cursor_secret is not None:
        values.append(settings.server.cursor_secret.reveal())
    jwt = settings.security.jwt
    if jwt is not None and jwt.secret is not None:
        values.append(jwt.secret.reveal())
    if settings.idempotency.password is not None:
        values.append(settings.idempotency.password.reveal())
    if settings.cache.password is not None:
        values.append(settings.cache.password.reveal())
    values += (webhook.secret.reveal() for webhook in settings.webhooks)
    return values


@dataclass(frozen=True)
class Components:
    service: BalanceService
    transactions: TransactionService
    topups: TopUpService
    rate_limiter: RateLimiter
    response_cache: ResponseCache | None
    store: Store
    journal: Journal
    daily_close: DailyCloseService
    recorder: HistoryRecorder | None = None  # [history] on
    notifier: Notifier | None = None  # [webhooks] configured
    close_watch: CloseWatch | None = None  # [daily_close] watch


@asynccontextmanager
async def components(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    clock: Clock,
    sleep: Sleep,
    metrics: Metrics,
    tracing: Tracing = NO_TRACING,
    handout: Handout | None = None,
) -> AsyncIterator[Components]:
    accounts = settings.accounts

    store = store_for(settings, metrics)
    http = UpstreamClient(
        transport, max_body_bytes=settings.upstream.max_body_bytes, wall_clock=clock
    )
    journal = journal_for(settings)
    background: list[asyncio.Future[None]] = []  # the history writer, the notifier
    recorder: HistoryRecorder | None = None
    notifier: Notifier | None = None
    webhooks = WebhookClient() if settings.webhooks else None
    upstreams = Upstreams(settings, http, store, metrics, clock, sleep, tracing)
    try:
        adapters = {
            account.id: spec(account.provider.value).factory(
                account,
                upstreams.for_account(account),
                clock,
            )
            for account in accounts.values()
        }
        cache = ReadThroughCache(
            store,
            clock,
            metrics,
            fill_wait_seconds=settings.cache.fill_wait_seconds,
            handout=handout,
        )
        generations = Generations(store)
        service = BalanceService(
            accounts,
            adapters,
            cache,
            generations,
            settings.server.request_deadline_seconds,
            refresh_join_seconds=settings.cache.refresh_join_seconds,
        )
        service.reporting, service.rates = (
            settings.reporting,
            rate_source(settings, upstreams, cache),
        )
        gauges = BalanceGauges(clock)  # per-balance gauges, from every answer read
        metrics.registry.register(gauges)
        service.answered.append(gauges.note)
        if settings.history.enabled:  # fresh balances kept in the journal's database
            history = settings.history
            service.history = SqlHistory(
                journal.database,
                history.every_seconds,
                history.retention_days,
                clock,
                demo_past_days=history.demo_past_days,
            )
            recorder = HistoryRecorder(service.history, clock, sleep)
            service.answered.append(recorder.note)
            background.append(asyncio.ensure_future(recorder.run()))
        if webhooks is not None:  # balance-level events, once across replicas and restarts
            notifier = Notifier(
                journal.database,
                settings.webhooks,
                clock,
                webhooks.post,
                metrics,
                retention_days=settings.history.retention_days,
            )
            service.answered.append(notifier.note)
            background.append(asyncio.ensure_future(notifier.run()))
        top_ups, sources = capabilities(accounts, adapters, journal)
        topups = TopUpService(
            accounts,
            top_ups,
            journal,
            service.invalidate,
            clock,
            settings.idempotency.wait_seconds,
            settings.idempotency.lease_seconds,
            metrics,
        )
        transactions = TransactionService(
            accounts,
            sources,
            cache,
            Cursors(cursor_secret(settings)),
            settings.cache.transactions_fresh_seconds,
            settings.server.request_deadline_seconds,
        )
        daily_close = DailyCloseService(
            accounts, service, service.history, transactions, journal, clock
        )
        yield Components(
            service=service,
            daily_close=daily_close,
            transactions=transactions,
            topups=topups,
            rate_limiter=RateLimiter(store, settings.security.rate_limit, clock),
            response_cache=(
                ResponseCache(store, generations, clock) if settings.cache.response_cache else None
            ),
            store=store,
            journal=journal,
            recorder=recorder,
            notifier=notifier,
            close_watch=close_watch_for(
                settings, daily_close, notifier, clock, metrics, background
            ),
        )
    finally:
        # What is queued is written before the writers stop (bounded: a database that does
        # not answer cannot hold the shutdown); a process killed outright loses its queue,
        # and the next fresh read of each balance makes up for it.
        writers = [w for w in (recorder, notifier) if w is not None]
        if writers and not any(task.done() for task in background):
            flushed = asyncio.gather(*(w.flush() for w in writers))
            try:
                await asyncio.wait_for(flushed, FLUSH_ON_STOP_SECONDS)
            except Exception:
                log.warning("history or notifications not all written at shutdown")
        for task in background:
            task.cancel()
        if background:
            await asyncio.wait(background)
        if webhooks is not None:
            await webhooks.aclose()
        await http.aclose()
        await store.close()
        await journal.close()


def close_watch_for(
    settings: Settings,
    daily_close: DailyCloseService,
    notifier: Notifier | None,
    clock: Clock,
    metrics: Metrics,
    background: list[asyncio.Future[None]],
) -> CloseWatch | None:
    """Yesterday's close computed in the background (`[daily_close] watch`, history on):
    the gauge, and the webhook event when `notifier`."""
    if not (settings.daily_close.watch and settings.history.enabled):
        return None
    watch = CloseWatch(
        daily_close,
        list(settings.accounts),
        clock,
        settings.daily_close.after_minutes * 60.0,
        notifier,
    )
    metrics.registry.register(watch)
    background.append(asyncio.ensure_future(watch.run()))
    return watch


def capabilities(
    accounts: Mapping[str, AccountConfig], adapters: Mapping[str, object], journal: Journal
) -> tuple[dict[str, TopUpProvider], dict[str, TransactionSource]]:
    """The adapters that take top-ups and the sources of each account's history — each
    checked to implement what its provider's spec declares (a declared capability an
    adapter lacks stops the start, rather than failing one request later)."""
    top_ups: dict[str, TopUpProvider] = {}
    sources: dict[str, TransactionSource] = {}
    for account_id, adapter in adapters.items():
        account = accounts[account_id]
        declared = account.capabilities
        provider = spec(account.provider.value)
        if Capability.TOP_UP in declared:
            if not isinstance(adapter, TopUpProvider):
                raise TypeError(f"{account.provider.value} declares TOP_UP but has no top_up()")
            top_ups[account_id] = adapter
        if Capability.TRANSACTIONS in declared:
            if provider.transactions_from_journal:
                sources[account_id] = JournalTransactions(journal, account_id)
            elif isinstance(adapter, TransactionSource):
                sources[account_id] = adapter
            else:
                raise TypeError(
                    f"{account.provider.value} declares TRANSACTIONS but has no transaction_page()"
                )
    return top_ups, sources


def cursor_secret(settings: Settings) -> bytes:
    """The configured secret; in development, a random one (cursors then last one process)."""
    if settings.server.cursor_secret is not None:
        return settings.server.cursor_secret.reveal().encode()
    log.warning("no [server] cursor_secret: pagination cursors are valid in this process only")
    return secrets.token_bytes(32)


def rate_source(settings: Settings, upstreams: Upstreams, cache: ReadThroughCache) -> RateSource:
    """`[reporting]`'s rates: its static table, or its rates provider over HTTP."""
    reporting = settings.reporting
    if reporting.rates_url is None:
        return StaticRates(reporting.table)
    channel = upstreams.channel(RATES, reporting.rates_timeout_seconds, CallLimits())
    url = reporting.rates_url
    return HttpRates(
        lambda: get_ok(channel, url, {"Accept": "application/json"}),
        url,
        cache,
        reporting.rates_fresh_seconds,
        settings.server.request_deadline_seconds,
    )


@dataclass(frozen=True)
class Upstreams:
    """What every upstream's channel is made of: `[upstream]`'s retries, breaker and
    bulkhead over the shared HTTP client, and a quota counted in the shared store."""

    settings: Settings
    http: UpstreamClient
    store: Store
    metrics: Metrics
    clock: Clock
    sleep: Sleep
    tracing: Tracing = NO_TRACING

    def for_account(self, account: AccountConfig) -> Channel:
        limits = CallLimits(account.calls_per_minute, account.calls_per_day)
        return self.channel(upstream_context(account), account.timeout_seconds, limits)

    def channel(
        self, context: UpstreamContext, timeout_seconds: float, limits: CallLimits
    ) -> Channel:
        upstream = self.settings.upstream
        clock = self.clock
        return Channel(
            self.http,
            context,
            timeout_seconds=timeout_seconds,
            retry=RetryPolicy(
                upstream.max_attempts, upstream.backoff_base_seconds, upstream.backoff_max_seconds
            ),
            breaker=CircuitBreaker(
                upstream.breaker_failures, upstream.breaker_cooldown_seconds, clock
            ),
            quota=Quota(context.account, limits, self.store, clock),
            max_concurrency=upstream.max_concurrency,
            metrics=self.metrics,
            clock=clock,
            sleep=self.sleep,
            tracing=self.tracing,
        )
