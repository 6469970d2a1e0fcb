"""Balances at a glance for Prometheus: the per-balance gauges on `/metrics`, and the alert
rules in `deploy/prometheus/alerts.yaml` — checked and unit-tested by promtool, written
only against series the gateway really exports, and shipped in the Kubernetes base."""

from __future__ import annotations

import asyncio
import re
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from gateway.domain import Money, StatementCoverage, ThresholdRule, Thresholds
from gateway.services.close_watch import CloseWatch
from gateway.services.daily_close import AccountClose, BalanceClose, CloseStatus
from gateway.simulator import Simulator
from tests.helpers import (
    ROOT,
    FakeClock,
    GatewayClient,
    demo_settings,
    running_gateway,
    sample,
    with_account,
)

RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
SN = {
    "account": "ourvoice-sn",
    "balance": "ourvoice-sn:credit:XOF",
    "asset": "XOF",
    "kind": "PREPAID_CREDIT",
    "currency": "XOF",
}


async def test_balances_their_levels_thresholds_age_and_failures_are_gauges(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    before = (await gw.http.get("/metrics")).text
    await gw.query("{ balances { complete } }")
    clock.advance(40)
    read = (await gw.http.get("/metrics")).text
    sim.state.set_faults("magma", status=503)
    clock.advance(3600)  # past every stale window: magma now fails in place
    await gw.query("{ balances { complete } }")
    failing = (await gw.http.get("/metrics")).text
    assert "gateway_balance_available{" not in before  # nothing read, nothing to say
    assert sample(read, "gateway_balance_available", **SN) == 50000
    assert sample(read, "gateway_balance_total_amount", **SN) == 50000
    assert sample(read, "gateway_balance_level", **SN) == 1  # WARNING
    assert sample(read, "gateway_balance_threshold", **SN, level="warning") == 100000
    assert sample(read, "gateway_balance_threshold", **SN, level="critical") == 20000
    assert sample(read, "gateway_balance_age_seconds", account="ourvoice-sn") == 40
    assert sample(read, "gateway_account_failing", account="magma") == 0
    assert 'gateway_balance_level{account="magma"' not in read  # no thresholds there
    assert sample(failing, "gateway_account_failing", account="magma") == 1
    assert sample(failing, "gateway_account_failing", account="ourvoice-sn") == 0
    # magma's last balances stay, ageing: what the stale-data alert watches
    assert sample(failing, "gateway_balance_age_seconds", account="magma") == 3640


async def test_the_scrape_passes_promtool_check_metrics(
    promtool: str, sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Prometheus' own linter on a full scrape: every account read, one failing, a
    currency mismatch, a top-up — every family the gateway exports has a valid name, type
    and help."""
    ghs = Thresholds(Money(Decimal(1), "GHS"), None)
    settings = with_account(
        demo_settings(), "ourvoice-ci", thresholds=(ThresholdRule(ghs, asset="XOF"),)
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query("{ balances { complete } }")
        sim.state.set_faults("magma", status=503)
        clock.advance(3600)
        await gw.query("{ balances { complete } }")
        await gw.query(
            'mutation { topUp(input: {accountId: "ourvoice-sn", amount: "10", paymentMethod: '
            '"MTN MOMO", paymentReference: "r", idempotencyKey: "promtool"}) { __typename } }'
        )
        scrape = (await gw.http.get("/metrics")).text
    registry = CollectorRegistry()
    registry.register(closes_watched())  # the daily close's gauge, with a figure
    scrape += generate_latest(registry).decode()
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=scrape,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "gateway_balance_total_amount{" in scrape


def test_the_rules_are_valid(promtool: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], check=False, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


def test_the_rules_fire_as_their_unit_tests_say(promtool: str) -> None:
    tested = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], check=False, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


async def test_the_rules_ask_only_for_series_the_gateway_exports(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    wanted = {name for rule in rules for name in re.findall(r"gateway_\w+", rule["expr"])}
    # A rule in another currency than its balance, as only a provider whose currencies are
    # not known up front allows (the configuration refuses it for the four we have).
    ghs = Thresholds(Money(Decimal(1), "GHS"), None)
    settings = with_account(
        demo_settings(), "ourvoice-ci", thresholds=(ThresholdRule(ghs, asset="XOF"),)
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query("{ balances { complete } }")
        exported = set(re.findall(r"^(gateway_\w+)\{", (await gw.http.get("/metrics")).text, re.M))
    exported |= {m.name for m in closes_watched().collect() if m.samples}
    assert wanted and wanted <= exported, wanted - exported
    assert {r["alert"] for r in rules} == {
        "BalanceBelowWarning",
        "BalanceBelowCritical",
        "BalanceDataStale",
        "ProviderFailing",
        "BalanceRunsOutWithinADay",
        "ThresholdCurrencyMismatch",
        "DailyCloseUnexplained",
    }


def closes_watched() -> CloseWatch:
    """A close watch holding one UNEXPLAINED day (the demo's readings make no whole day)."""
    statement = BalanceClose(
        "muda-ug:UGX:issuer_ugx",
        "muda-ug",
        "UGX",
        date(2024, 6, 3),
        "UTC",
        StatementCoverage.BOTH,
        CloseStatus.UNEXPLAINED,
        Decimal(0),
        None,
        Decimal(900),
        None,
        Decimal(0),
        Decimal(0),
        Decimal(0),
        Decimal(0),
        Decimal(0),
        Decimal(900),
    )
    watch = CloseWatch(cast(Any, None), ["muda-ug"], FakeClock(), 900.0)
    watch.closes["muda-ug"] = AccountClose("muda-ug", date(2024, 6, 3), "UTC", (statement,), (), ())
    return watch


def test_the_kubernetes_base_ships_the_same_rules() -> None:
    out = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "kubectl"),
            "kustomize",
            str(ROOT / "deploy/kubernetes/base"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (alerts,) = [
        d
        for d in yaml.safe_load_all(out)
        if d and d["metadata"]["name"].startswith("balance-gateway-alerts")
    ]
    assert alerts["kind"] == "ConfigMap"
    assert alerts["data"]["alerts.yaml"] == RULES.read_text()
    assert Path(RULES).resolve() == (ROOT / "deploy/kubernetes/base/alerts.yaml").resolve()
