"""A recorded body per provider, in the shape its docs describe (PROVIDERS.md, field by
field), parsed by the adapter's pure function: which upstream field becomes which
`Transaction` field — including rows with every optional field absent, and statuses the
docs do not list (UNKNOWN, the raw value kept)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.domain import AssetKind, Direction, TransactionStatus
from gateway.errors import UpstreamContext
from gateway.providers import magma_onepay, muda, ourvoice, paymob_bills
from gateway.upstream.client import UpstreamResponse
from tests.helpers import demo_accounts

FIXTURES = Path(__file__).parent / "fixtures"
ACCOUNTS = demo_accounts()
CTX = UpstreamContext("test", "test")


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_muda_statement_rows() -> None:
    page = muda.parse_statement(
        UpstreamResponse(200, {}, body("muda_statement.json")), ACCOUNTS["muda-ug"], CTX
    )
    collateral, push, swap = page.rows  # newest first
    assert push.id == "muda-ug:3f9a7c2e-5d41-4b8e-9c1a-0e6b2f4d8a10"
    assert (push.provider_id, push.reference) == (
        "3f9a7c2e-5d41-4b8e-9c1a-0e6b2f4d8a10",
        "INV-2025-0416",
    )
    assert (push.type, push.direction) == ("PUSH", Direction.DEBIT)
    assert (push.initiator, push.recipient, push.counterparty) == (
        "256700000001",
        "256711111111",
        "256711111111",
    )
    assert push.amount.amount == Decimal("1000.0000000") and push.fee is not None
    assert push.fee.amount == Decimal("100.00") and push.amount.currency == "UGX"
    assert push.asset is not None and push.asset.kind is AssetKind.CASH
    assert (push.channel, push.status) == ("MOBILE_MONEY", TransactionStatus.SUCCEEDED)
    assert push.created_at == datetime(2025, 4, 16, 6, 9, 55, tzinfo=UTC)
    # a cUGX row is a collateral movement, not cash; PULL is money in
    assert collateral.asset is not None and collateral.asset.code == "cUGX"
    assert collateral.asset.kind is AssetKind.COLLATERAL
    assert (collateral.direction, collateral.counterparty) == (Direction.CREDIT, "256722222222")
    assert (collateral.status, collateral.raw_status) == (TransactionStatus.FAILED, "MINT_FAILED")
    # every optional field absent, an undocumented status, a swap (no direction)
    assert (swap.reference, swap.fee, swap.counterparty, swap.channel, swap.direction) == (
        None,
    ) * 5
    assert (swap.status, swap.raw_status) == (TransactionStatus.UNKNOWN, "ON_HOLD")


def test_magma_payout_rows() -> None:
    full, bare = magma_onepay.parse_history(body("magma_history.json"), ACCOUNTS["magma"], CTX)
    assert full.id == "magma:5b1f0c9e-2a7d-4f3b-8e61-9d4c2b7a1e05"
    assert full.reference == "PAYOUT-2024-0604-001"
    assert (full.type, full.direction) == ("payout", Direction.DEBIT)  # every row is money out
    assert (full.counterparty, full.counterparty_name) == ("+243810000001", "Kabila Mbuyi")
    assert full.amount.amount == Decimal("2500.75") and full.amount.currency == "CDF"
    assert full.fee is None  # no fee field is documented
    assert full.country is not None and (full.country.code, full.country.raw_code) == ("CD", "RDC")
    assert full.channel == "mobile_money" and full.status is TransactionStatus.SUCCEEDED
    # ISO-8601 with Z here (the balance's `last_updated_at` is zone-less: test_magma.py)
    assert full.created_at == datetime(2024, 6, 4, 0, 46, 19, tzinfo=UTC)
    assert full.completed_at == datetime(2024, 6, 4, 0, 46, 58, tzinfo=UTC)
    assert (bare.reference, bare.counterparty, bare.channel, bare.country, bare.completed_at) == (
        None,
    ) * 5
    assert (bare.status, bare.raw_status) == (TransactionStatus.UNKNOWN, "on_hold")
    # The account's `timezone` (for the balance's zone-less stamps) does not move a Z instant.
    lagos = dataclasses.replace(ACCOUNTS["magma"], timezone=ZoneInfo("Africa/Lagos"))
    (again, _) = magma_onepay.parse_history(body("magma_history.json"), lagos, CTX)
    assert (again.created_at, again.completed_at) == (full.created_at, full.completed_at)


def test_paymob_balance_transactions() -> None:
    page = paymob_bills.parse_transactions(
        body("paymob_transactions.json"), ACCOUNTS["paymob-eg"], CTX, 1
    )
    ambiguous, withdrawal, failed = page.rows
    assert (ambiguous.status, ambiguous.raw_status) == (TransactionStatus.PENDING, "AMBIGUOUS")
    assert (failed.status, failed.raw_status) == (TransactionStatus.FAILED, "FAIL")
    assert ambiguous.reference == ambiguous.provider_id == "6269928401296462697948221"
    assert withdrawal.asset is not None and withdrawal.asset.kind is AssetKind.COMMISSION
    assert ambiguous.asset is not None and ambiguous.asset.kind is AssetKind.CASH
    assert (failed.initiator, failed.recipient) == (None, None)
    assert page.next_page == 2 and page.total == 3


def test_ourvoice_top_up_answer() -> None:
    tx = ourvoice.parse_topup(body("ourvoice_topup.json"), ACCOUNTS["ourvoice-sn"], CTX)
    assert tx.id == "ourvoice-sn:9a1c6f0e-3b2d-4e5f-8a7b-1c2d3e4f5a6b"
    assert (tx.reference, tx.payment_method) == ("1222YYYY3", "MTN MOMO")
    assert tx.asset is not None and tx.asset.kind is AssetKind.PREPAID_CREDIT
    assert (tx.status, tx.direction) == (TransactionStatus.SUCCEEDED, Direction.CREDIT)
