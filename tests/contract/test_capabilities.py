"""Every provider in the registry is complete: an adapter and a fake load by name, the
contract suite has its expectations, and what its spec declares its adapter implements
(today's `cast`s trusted it)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.domain import Capability, ProviderKind
from gateway.providers.loading import spec
from gateway.providers.protocols import BalanceProvider, TopUpProvider, TransactionSource
from gateway.simulator.loading import fake_spec
from gateway.upstream.client import UpstreamClient
from tests.contract.cases import KINDS, adapter, expected
from tests.helpers import FakeClock


@pytest.mark.parametrize("kind", KINDS)
def test_a_registered_provider_has_an_adapter_a_fake_and_expectations(kind: str) -> None:
    provider = spec(kind)
    assert provider.kind is ProviderKind(kind)
    assert Capability.BALANCE in provider.capabilities
    assert fake_spec(kind).tenants, "its fake needs a seed tenant the contract suite can use"
    assert expected(kind).BALANCES


@pytest.mark.parametrize("kind", KINDS)
def test_an_adapter_implements_every_capability_its_spec_declares(
    kind: str, http: UpstreamClient, clock: FakeClock
) -> None:
    provider, built = spec(kind), adapter(kind, http, clock)
    assert isinstance(built, BalanceProvider)
    if Capability.TOP_UP in provider.capabilities:
        assert isinstance(built, TopUpProvider)
    if Capability.TRANSACTIONS in provider.capabilities and not provider.transactions_from_journal:
        assert isinstance(built, TransactionSource)
    if provider.transactions_from_journal:
        assert Capability.TOP_UP in provider.capabilities  # its journal is of top-ups


def test_the_start_refuses_an_adapter_missing_a_declared_capability() -> None:
    from gateway.app import capabilities
    from tests.contract.cases import account_of

    magma = account_of("magma_onepay")
    claims = dataclasses.replace(magma, capabilities=(Capability.TOP_UP,))
    with pytest.raises(TypeError, match="declares TOP_UP"):
        capabilities({magma.id: claims}, {magma.id: object()}, journal=None)  # type: ignore[arg-type]
