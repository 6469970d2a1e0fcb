"""Top-ups with every provider that takes them: one POST per call (never retried), the
provider's transaction on success, and each refusal or failure mapped to its code — with
`not_sent` only where the request provably never left."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.domain import Capability, TransactionStatus
from gateway.errors import ErrorCode
from gateway.simulator import Simulator
from gateway.upstream.client import UpstreamClient
from tests.contract.cases import adapter, expect_error, kinds_with, tenant_of
from tests.helpers import FakeClock

KINDS = kinds_with(Capability.TOP_UP)


def posts(sim: Simulator, kind: str) -> int:
    return sim.state.calls_to(tenant_of(kind).name, "topup")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_top_up_is_posted_once_and_credited(
    kind: str, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    provider = adapter(kind, http, clock)
    before = await provider.fetch_balances()
    tx = await provider.top_up(Decimal("2500"), "MTN MOMO", "PAY-CONTRACT-1")
    after = await provider.fetch_balances()
    assert tx.status is TransactionStatus.SUCCEEDED and tx.amount.amount == Decimal("2500")
    assert after[0].total.amount - before[0].total.amount == Decimal("2500")
    assert posts(sim, kind) == 1


@pytest.mark.parametrize(
    ("fault", "code", "not_sent"),
    [
        ({"status": 401}, ErrorCode.UPSTREAM_UNAUTHORIZED, False),
        ({"status": 429, "retry_after": "30"}, ErrorCode.UPSTREAM_RATE_LIMITED, False),
        ({"status": 503}, ErrorCode.UPSTREAM_UNAVAILABLE, False),
        ({"status": 422}, ErrorCode.UPSTREAM_REJECTED, False),
        ({"malformed": True}, ErrorCode.UPSTREAM_BAD_RESPONSE, False),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_top_up_failures_are_mapped_and_never_retried(
    kind: str,
    fault: dict[str, object],
    code: ErrorCode,
    not_sent: bool,
    http: UpstreamClient,
    clock: FakeClock,
    sim: Simulator,
) -> None:
    sim.state.set_faults(tenant_of(kind).name, **fault)
    provider = adapter(kind, http, clock)
    error = await expect_error(provider.top_up(Decimal("2500"), "MTN MOMO", "PAY-2"), code)
    assert error.not_sent is not_sent
    assert posts(sim, kind) == 1  # money is attempted exactly once
