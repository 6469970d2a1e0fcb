"""Low-balance thresholds: `Balance.level` and `Balance.thresholds` from the configuration,
levels following the simulator's amounts, totals untouched, and every invalid threshold a
configuration problem that `check-config` names with its fix."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import httpx
import pytest

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
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    ourvoice_fake,
    parse_settings,
    running_gateway,
    with_account,
)

QUERY = """{ balances { totals { currency kind total { amount } available { amount } }
  results { ... on AccountBalance { account { id } balances {
    id level available { amount currency }
    thresholds { warning { amount currency } critical { amount currency } } } } } } }"""


def by_account(answer: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    results = answer["data"]["balances"]["results"]
    return {r["account"]["id"]: r["balances"] for r in results}


async def test_the_demo_shows_a_warning_then_follows_the_amount(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
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


def mudas_and_magmas(*rules: dict[str, Any]) -> dict[str, Any]:
    """A Magma OnePay account `mg` and a Muda account `mu`, each with the rules whose `on`
    names it."""

    def of(account_id: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "on"} for r in rules if r["on"] == account_id]

    return {
        "server": {"profile": "development"},
        "accounts": {
            "mg": {
                "provider": "magma_onepay",
                "base_url": "https://x",
                "private_key": "k" * 10,
                "thresholds": of("mg"),
            },
            "mu": {
                "provider": "muda",
                "base_url": "https://y",
                "api_key": "k" * 10,
                "secret_key": "s" * 10,
                "thresholds": of("mu"),
            },
        },
    }


@pytest.mark.parametrize(
    ("account_id", "rule", "says", "fix"),
    [
        (
            "mg",
            {"asset": "GHS", "currency": "XOF"},
            "wrong currency 'XOF': balances of asset GHS are in GHS",
            'currency = "GHS"',
        ),
        (
            "mg",
            {"balance": "mg:GH:GHS", "currency": "XOF"},
            "wrong currency 'XOF': balance 'mg:GH:GHS' is in GHS",
            'currency = "GHS"',
        ),
        (
            "mu",
            {"asset": "cUGX", "currency": "KES"},
            "wrong currency 'KES': balances of asset cUGX are in UGX",
            'currency = "UGX"',
        ),
        (
            "mu",
            {"asset": "UGX", "currency": "KES"},
            "wrong currency 'KES': balances of asset UGX are in UGX",
            'currency = "UGX"',
        ),
        (
            "mu",
            {"balance": "mu:cKES:issuer_kes", "currency": "UGX"},
            "wrong currency 'UGX': balance 'mu:cKES:issuer_kes' is in KES",
            'currency = "KES"',
        ),
    ],
)
def test_a_currency_the_provider_never_answers_for_that_asset_is_a_problem(
    account_id: str, rule: dict[str, Any], says: str, fix: str
) -> None:
    """Magma OnePay and Muda state each balance's currency, and their docs say which one an
    asset (or a balance key) is in: a rule in another could never match (level null)."""
    with pytest.raises(ConfigError) as raised:
        parse_settings(mudas_and_magmas({**rule, "on": account_id, "warning": "100"}), {})
    (problem,) = raised.value.problems
    assert problem.location == f"accounts.{account_id}.thresholds[0].currency"
    assert (problem.message, problem.fix) == (says, fix)


def test_rules_in_the_documented_currency_pass_and_what_the_spec_cannot_tell_is_left() -> None:
    settings = parse_settings(
        mudas_and_magmas(
            {"on": "mg", "asset": "GHS", "currency": "GHS", "warning": "100"},
            {"on": "mg", "balance": "mg:RDC", "currency": "CDF", "warning": "1"},  # no key
            {"on": "mu", "asset": "cUGX", "currency": "UGX", "warning": "100"},
            {"on": "mu", "balance": "mu:UGX:", "currency": "UGX", "critical": "5"},
            {"on": "mu", "asset": "cKES", "currency": "KES", "critical": "5"},
        ),
        {},
    )
    assert [len(a.thresholds) for a in settings.accounts.values()] == [2, 3]


def test_the_provider_specs_name_each_documented_currency() -> None:
    from gateway.providers.magma_onepay import SPEC as MAGMA
    from gateway.providers.muda import SPEC as MUDA
    from gateway.providers.ourvoice import SPEC as OURVOICE

    assert MAGMA.asset_currency is not None and MAGMA.balance_currency is not None
    assert MAGMA.asset_currency("GHS") == "GHS"
    assert (MAGMA.balance_currency("GH:GHS"), MAGMA.balance_currency("GH")) == ("GHS", None)
    assert MUDA.asset_currency is not None and MUDA.balance_currency is not None
    assert (MUDA.asset_currency("cUGX"), MUDA.asset_currency("KES")) == ("UGX", "KES")
    assert MUDA.balance_currency("cTZS:issuer_tzs") == "TZS"
    assert MUDA.balance_currency("UGX:") == "UGX"  # a balance without an issuer
    assert OURVOICE.asset_currency is None  # one configured currency: checked as before


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("-1", "negative"),
        (-5, "negative"),
        ("1e3", "string"),
        (0.5, "string"),
        ("9" * 16, "string"),
    ],
)
def test_a_bad_hysteresis_is_a_named_problem(value: object, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(
            {
                "server": {"profile": "development"},
                "accounts": {
                    "ov": account(asset="XOF", currency="XOF", warning="10", hysteresis=value)
                },
            },
            {},
        )
    (problem,) = raised.value.problems
    assert problem.location == "accounts.ov.thresholds[0].hysteresis"
    assert says in problem.message


def test_hysteresis_is_an_amount_in_the_rules_currency_and_absent_by_default() -> None:
    def rule(**extra: Any) -> Thresholds:
        raw = account(asset="XOF", currency="XOF", warning="100000", critical="20000", **extra)
        settings = parse_settings(
            {"server": {"profile": "development"}, "accounts": {"ov": raw}}, {}
        )
        (found,) = settings.accounts["ov"].thresholds
        return found.thresholds

    assert rule(hysteresis="500.5").hysteresis == Money(Decimal("500.5"), "XOF")
    assert rule(hysteresis=0).hysteresis == Money(Decimal(0), "XOF")
    assert rule().hysteresis is None  # 1 % of each threshold, the alerts' default
    # the positional order stays: warning, critical, then hysteresis
    xof = Money(Decimal(1), "XOF")
    assert Thresholds(xof, None, xof).hysteresis == xof


def test_a_balance_in_another_currency_than_its_rule_says_so_and_gets_no_level() -> None:
    """For a provider whose currencies are known only when it answers, the configuration
    cannot check the currency: the mismatch is reported, never a silently dead alert."""
    ghs = Money(Decimal(50), "GHS")
    balance = Balance("x:GH:GHS", Asset("GHS", "GHS", AssetKind.CASH), ghs, ghs)
    rule = ThresholdRule(Thresholds(Money(Decimal(100), "XOF"), None), asset="GHS")
    (leveled,) = with_levels((balance,), (rule,))
    assert leveled.level is None
    assert leveled.thresholds is not None and leveled.thresholds.currency_mismatch
    matching = ThresholdRule(Thresholds(Money(Decimal(100), "GHS"), None), asset="GHS")
    (fine,) = with_levels((balance,), (matching,))
    assert fine.level is Level.WARNING
    assert fine.thresholds is matching.thresholds and not fine.thresholds.currency_mismatch


MISMATCH_QUERY = """{ balances(accountIds: ["ourvoice-sn"]) { results { ... on AccountBalance {
  balances { level thresholds { warning { amount currency } hysteresis { amount currency }
    currencyMismatch } } } } } }"""


@pytest.mark.parametrize(
    ("currency", "level", "mismatch"), [("XOF", "WARNING", False), ("EGP", None, True)]
)
async def test_the_schema_shows_hysteresis_and_a_currency_mismatch(
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    currency: str,
    level: str | None,
    mismatch: bool,
) -> None:
    """A throwaway rule, set past the configuration's checks (as a provider whose
    currencies are not known up front would let through)."""

    def money(amount: str) -> Money:
        return Money(Decimal(amount), currency)

    rule = ThresholdRule(Thresholds(money("100000"), None, money("1000")), asset="XOF")
    settings = with_account(demo_settings(), "ourvoice-sn", thresholds=(rule,))
    async with running_gateway(settings, sim_transport, clock) as gw:
        (sn,) = by_account_balances(await gw.query(MISMATCH_QUERY))
    assert sn == {
        "level": level,
        "thresholds": {
            "warning": {"amount": "100000", "currency": currency},
            "hysteresis": {"amount": "1000", "currency": currency},
            "currencyMismatch": mismatch,
        },
    }


def by_account_balances(answer: dict[str, Any]) -> list[dict[str, Any]]:
    (result,) = answer["data"]["balances"]["results"]
    balances: list[dict[str, Any]] = result["balances"]
    return balances
