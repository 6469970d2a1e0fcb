"""Issue #28's "done when": the CSV, the cron command, the GraphQL field and the dashboard's
section show the same close for the demo. The demo (its config, its simulator) on an
injected clock read every hour from the day before yesterday to now, with one movement
Muda's statement never lists yesterday; then each account's yesterday (in its reporting
time zone) read four ways — `dailyClose` without a date, `/reports/daily-close.csv`,
`balance-gateway report daily-close` (its own process state, the same journal) and the
page in Debian's Chromium — and compared figure by figure. A key without
transactions:read does not see the section."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from gateway.cli import main as cli_main
from gateway.config.security import ClientConfig
from gateway.observability.log_context import RequestContext
from gateway.server.auth import key_hash
from gateway.simulator import create_simulator
from gateway.simulator.books import Movement
from gateway.simulator.state import SimState
from tests.helpers import FakeClock, demo_text, load_settings, serving
from tests.system.test_graphiql_browser import CHROMIUM, FLAGS, browser_or_skip

CLOSE = """{ dailyClose { account { id } day
  statements { balanceId status unexplained closing } } }"""
BALANCES_ONLY_KEY = "bgw_balances-only-key-0123456789abcdef"
Figures = dict[tuple[str, str], tuple[str, str, str]]  # (account, balance) → figures


def from_csv(text: str) -> Figures:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {
        (r["account"], r["balance"]): (r["status"], r["unexplained"], r["closing"]) for r in rows
    }


async def test_the_demo_close_is_the_same_in_the_csv_cli_graphql_and_dashboard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    browser_or_skip()
    from playwright.async_api import async_playwright

    config = tmp_path / "demo.toml"
    config.write_text(demo_text())  # its journal lands beside it, for the CLI too
    now = time.time()
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today.timestamp() - 86400 - 4 * 3600  # before Cairo's yesterday began
    clock = FakeClock(start)
    simulator = create_simulator(SimState(clock=clock))
    simulator.state.books.post(  # yesterday noon (UTC): 1,000 UGX in, fee 100, never listed
        "muda-ug",
        Movement(
            "m-demo",
            "UGX",
            "PULL",
            True,
            Decimal(1000),
            today.timestamp() - 43200,
            Decimal(100),
            fault="missing_row",
        ),
    )
    async with serving(RequestContext(simulator.app)) as sim_url:
        port = sim_url.rsplit(":", 1)[1]
        settings = load_settings(str(config), env={}, simulator_port=int(port))
        reader = ClientConfig(
            "reader", key_hash(BALANCES_ONLY_KEY), frozenset({"balances:read"}), None
        )
        settings = dataclasses.replace(
            settings,
            security=dataclasses.replace(settings.security, clients={"reader": reader}),
        )
        from gateway.app import create_app

        app = create_app(settings, clock=clock)
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            at = start
            while at < now:  # hourly readings, then one now
                clock.now = at
                answer = (
                    await http.post("/graphql", json={"query": "{ balances { complete } }"})
                ).json()
                assert answer["data"]["balances"]["complete"], answer
                await app.state.recorder.flush()
                at = min(at + 3600, now) if at < now - 1 else now
            clock.now = now
            graphql: Figures = {}
            days: dict[str, list[str]] = {}
            closes = (await http.post("/graphql", json={"query": CLOSE})).json()["data"][
                "dailyClose"
            ]
            for close in closes:
                days.setdefault(close["day"], []).append(close["account"]["id"])
                for s in close["statements"]:
                    graphql[(close["account"]["id"], s["balanceId"])] = (
                        s["status"],
                        s["unexplained"] or "",
                        s["closing"] or "",
                    )
            served: Figures = {}
            cron: Figures = {}
            for day, ids in days.items():
                params = {"date": day, "accountIds": ",".join(ids)}
                report = await http.get("/reports/daily-close.csv", params=params)
                assert report.status_code == 200
                served |= from_csv(report.text)
                capsys.readouterr()
                arguments = [
                    "report",
                    "daily-close",
                    "--config",
                    str(config),
                    "--date",
                    day,
                    "--accounts",
                    ",".join(ids),
                    "--simulator-port",
                    port,
                ]
                assert await asyncio.to_thread(cli_main, arguments) in (0, 3)
                cron |= from_csv(capsys.readouterr().out)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=FLAGS
                )
                try:
                    page = await browser.new_page(viewport={"width": 1280, "height": 900})
                    await page.goto(f"{url}/dashboard")
                    section = page.locator("#close")
                    await section.locator("article").first.wait_for(timeout=30_000)
                    dashboard: Figures = {}
                    for card in await section.locator("article").all():
                        account = await card.get_attribute("data-close-account") or ""
                        for item in await card.locator("li.balance").all():
                            balance = await item.get_attribute("data-balance") or ""
                            dashboard[(account, balance)] = (
                                await item.locator(".badge").text_content() or "",
                                await item.locator("dd.unexplained").get_attribute("data-amount")
                                or "",
                                await item.locator("dd.closing").get_attribute("data-amount") or "",
                            )
                    muda = section.locator('li[data-balance="muda-ug:UGX:issuer_ugx"]')
                    muda_text = await muda.text_content() or ""
                    paymob = section.locator('article[data-close-account="paymob-eg"] .why').first
                    paymob_text = await paymob.text_content() or ""
                    ourvoice = section.locator(
                        'article[data-close-account="ourvoice-sn"] .why'
                    ).first
                    ourvoice_text = await ourvoice.text_content() or ""
                    # A key without transactions:read: the balances, and no close at all.
                    await page.locator("#key").fill(BALANCES_ONLY_KEY)
                    await page.locator("#key-form button[type=submit]").click()
                    await page.locator("#status").get_by_text("Updated").wait_for(timeout=30_000)
                    await page.wait_for_function("() => document.querySelector('#close').hidden")
                    assert (
                        await page.locator('#accounts article[data-account="muda-ug"]').count() == 1
                    )
                    await page.set_viewport_size({"width": 390, "height": 844})
                    await page.locator("#forget").click()
                    await page.locator("#key-form").evaluate("f => f.requestSubmit()")
                    await section.locator("article").first.wait_for(timeout=30_000)
                    await page.screenshot(path=str(tmp_path / "close-phone.png"), full_page=True)
                finally:
                    await browser.close()
    assert graphql and graphql == served == cron == dashboard
    assert graphql[("muda-ug", "muda-ug:UGX:issuer_ugx")][:2] == ("UNEXPLAINED", "900.0000000")
    assert "UNEXPLAINED" in muda_text and "900 UGX" in muda_text and "missing row" in muda_text
    assert graphql[("ourvoice-sn", "ourvoice-sn:credit:XOF")][0] == "BALANCE_DELTA_ONLY"
    assert "publishes no statement" in ourvoice_text
    assert paymob_text  # its own day (Africa/Cairo), explained whatever its status
    print(sorted(graphql.items()), paymob_text, sep="\n")
