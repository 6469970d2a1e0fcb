"""One contract suite, run against every registered provider through the simulator."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from gateway.config.accounts import AccountConfig, Secret
from gateway.domain import AssetKind, ProviderKind
from gateway.errors import ErrorCode, UpstreamError
from gateway.providers.registry import ADAPTERS, spec
from gateway.simulator import Simulator, seed
from gateway.upstream.client import UpstreamClient
from tests.helpers import FakeClock, demo_settings, first_account_of, make_channel

# What each provider's seed must look like once normalised: id → (total, available, kind).
EXPECTED: dict[ProviderKind, dict[str, tuple[str, str, AssetKind]]] = {
    ProviderKind.OURVOICE: {"ourvoice-sn:credit:XOF": ("50000", "50000", AssetKind.PREPAID_CREDIT)},
    ProviderKind.MAGMA_ONEPAY: {
        f"magma:{'CD' if c['code'] == 'RDC' else c['code']}:{c['currency']}": (
            str(c["balance"]),
            str(c["balance_available"]),
            AssetKind.CASH,
        )
        for c in seed.MAGMA[0].corridors
    },
    ProviderKind.MUDA: {
        "muda-ug:UGX:issuer_ugx": ("4621.0000000", "4621.0000000", AssetKind.CASH),
        "muda-ug:KES:issuer_kes": ("1520.5000000", "1520.5000000", AssetKind.CASH),
        "muda-ug:TZS:issuer_tzs": ("0", "0", AssetKind.CASH),
        "muda-ug:cUGX:issuer_ugx": ("650.0000000", "650.0000000", AssetKind.COLLATERAL),
        "muda-ug:cKES:issuer_kes": ("0", "0", AssetKind.COLLATERAL),
        "muda-ug:cTZS:issuer_tzs": ("12.2500000", "12.2500000", AssetKind.COLLATERAL),
    },
    ProviderKind.PAYMOB_BILLS: {
        "paymob-eg:available:EGP": ("1292.25", "1292.25", AssetKind.CASH),
        "paymob-eg:commission:EGP": ("12.90", "12.90", AssetKind.COMMISSION),
    },
}

KINDS = [ProviderKind(k) for k in ADAPTERS]


def test_every_registered_provider_has_a_contract_expectation() -> None:
    assert set(EXPECTED) == set(KINDS)


def account_for(kind: ProviderKind, **changes: object) -> AccountConfig:
    account = first_account_of(demo_settings(), kind.value)
    return dataclasses.replace(account, **changes)  # type: ignore[arg-type]


def adapter(kind: ProviderKind, http: UpstreamClient, clock: FakeClock, **changes: object):  # type: ignore[no-untyped-def]
    account = account_for(kind, **changes)
    return spec(kind.value).factory(account, make_channel(account, http, clock), clock)


async def expect_error(coro: object, code: ErrorCode) -> UpstreamError:
    with pytest.raises(UpstreamError) as raised:
        await coro  # type: ignore[misc]
    assert raised.value.code is code, raised.value.detail
    return raised.value


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
async def test_happy_path_matches_the_seed_exactly(
    kind: ProviderKind, http: UpstreamClient, clock: FakeClock
) -> None:
    balances = await adapter(kind, http, clock).fetch_balances()
    got = {b.id: (str(b.total.amount), str(b.available.amount), b.asset.kind) for b in balances}
    assert got == EXPECTED[kind]
    for balance in balances:
        assert isinstance(balance.total.amount, Decimal)
        assert balance.updated_at is None or balance.updated_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
async def test_wrong_credentials_are_upstream_unauthorized(
    kind: ProviderKind, http: UpstreamClient, clock: FakeClock
) -> None:
    account = account_for(kind)
    wrong = {name: Secret("wrong-" + s.reveal()) for name, s in account.credentials.items()}
    account = dataclasses.replace(account, credentials=wrong)
    bad = spec(kind.value).factory(account, make_channel(account, http, clock), clock)
    error = await expect_error(bad.fetch_balances(), ErrorCode.UPSTREAM_UNAUTHORIZED)
    assert not error.retryable


def tenant_of(kind: ProviderKind) -> str:
    return account_for(kind).id


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
async def test_429_is_rate_limited_with_retry_after(
    kind: ProviderKind, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind), status=429, retry_after="17")
    error = await expect_error(
        adapter(kind, http, clock).fetch_balances(), ErrorCode.UPSTREAM_RATE_LIMITED
    )
    assert error.retry_after_seconds == 17
    assert error.retryable


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
async def test_5xx_is_upstream_unavailable(
    kind: ProviderKind, status: int, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind), status=status)
    error = await expect_error(
        adapter(kind, http, clock).fetch_balances(), ErrorCode.UPSTREAM_UNAVAILABLE
    )
    assert error.context.status == status


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
async def test_malformed_body_is_bad_response(
    kind: ProviderKind, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind), malformed=True)
    await expect_error(adapter(kind, http, clock).fetch_balances(), ErrorCode.UPSTREAM_BAD_RESPONSE)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
async def test_hang_is_upstream_timeout(
    kind: ProviderKind, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    sim.state.set_faults(tenant_of(kind), hang=True)
    slow = adapter(kind, http, clock, timeout_seconds=0.05)
    await expect_error(slow.fetch_balances(), ErrorCode.UPSTREAM_TIMEOUT)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
async def test_every_call_is_counted_per_route(
    kind: ProviderKind, http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    await adapter(kind, http, clock).fetch_balances()
    assert sim.state.calls_to(tenant_of(kind), "balance") == 1
