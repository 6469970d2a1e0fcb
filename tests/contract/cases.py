"""The contract suite's cases: every provider in `gateway.registry`, an account for the
first seed tenant of its own fake (not the demo config), and its expectations module."""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

import pytest

from gateway.config.accounts import AccountConfig
from gateway.domain import Capability
from gateway.errors import ErrorCode, UpstreamError
from gateway.providers.loading import spec
from gateway.registry import PROVIDERS
from gateway.simulator.loading import fake_spec
from gateway.upstream.client import UpstreamClient
from tests.helpers import FakeClock, make_channel, parse_settings

KINDS = list(PROVIDERS)


def kinds_with(capability: Capability) -> list[str]:
    """The kinds that offer `capability` through their adapter (a history answered from
    the gateway's own journal is the journal's, not the adapter's)."""
    return [
        k
        for k in KINDS
        if capability in spec(k).capabilities
        and not (capability is Capability.TRANSACTIONS and spec(k).transactions_from_journal)
    ]


def tenant_of(kind: str) -> Any:
    return fake_spec(kind).tenants[0]


def account_of(kind: str, **changes: Any) -> AccountConfig:
    """An account for the fake's first tenant, as a configuration would declare it."""
    fake = fake_spec(kind)
    tenant = tenant_of(kind)
    table = {
        "provider": kind,
        "base_url": f"simulator:{fake.prefix}{fake.path}",
        **fake.account(tenant),
    }
    data = {"server": {"profile": "development"}, "accounts": {tenant.name: table}}
    account = parse_settings(data, {}).accounts[tenant.name]
    return dataclasses.replace(account, **changes)


def adapter(kind: str, http: UpstreamClient, clock: FakeClock, **changes: Any) -> Any:
    account = account_of(kind, **changes)
    return spec(kind).factory(account, make_channel(account, http, clock), clock)


def expected(kind: str) -> ModuleType:
    return importlib.import_module(f"tests.contract.expected.{kind}")


async def expect_error(coro: Any, code: ErrorCode) -> UpstreamError:
    with pytest.raises(UpstreamError) as raised:
        await coro
    assert raised.value.code is code, raised.value.detail
    return raised.value
