"""GraphiQL in a real browser with no internet: Debian's Chromium, driven by Playwright,
every request to a host other than 127.0.0.1 blocked. The editor renders from the
gateway's own files, runs the demo query and shows the simulator's `ourvoice-sn` amount."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import demo_text, free_port
from tests.system.processes import CLI, clean_env, started

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking"]


def browser_or_skip() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed"
    else:
        if CHROMIUM.exists():
            return
        reason = f"no {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: required in CI")
    pytest.skip(reason)


def test_graphiql_renders_loads_the_schema_and_runs_the_demo_query_offline(
    tmp_path: Path,
) -> None:
    browser_or_skip()
    from playwright.sync_api import Route, sync_playwright

    config = tmp_path / "demo.toml"
    config.write_text(demo_text())  # its journal lands beside it, not in the repository
    port, sim_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(CLI), "serve", "--config", str(config), "--port", str(port)]
    argv += ["--simulator-port", str(sim_port)]
    blocked: list[str] = []
    console: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with started(argv, tmp_path / "logs", env=clean_env()) as gateway, sync_playwright() as pw:
        gateway.wait_http(f"{url}/healthz")
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", only_loopback)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            response = page.goto(f"{url}/graphql", wait_until="networkidle")
            assert response is not None and response.status == 200
            csp = response.headers["content-security-policy"]
            page.locator(".graphiql-container").wait_for(timeout=30_000)
            page.locator(".graphiql-execute-button").click()
            result = page.locator(".graphiql-response")
            result.get_by_text('"complete"').wait_for(timeout=30_000)
            # The response editor draws only the lines in view; the whole answer, as a
            # user scrolling it would read it, is the editor's value.
            answer = result.locator(".CodeMirror").evaluate(
                "editor => editor.CodeMirror.getValue()"
            )
            page.screenshot(path=str(tmp_path / "graphiql.png"), full_page=True)
            # The schema GraphiQL loaded with its own introspection query: the Docs pane
            # lists Query's fields, and typing offers `balances`.
            page.locator('button[aria-label="Show Documentation Explorer"]').click()
            docs = page.locator(".graphiql-doc-explorer")
            docs.locator("a", has_text="Query").first.click()
            docs.get_by_text("Balances of the given accounts").wait_for(timeout=10_000)
            query_fields = docs.inner_text()
            editor = page.locator(".graphiql-query-editor .CodeMirror")
            editor.evaluate("editor => editor.CodeMirror.setValue('')")
            editor.click()
            page.keyboard.type("{ bal", delay=30)
            hints = page.locator(".CodeMirror-hints")
            hints.wait_for(timeout=10_000)
            offered = hints.inner_text()
        finally:
            browser.close()
    print(f"screenshot: {tmp_path / 'graphiql.png'}")
    assert blocked == []  # nothing was even tried outside 127.0.0.1: no CDN
    assert "balances(" in query_fields and "transactions(" in query_fields
    assert "balances" in offered.split()
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert not [line for line in console if "Content Security Policy" in line], console
    assert not [line for line in console if line.startswith(("error", "pageerror"))], console
    report = json.loads(answer)["data"]["balances"]
    assert report["complete"] is True
    # the development caller's trace, asked for by the header GraphiQL starts with
    traced = {a["account"] for a in json.loads(answer)["extensions"]["trace"]["accounts"]}
    assert "ourvoice-sn" in traced
    (ourvoice,) = [r for r in report["results"] if r["account"]["id"] == "ourvoice-sn"]
    assert ourvoice["balances"][0]["total"] == {"amount": "50000", "currency": "XOF"}
