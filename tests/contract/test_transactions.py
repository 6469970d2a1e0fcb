"""Transaction history from every provider that reads it upstream: pages newest first,
ids stable and the account's own, amounts exact, statuses mapped with the raw value kept,
filters honoured — and the history route's failures mapped to their codes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.domain import Capability, TransactionFilter, TransactionStatus, fits
from gateway.errors import ErrorCode
from gateway.simulator import Simulator
from gateway.upstream.client import UpstreamClient
from tests.contract.cases import adapter, expect_error, kinds_with, tenant_of
from tests.helpers import FakeClock

KINDS = kinds_with(Capability.TRANSACTIONS)
FIRST_PAGE = 1


async def all_rows(kind: str, http: UpstreamClient, clock: FakeClock, flt: TransactionFilter):  # type: ignore[no-untyped-def]
    source, rows, page = adapter(kind, http, clock), [], FIRST_PAGE
    for _ in range(50):  # bounded: a provider paginating forever is a failure
        found = await source.transaction_page(flt, page)
        rows.extend(found.rows)
        if found.next_page is None:
            return rows
        page = found.next_page
    raise AssertionError("more than 50 pages")


@pytest.mark.parametrize("kind", KINDS)
async def test_history_is_newest_first_with_stable_ids_and_exact_amounts(
    kind: str, http: UpstreamClient, clock: FakeClock
) -> None:
    rows = await all_rows(kind, http, clock, TransactionFilter())
    assert rows, "the fake's seed tenant has a history"
    account = tenant_of(kind).name
    assert len({r.id for r in rows}) == len(rows)
    assert all(r.id.startswith(f"{account}:") and r.account_id == account for r in rows)
    stamps = [r.created_at for r in rows if r.created_at is not None]
    assert stamps == sorted(stamps, reverse=True)
    assert all(s.utcoffset() is not None and s.utcoffset().total_seconds() == 0 for s in stamps)
    for row in rows:
        assert isinstance(row.amount.amount, Decimal) and fits(row.amount.amount)
        assert row.status in TransactionStatus
        if row.status is TransactionStatus.UNKNOWN:
            assert row.raw_status is not None  # unmapped, but never hidden


@pytest.mark.parametrize("kind", KINDS)
async def test_a_date_filter_is_honoured_exactly(
    kind: str, http: UpstreamClient, clock: FakeClock
) -> None:
    everything = await all_rows(kind, http, clock, TransactionFilter())
    stamps = sorted(r.created_at for r in everything if r.created_at is not None)
    start, end = stamps[len(stamps) // 4], stamps[len(stamps) // 2]
    window = TransactionFilter(created_from=start, created_to=end)
    rows = [r for r in await all_rows(kind, http, clock, window) if window.matches(r)]
    wanted = [r for r in everything if window.matches(r)]
    assert [r.id for r in rows] == [r.id for r in wanted] and rows


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"status": 401}, ErrorCode.UPSTREAM_UNAUTHORIZED),
        ({"status": 429, "retry_after": "9"}, ErrorCode.UPSTREAM_RATE_LIMITED),
        ({"status": 503}, ErrorCode.UPSTREAM_UNAVAILABLE),
        ({"malformed": True}, ErrorCode.UPSTREAM_BAD_RESPONSE),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_history_failures_are_mapped(
    kind: str,
    fault: dict[str, object],
    code: ErrorCode,
    http: UpstreamClient,
    clock: FakeClock,
    sim: Simulator,
) -> None:
    sim.state.set_faults(tenant_of(kind).name, **fault)
    flt = TransactionFilter(created_from=datetime(2024, 6, 1, tzinfo=UTC))
    error = await expect_error(adapter(kind, http, clock).transaction_page(flt, FIRST_PAGE), code)
    if code is ErrorCode.UPSTREAM_RATE_LIMITED:
        assert error.retry_after_seconds == 9
