"""Low-balance thresholds: `Balance.level` and `Balance.thresholds` from the configuration,
levels following the simulator's amounts, totals untouched, and every invalid threshold a
configuration problem that `check-config` names with its fix."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config.settings import parse_settings
from gateway.domain import (
    Asset,
    AssetKind,
    Balance,
    Level,
    Money,
    ThresholdRule,
    Thresholds,
    with_levels,
)
from gateway.errors import ConfigError
from gateway.simulator import Simulator
from tests.helpers import FakeClock, demo_settings, ourvoice_fake, running_gateway

QUERY = """{ balances { totals { currency kind total { amount } available { amount } }
  results { ... on AccountBalance { account { id } balances {
    id level available { amount currency }
    thresholds { warning { amount currency } critical { amount currency } } } } } } }"""


def by_account(answer: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    results = answer["data"]["balances"]["results"]
    return {r["account"]["id"]: r["balances"] for r in results}


async def test_the_demo_shows_a_warning_then_follows_the_amount(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gw:
        first = await gw.query(QUERY)
        (sn,) = by_account(first)["ourvoice-sn"]
        assert sn["available"] == {"amount": "50000", "currency": "XOF"}
        assert sn["level"] == "WARNING"
        assert sn["thresholds"] == {
            "warning": {"amount": "100000", "currency": "XOF"},
            "critical": {"amount": "20000", "currency": "XOF"},
        }
        others = [b for a, bs in by_account(first).items() if a != "ourvoice-sn" for b in bs]
        assert others and all(b["level"] is None and b["thresholds"] is None for b in others)
        levels = []
        for amount in ("20000", "19999.99", "100000.01", "100000"):
            ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal(amount)
            clock.advance(60)  # past the fresh window: read again
            (sn,) = by_account(await gw.query(QUERY))["ourvoice-sn"]
            levels.append(sn["level"])
    assert levels == ["CRITICAL", "CRITICAL", "OK", "WARNING"]  # at or below each level


async def test_thresholds_leave_totals_as_they_are(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = demo_settings()
    without = dataclasses.replace(
        settings,
        accounts={k: dataclasses.replace(a, thresholds=()) for k, a in settings.accounts.items()},
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        leveled = (await gw.query(QUERY))["data"]["balances"]["totals"]
    async with running_gateway(without, sim_transport, clock) as gw:
        plain = (await gw.query(QUERY))["data"]["balances"]["totals"]
    assert leveled == plain


def test_a_rule_for_the_balance_wins_over_one_for_its_asset() -> None:
    def xof(amount: str) -> Money:
        return Money(Decimal(amount), "XOF")

    asset = Asset("XOF", "XOF", AssetKind.CASH)
    balances = (
        Balance("a:main", asset, xof("500"), xof("500")),
        Balance("a:other", asset, xof("500"), xof("500")),
        Balance(
            "a:egp",
            Asset("EGP", "EGP", AssetKind.CASH),
            Money(Decimal(1), "EGP"),
            Money(Decimal(1), "EGP"),
        ),
    )
    rules = (
        ThresholdRule(Thresholds(xof("1000"), None), asset="XOF"),
        ThresholdRule(Thresholds(None, xof("100")), balance="a:main"),
        ThresholdRule(Thresholds(xof("5"), None), asset="EGP"),  # in XOF: nothing to compare
    )
    main, other, egp = with_levels(balances, rules)
    assert (main.level, other.level, egp.level) == (Level.OK, Level.WARNING, None)
    assert egp.thresholds is not None  # shown, though no level can be told
    assert with_levels(balances, ()) is balances


def account(**thresholds: Any) -> dict[str, Any]:
    return {
        "provider": "ourvoice",
        "base_url": "https://x",
        "api_key": "k" * 10,
        "currency": "XOF",
        "thresholds": [thresholds],
    }


@pytest.mark.parametrize(
    ("rule", "where", "says"),
    [
        (
            {"asset": "XOF", "currency": "EGP", "warning": "10"},
            "thresholds[0].currency",
            "wrong currency 'EGP'",
        ),
        (
            {"asset": "XOF", "currency": "XOF", "warning": "10", "critical": "20"},
            "thresholds[0].warning",
            "warning 10 is not above critical 20",
        ),
        (
            {"balance": "other:main", "currency": "XOF", "warning": "10"},
            "thresholds[0].balance",
            "unknown balance id 'other:main'",
        ),
        ({"asset": "XOF", "currency": "XOF"}, "thresholds[0]", "sets neither"),
        ({"asset": "XOF", "currency": "XOF", "warning": 10.5}, "thresholds[0].warning", "string"),
        ({"asset": "XOF", "currency": "XOF", "warning": "1e5"}, "thresholds[0].warning", "string"),
        (
            {"asset": "XOF", "currency": "XOF", "warning": "9" * 16},
            "thresholds[0].warning",
            "string",
        ),
        (
            {"asset": "XOF", "balance": "ov:x", "currency": "XOF", "warning": "1"},
            "thresholds[0]",
            "one asset",
        ),
        ({"asset": "XOF", "warning": "1"}, "thresholds[0].currency", "missing"),
        (
            {"asset": "XOF", "currency": "XOF", "warning": "1", "below": "2"},
            "thresholds[0].below",
            "",
        ),
    ],
)
def test_an_invalid_threshold_is_a_named_configuration_problem(
    rule: dict[str, Any], where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(
            {"server": {"profile": "development"}, "accounts": {"ov": account(**rule)}}, {}
        )
    found = {p.location: p.message for p in raised.value.problems}
    assert f"accounts.ov.{where}" in found, found
    assert says in found[f"accounts.ov.{where}"]


def test_two_rules_for_one_asset_are_a_problem_and_whole_amounts_may_be_integers() -> None:
    raw = account(asset="XOF", currency="XOF", warning=100)
    raw["thresholds"].append({"asset": "XOF", "currency": "XOF", "critical": "5"})
    with pytest.raises(ConfigError) as raised:
        parse_settings({"server": {"profile": "development"}, "accounts": {"ov": raw}}, {})
    (problem,) = raised.value.problems
    assert problem.location == "accounts.ov.thresholds[1]" and "a second rule" in problem.message
    raw["thresholds"].pop()
    settings = parse_settings({"server": {"profile": "development"}, "accounts": {"ov": raw}}, {})
    (rule,) = settings.accounts["ov"].thresholds
    assert rule.thresholds.warning == Money(Decimal(100), "XOF")
