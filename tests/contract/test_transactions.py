"""Transaction history from every provider: those that read it upstream — pages newest
first, ids stable and the account's own, amounts exact, statuses mapped with the raw value
kept (an undocumented one UNKNOWN), rows without their optional fields kept, filters
honoured, the history route's failures mapped to their codes — and those whose history is
the gateway's journal of top-ups."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.domain import (
    AssetKind,
    Capability,
    Direction,
    TransactionFilter,
    TransactionStatus,
    fits,
)
from gateway.errors import ErrorCode
from gateway.providers.loading import spec
from gateway.services.journal import open_journal
from gateway.services.topups import JournalTransactions, TopUpRequest, TopUpService
from gateway.simulator import Simulator
from gateway.upstream.client import UpstreamClient
from tests.contract.cases import KINDS as KINDS_ALL
from tests.contract.cases import (
    account_of,
    adapter,
    expect_error,
    expected,
    kinds_with,
    tenant_of,
)
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


@pytest.mark.parametrize("kind", KINDS)
async def test_undocumented_statuses_are_unknown_with_the_raw_value_kept(
    kind: str, http: UpstreamClient, clock: FakeClock
) -> None:
    rows = await all_rows(kind, http, clock, TransactionFilter())
    unknown = [r for r in rows if r.status is TransactionStatus.UNKNOWN]
    assert unknown, "the fake's history holds a status its provider does not document"
    assert all(r.raw_status for r in unknown)
    assert all(r.provider_id and r.asset is not None for r in rows)


@pytest.mark.parametrize("kind", [k for k in KINDS if expected(k).OPTIONAL_FIELDS])
async def test_rows_without_their_optional_fields_are_kept_with_nulls(
    kind: str, http: UpstreamClient, clock: FakeClock
) -> None:
    rows = await all_rows(kind, http, clock, TransactionFilter())
    optional = expected(kind).OPTIONAL_FIELDS
    bare = [r for r in rows if all(getattr(r, name) is None for name in optional)]
    assert bare, "the fake's history holds rows without their optional fields"
    assert all(r.id and r.provider_id and r.amount and r.created_at for r in bare)
    assert len({r.id for r in rows}) == len(rows)  # ids stay distinct without them


JOURNAL_KINDS = [k for k in KINDS_ALL if spec(k).transactions_from_journal]


@pytest.mark.parametrize("kind", JOURNAL_KINDS)
async def test_a_history_answered_from_the_journal_lists_the_top_ups(
    kind: str, http: UpstreamClient, clock: FakeClock, tmp_path: Path
) -> None:
    account = account_of(kind)
    journal = open_journal(f"sqlite:///{tmp_path / 'journal.db'}")

    async def nothing(_: str) -> None:
        return None

    topups = TopUpService(
        {account.id: account},
        {account.id: adapter(kind, http, clock)},
        journal,
        nothing,
        clock,
        2.0,
        30.0,
    )
    try:
        request = TopUpRequest(account.id, Decimal("2500"), None, "MTN MOMO", "PAY-J-1", "k-j-1")
        await topups.top_up("contract", request)
        page = await JournalTransactions(journal, account.id).transaction_page(
            TransactionFilter(), 1
        )
    finally:
        await journal.close()
    (row,) = page.rows
    assert (row.status, row.direction, row.reference) == (
        TransactionStatus.SUCCEEDED,
        Direction.CREDIT,
        "PAY-J-1",
    )
    assert row.amount.amount == Decimal("2500") and row.asset is not None
    assert row.asset.kind is AssetKind.PREPAID_CREDIT and row.provider_id
