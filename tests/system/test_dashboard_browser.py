"""The `/dashboard` page in a real browser: Debian's Chromium driven by Playwright, every
request to a host other than 127.0.0.1 blocked, against the real app and simulator served
on loopback with an injected clock (so "stale" is a tick, not a wait).

It shows the simulator's exact amounts and the demo's WARNING level; a simulated 503 shows
the stale badge with its reason; a top-up through the form credits once although the
button is double-clicked; a key entered is kept in the tab's sessionStorage and sent as a
header, never in a URL; axe-core (from npm, injected into the page) finds no serious
accessibility violation; screenshots at desktop and phone widths, light and dark, are
saved as test output."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.app import create_app
from gateway.observability.log_context import RequestContext
from gateway.simulator import create_simulator
from gateway.simulator.state import SimState
from tests.helpers import FakeClock, demo_text, load_settings, ourvoice_fake, serving
from tests.system.processes import npm_installed
from tests.system.test_graphiql_browser import CHROMIUM, FLAGS, browser_or_skip

AXE = "axe-core@4.11.4"
SCREENSHOTS = (
    Path(os.environ.get("DASHBOARD_SCREENSHOTS", ""))
    if os.environ.get("DASHBOARD_SCREENSHOTS")
    else None
)


def card(page: Any, account: str) -> Any:
    return page.locator(f'article[data-account="{account}"]')


async def test_the_dashboard_in_a_browser(tmp_path: Path, node: tuple[str, str]) -> None:
    browser_or_skip()
    from playwright.async_api import Route, async_playwright

    _, npm = node
    axe = npm_installed(npm, tmp_path / "axe", [AXE]) / "node_modules" / "axe-core" / "axe.min.js"
    config = tmp_path / "demo.toml"
    config.write_text(demo_text())  # its journal lands beside it
    clock = FakeClock(time.time())
    simulator = create_simulator(SimState(clock=clock))
    blocked: list[str] = []
    console: list[str] = []
    requests: list[tuple[str, str | None]] = []

    async def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async with serving(RequestContext(simulator.app)) as sim_url:
        port = int(sim_url.rsplit(":", 1)[1])
        settings = load_settings(str(config), env={}, simulator_port=port)
        async with serving(create_app(settings, clock=clock)) as url, async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=FLAGS
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.route("**/*", only_loopback)
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
                page.on(
                    "request",
                    lambda r: requests.append((r.url, r.headers.get("authorization"))),
                )
                response = await page.goto(f"{url}/dashboard")
                assert response is not None and response.status == 200
                csp = response.headers["content-security-policy"]
                sn = card(page, "ourvoice-sn")
                await sn.wait_for(timeout=30_000)

                # The simulator's exact amount, formatted for people; the demo's WARNING.
                sn_balance = sn.locator("li.balance").first
                assert await sn_balance.locator(".amount").text_content() == "50,000 XOF"
                assert await sn_balance.locator(".badge.level").text_content() == "WARNING"
                assert await sn_balance.locator(".what").text_content() == "available"
                # The demo's made-up week: the history line and the runway on first open,
                # and a word that the past is made up.
                assert await sn_balance.locator("svg.spark").count() == 1
                assert "runs out around" in (
                    await sn_balance.locator(".runway").text_content() or ""
                )
                assert (
                    await sn_balance.locator(".made-up").text_content()
                    == "history before the demo started is made up"
                )
                assert await sn_balance.locator(".total").text_content() == "of 50,000 XOF total"
                # The reporting currency's totals ([reporting] in the demo): the CFA
                # francs exact, the rest at the demo's rates, CDF named as left out.
                reporting = page.locator("#totals li.reporting")
                credit = await reporting.filter(has_text="prepaid credit").text_content() or ""
                assert "All in EUR" in credit and "exact (fixed parity)" in credit
                assert "≈" not in credit
                cash = await reporting.filter(has_text="cash").text_content() or ""
                assert "≈ " in cash and "rates as of 2024-06-03" in cash
                assert "not converted: CDF" in cash and "rounded half-even" in cash
                magma = card(page, "magma")
                magma_text = await magma.text_content() or ""
                assert "98,000,000 GNF" in magma_text and "15,230.75 GHS" in magma_text
                # Each corridor names its country; each ledger asset its issuer; the
                # ledger's 7 decimals trimmed to the currency's minor unit, never a digit.
                rows = [await r.text_content() or "" for r in await magma.locator(".asset").all()]
                assert "XOF · cash · Benin" in rows and "XOF · cash · Mali" in rows
                muda_text = await card(page, "muda-ug").text_content() or ""
                assert "UGX · cash · Uganda · issuer issuer_ugx" in muda_text
                assert "4,621 UGX" in muda_text and "1,520.50 KES" in muda_text
                assert "12.25 TZS" in muda_text and "0000000" not in muda_text

                # Yesterday's close: the demo has no reading of yesterday, so each balance
                # is INCOMPLETE and says what is missing.
                close = page.locator('#close article[data-close-account="muda-ug"]')
                await close.wait_for(timeout=30_000)
                first = close.locator("li.balance").first
                assert await first.locator(".badge").text_content() == "INCOMPLETE"
                assert (await first.locator(".why").text_content() or "").startswith(
                    "Incomplete — opening: no balance reading in the hour before the day began"
                )

                # A failing provider: the cached answer, marked stale, with the reason.
                simulator.state.set_faults("magma", status=503)
                clock.advance(16)  # past the fresh window
                await page.evaluate("() => document.querySelector('#key-form').requestSubmit()")
                await magma.locator(".badge.stale").wait_for(timeout=30_000)
                assert "UPSTREAM_UNAVAILABLE" in (
                    await magma.locator(".badge.stale").text_content() or ""
                )
                assert (
                    await magma.locator(".reason").text_content() == "The provider is unavailable."
                )
                simulator.state.clear_faults("magma")

                # A top-up through the form, the button double-clicked: credited once.
                form = sn.locator("form.topup")
                await form.locator('input[name="amount"]').fill("1000")
                await form.locator('input[name="reference"]').fill("dashboard-1")
                await form.locator("button").dblclick()
                outcome = card(page, "ourvoice-sn").locator(".outcome")
                await outcome.get_by_text("Credited").wait_for(timeout=30_000)
                assert await outcome.text_content() == "Credited 1,000 XOF."
                assert len(ourvoice_fake(simulator).credits["ourvoice-sn"]) == 1
                assert ourvoice_fake(simulator).balances["ourvoice-sn"] == Decimal(51_000)

                # A key is kept for the tab and sent as a header — never in a URL.
                await page.locator("#key").fill("bgw_not-a-real-key-0123456789")
                await page.locator("#key-form button[type=submit]").click()
                await (
                    page.locator("#status").get_by_text("UNAUTHENTICATED").wait_for(timeout=30_000)
                )
                stored = await page.evaluate("() => sessionStorage.getItem('balance-gateway-key')")
                assert stored == "bgw_not-a-real-key-0123456789"
                assert ("Bearer bgw_not-a-real-key-0123456789") in [a for _, a in requests]
                assert all("bgw_" not in u for u, _ in requests)
                await page.locator("#forget").click()
                assert (
                    await page.evaluate("() => sessionStorage.getItem('balance-gateway-key')")
                    is None
                )
                await page.locator("#key-form").evaluate("f => f.requestSubmit()")
                await card(page, "ourvoice-sn").wait_for(timeout=30_000)

                shots = SCREENSHOTS or tmp_path
                await page.screenshot(path=str(shots / "dashboard-desktop.png"), full_page=True)
                await page.set_viewport_size({"width": 390, "height": 844})
                await page.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
                await page.emulate_media(color_scheme="dark")
                await page.screenshot(path=str(shots / "dashboard-phone-dark.png"), full_page=True)

                # Accessibility: axe-core run in the page (a context that lets the test
                # inject it; the page itself allows no script but its own).
                scan = await browser.new_page(
                    bypass_csp=True, viewport={"width": 1280, "height": 900}
                )
                await scan.route("**/*", only_loopback)
                await scan.goto(f"{url}/dashboard")
                await card(scan, "ourvoice-sn").wait_for(timeout=30_000)
                await scan.add_script_tag(path=str(axe))
                results = await scan.evaluate("() => axe.run(document)")
                await scan.emulate_media(color_scheme="dark")
                dark = await scan.evaluate("() => axe.run(document)")
            finally:
                await browser.close()
    print(f"screenshots: {shots}")
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in results["violations"] + dark["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], json.dumps(serious, indent=1)
    assert blocked == []  # nothing outside 127.0.0.1 was even tried
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    errors = [c for c in console if c.startswith(("error", "pageerror"))]
    # the failed loads are the deliberately wrong key's 401s: one, or more when the page's
    # 15-second refresh came round while that key was set (a slow machine)
    wrong_key = (
        "error: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    )
    assert errors and set(errors) == {wrong_key}, console
