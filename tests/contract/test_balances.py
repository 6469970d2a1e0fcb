"""Balances: every provider in the registry, against its own fake — the seed exactly,
then every failure mapped to its code (401, 429 with Retry-After, 5xx, the provider's
documented failure body, garbage, a hang)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from gateway.config.secret import Secret
from gateway.errors import ErrorCode
from gateway.providers.loading import spec
from gateway.simulator import Simulator
from gateway.upstream.client import UpstreamClient
from tests.contract.cases import KINDS, account_of, adapter, expect_error, expected, tenant_of
from tests.helpers import FakeClock, make_channel


@pytest.mark.parametrize("kind", KINDS)
async def test_happy_path_matches_the_seed_exactly(
    kind: str, http: UpstreamClient, clock: FakeClock
) -> None:
    balances = await adapter(kind, http, clock).fetch_balances()
    got = {b.id: (str(b.total.amount), str(b.available.amount), b.asset.kind) for b in balances}
    assert got == expected(kind).BALANCES
    for balance in balances:
        assert isinstance(balance.total.amount, Decimal)
        assert balance.updated_at is None or balance.updated_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_wrong_credentials_are_upstream_unauthorized(
    kind: str, http: UpstreamClient, clock: FakeClock
) -> None:
    account = account_of(kind)
    wrong = {name: Secret("wrong-" + s.reveal()) for name, s in account.credentials.items()}
    account = dataclasses.replace(account, credentials=wrong)
    bad = spec(kind).factory(account, make_channel(account, http, clock), clock)
    error = await expect_error(bad.fetch_balances(), ErrorCode.UPSTREAM_UNAUTHORIZED)
    assert not error.retryable


@pytest.mark.parametrize("kind", KINDS)
async def test_429_is_rate_limited_with_retry_after(
    kind: str, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind).name, status=429, retry_after="17")
    error = await expect_error(
        adapter(kind, http, clock).fetch_balances(), ErrorCode.UPSTREAM_RATE_LIMITED
    )
    assert error.retry_after_seconds == 17
    assert error.retryable


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("kind", KINDS)
async def test_5xx_is_upstream_unavailable(
    kind: str, status: int, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind).name, status=status)
    error = await expect_error(
        adapter(kind, http, clock).fetch_balances(), ErrorCode.UPSTREAM_UNAVAILABLE
    )
    assert error.context.status == status


@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_body_is_bad_response(
    kind: str, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind).name, malformed=True)
    await expect_error(adapter(kind, http, clock).fetch_balances(), ErrorCode.UPSTREAM_BAD_RESPONSE)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_documented_failure_body_has_its_code(
    kind: str, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind).name, documented_failure=True)
    code = expected(kind).DOCUMENTED_FAILURE
    balances = adapter(kind, http, clock).fetch_balances()
    if code is None:  # none documented: the fake has nothing to fail with
        assert len(await balances) == len(expected(kind).BALANCES)
    else:
        await expect_error(balances, code)


@pytest.mark.parametrize("kind", KINDS)
async def test_hang_is_upstream_timeout(
    kind: str, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind).name, hang=True)
    slow = adapter(kind, http, clock, timeout_seconds=0.05)
    await expect_error(slow.fetch_balances(), ErrorCode.UPSTREAM_TIMEOUT)


@pytest.mark.parametrize("kind", KINDS)
async def test_every_call_is_counted_per_route(
    kind: str, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    await adapter(kind, http, clock).fetch_balances()
    assert sim.state.calls_to(tenant_of(kind).name, "balance") == 1
