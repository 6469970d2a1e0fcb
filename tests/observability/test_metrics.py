"""`/metrics`: what operators see of upstreams, caches, budgets and breakers."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from prometheus_client import generate_latest

from gateway.access import RateLimit
from gateway.config.operations import MetricsSettings
from gateway.domain import (
    AccountBalance,
    AccountInfo,
    Asset,
    AssetKind,
    Balance,
    Level,
    Money,
    ProviderKind,
    ThresholdRule,
    Thresholds,
)
from gateway.services.gauges import BalanceGauges
from gateway.simulator import Simulator
from tests.helpers import (
    TOP_UP,
    FakeClock,
    demo_settings,
    ourvoice_fake,
    production,
    running_gateway,
    sample,
    sample_sum,
    topup,
    with_account,
    with_cache,
    with_section,
)

QUERY = "{ balances { complete } }"
STORE_OPERATIONS = "gateway_store_operations_total"


async def test_metrics_follow_upstream_calls_cache_and_breaker(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_cache(demo_settings(), "memory://", "m", response_cache=False)
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query(QUERY)
        await gw.query(QUERY)
        sim.state.set_faults("magma", status=503)
        clock.advance(20)
        await gw.query(QUERY)  # three 503 attempts, then stale
        text = (await gw.http.get("/metrics")).text
        ok = await gw.metric("gateway_upstream_requests_total", account="magma", outcome="ok")
        failed = await gw.metric(
            "gateway_upstream_requests_total", account="magma", outcome="http_5xx"
        )
        hits = await gw.metric("gateway_cache_events_total", account="magma", event="hit")
        stale = await gw.metric("gateway_cache_events_total", account="magma", event="stale")
        taken = await gw.metric("gateway_budget_calls_total", account="muda-ug", result="taken")
        breaker = await gw.metric("gateway_breaker_state", account="magma")
    assert (ok, failed, hits, stale) == (1, 3, 1, 1)
    assert taken == 3  # token + balance, a cache hit (no call), then one balance read
    assert breaker == 0  # three failures are below the threshold of five
    assert 'gateway_upstream_latency_seconds_bucket{account="magma"' in text
    assert "gateway_upstream_in_flight" in text and "gateway_graphql_in_flight" in text
    assert "demo-" not in text  # no credential in any label


async def test_request_metrics_by_operation_outcome_and_reason(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Requests counted by operation type, a listed operation name (any other is `other`),
    outcome and refusal reason; durations in a histogram fine below 100 ms; process
    metrics beside them."""
    settings = dataclasses.replace(
        demo_settings(), metrics=MetricsSettings(operation_names=frozenset({"Dashboard"}))
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query("query Dashboard { balances { complete } }")
        await gw.query('query Invented123 { balances(accountIds: ["magma"]) { complete } }')
        sim.state.set_faults("magma", status=503)
        clock.advance(3600)  # past every stale window: magma fails in place
        await gw.query("{ balances { complete } }")
        await gw.post("{ nope }")
        await gw.http.post("/graphql", content=b"{}", headers={"content-type": "text/plain"})
        text = (await gw.http.get("/metrics")).text

        async def requests(**labels: str) -> float:
            return await gw.metric("gateway_requests_total", **labels)

        dashboard = await requests(
            operation_type="query", operation_name="Dashboard", outcome="ok", reason=""
        )
        other = await requests(
            operation_type="query", operation_name="other", outcome="ok", reason=""
        )
        partial = await requests(
            operation_type="query", operation_name="none", outcome="partial", reason=""
        )
        client_error = await requests(
            operation_type="query", operation_name="none", outcome="client_error", reason=""
        )
        refused = await requests(
            operation_type="unknown",
            operation_name="none",
            outcome="refused",
            reason="unsupported_media_type",
        )
    assert (dashboard, other, partial, client_error, refused) == (1, 1, 1, 1, 1)
    assert "Invented123" not in text  # unlisted names never become label values
    bucket = (
        'gateway_request_duration_seconds_bucket{le="0.0075",operation_type="query",outcome="ok"}'
    )
    assert bucket in text
    for process_metric in ("process_resident_memory_bytes", "process_open_fds", "python_gc_"):
        assert process_metric in text


async def test_top_ups_by_outcome_pending_in_the_journal_and_rate_limit_refusals(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = demo_settings()
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query(TOP_UP, topup("m-1"))
        await gw.query(TOP_UP, topup("m-1"))  # replayed
        ourvoice_fake(sim).topup_faults["ourvoice-sn"] = "503-after-commit"
        await gw.query(TOP_UP, topup("m-2", paymentReference="PAY-2"))  # pending
        await gw.query(TOP_UP, topup("m-3", amount="-1"))  # rejected
        succeeded = await gw.metric("gateway_topups_total", outcome="succeeded", replayed="false")
        replayed = await gw.metric("gateway_topups_total", outcome="succeeded", replayed="true")
        pending = await gw.metric("gateway_topups_total", outcome="pending", replayed="false")
        rejected = await gw.metric("gateway_topups_total", outcome="rejected", replayed="false")
        in_journal = await gw.metric("gateway_journal_pending")
    assert (succeeded, replayed, pending, rejected) == (1, 1, 1, 1)
    assert in_journal == 1  # read from the journal when scraped

    limited = production(settings)  # one client, FULL_KEY, with every scope
    limited = with_section(limited, "security", rate_limit=RateLimit(1.0, 1))
    async with running_gateway(limited, sim_transport, clock) as gw:
        statuses = [(await gw.post("{ __typename }")).status_code for _ in range(3)]
        clock.advance(10)  # the scrape is the client's request too: let its bucket refill
        scraped = (await gw.http.get("/metrics")).text
        refusals = sample(scraped, "gateway_rate_limit_refusals_total")
        by_reason = sample(
            scraped,
            "gateway_requests_total",
            operation_type="unknown",
            operation_name="none",
            outcome="refused",
            reason="rate_limited",
        )
    assert statuses == [200, 429, 429]
    assert (refusals, by_reason) == (2, 2)


async def test_redis_round_trips_per_request_are_what_the_readme_states(
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    redis_url: str,
    namespace: str,
) -> None:
    """The capacity figures in docs/operations.md ("Capacity"), counted on the real Redis for
    the demo's 5 accounts (6 upstream calls cold: Muda's token exchange too)."""
    spent: dict[bool, list[float]] = {}
    for response_cache in (True, False):
        settings = with_cache(
            demo_settings(),
            redis_url,
            f"{namespace}-{response_cache}",
            response_cache=response_cache,
        )
        async with running_gateway(settings, sim_transport, clock) as gw:
            spent[response_cache] = []
            for _ in range(3):
                before = sample_sum((await gw.http.get("/metrics")).text, STORE_OPERATIONS)
                await gw.query(QUERY)
                after = sample_sum((await gw.http.get("/metrics")).text, STORE_OPERATIONS)
                spent[response_cache].append(after - before)
    # cold: per account a read, a fill marker taken, a re-read, the value written, the marker
    # dropped, plus a quota count per upstream call; the response cache adds 3
    assert spent[True] == [34, 2, 2]  # then: the generations and the stored response
    assert spent[False] == [31, 5, 5]  # then: one read per account


MISMATCH = {
    "account": "ourvoice-sn",
    "balance": "ourvoice-sn:credit:XOF",
    "currency": "XOF",
    "threshold_currency": "EGP",
}


async def test_thresholds_in_another_currency_are_a_mismatch_gauge_and_one_warning(
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rule in EGP on an XOF balance (a throwaway rule, past the configuration's checks,
    as a provider whose currencies are not known up front lets through): never an EGP
    threshold labelled XOF, no level — the mismatch itself, and one WARNING per balance."""
    egp = Money(Decimal(100000), "EGP")
    rule = ThresholdRule(Thresholds(egp, None), asset="XOF")
    settings = with_account(demo_settings(), "ourvoice-sn", thresholds=(rule,))
    with caplog.at_level(logging.WARNING, logger="gateway.services.gauges"):
        async with running_gateway(settings, sim_transport, clock) as gw:
            await gw.query(QUERY)
            clock.advance(60)  # read again: the same mismatch, no second line
            await gw.query(QUERY)
            text = (await gw.http.get("/metrics")).text
    assert sample(text, "gateway_threshold_currency_mismatch", **MISMATCH) == 1
    assert 'gateway_balance_threshold{account="ourvoice-sn"' not in text
    assert 'gateway_balance_level{account="ourvoice-sn"' not in text
    assert 'gateway_balance_available{account="ourvoice-sn"' in text  # the amount still is
    (warning,) = [r for r in caplog.records if "ourvoice-sn:credit:XOF" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "is in XOF but its thresholds are in EGP" in warning.getMessage()


def test_the_mismatch_gauge_is_only_for_a_balance_in_another_currency() -> None:
    def balance(name: str, currency: str, threshold_currency: str) -> Balance:
        money = Money(Decimal(50), currency)
        limit = Money(Decimal(100), threshold_currency)
        return Balance(
            f"a:{name}",
            Asset(currency, currency, AssetKind.CASH),
            money,
            money,
            thresholds=Thresholds(limit, None),
            level=Level.WARNING if currency == threshold_currency else None,
        )

    info = AccountInfo("a", ProviderKind("magma_onepay"), "a", ())
    answer = AccountBalance(
        info,
        (balance("GH:GHS", "GHS", "XOF"), balance("SN:XOF", "XOF", "XOF")),
        datetime.fromtimestamp(0, UTC),
    )
    gauges = BalanceGauges(lambda: 0.0)
    gauges.note(answer)
    text = generate_latest(gauges).decode()
    labels = {"account": "a", "currency": "GHS", "threshold_currency": "XOF"}
    assert sample(text, "gateway_threshold_currency_mismatch", balance="a:GH:GHS", **labels) == 1
    assert text.count("gateway_threshold_currency_mismatch{") == 1
    assert text.count("gateway_balance_threshold{") == 1  # the XOF balance's warning only
    ok = {"account": "a", "balance": "a:SN:XOF", "asset": "XOF", "kind": "CASH", "currency": "XOF"}
    assert sample(text, "gateway_balance_level", **ok) == 1
    assert sample(text, "gateway_balance_threshold", **ok, level="warning") == 100
