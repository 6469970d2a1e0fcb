"""Every example in README.md and docs/ runs, in reading order, against one running demo.

The reading order is README.md, then each docs/ page in the order of the README's map of
the docs (its "The docs" section, parsed here; every docs/*.md page must be in it). The
examples run in that order against the one demo, so a page may rely on what an earlier page
did (a top-up changes a balance, a fresh read is written to the history).

The demo is what `make run` serves — the app built from a copy of `deploy/demo.toml`, the
simulator, both on free ports of 127.0.0.1 over real HTTP — with two differences: the
clock is injected, so "sixteen seconds after the demo query" takes no time, and the app's
metrics listener (what `[metrics] listen` opens) is served too, on a free port. Each `sh`
block runs in bash from the repository's root (the real CLI as a subprocess, real curl),
with the demo's ports and config copy put in place of `127.0.0.1:8000`, `127.0.0.1:8001`,
`127.0.0.1:9464` (the listener) and `deploy/demo.toml`; each `graphql` block is POSTed to
the gateway.

Every `sh` and `graphql` block is marked `<!-- example: NAME -->` and must have a check
below; a `json` block marked `<!-- answer: NAME -->` is that example's answer, asserted
exactly — except that a string ending in "…" stands for any string starting with what is
before it (a provider's transaction UUID, say); an answer belongs to an example of its own
page. Every `toml` block must parse; one marked `<!-- example: NAME -->` is configuration
to run too: added to the demo's config (so its tables must be new there), it is checked by
the real `balance-gateway check-config`, which must accept it, and its check reads what
that printed. A new example without a check, or a check whose example is gone (from every
page), fails the test — so no example can rot.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.cli import main as cli_main
from gateway.observability.log_context import RequestContext
from gateway.server.metrics_listener import metrics_only
from gateway.simulator import create_simulator
from gateway.simulator.state import SimState
from tests.helpers import (
    ROOT,
    FakeClock,
    demo_text,
    load_settings,
    merge,
    multipart_parts,
    refuse_float,
    serving,
)
from tests.system.processes import clean_env

README = ROOT / "README.md"
DOCS = ROOT / "docs"
# The README's map of the docs: from its heading to the next one, each docs/ page it links.
DOCS_MAP = re.compile(r"^## The docs\n(.*?)(?=^#|\Z)", re.S | re.M)
MAPPED = re.compile(r"\]\(docs/([a-z0-9-]+\.md)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
MARK = re.compile(r"<!-- (example|answer): ([a-z0-9-]+) -->\n$")
RUN = ("sh", "graphql")
LISTENER = "127.0.0.1:9464"  # the metrics listener's address in the docs' examples


@dataclass
class Example:
    name: str
    lang: str
    code: str
    answer: Any = None


def pages() -> list[Path]:
    """README.md, then the docs pages in the order of the README's map (each once)."""
    found = DOCS_MAP.search(README.read_text(encoding="utf-8"))
    assert found is not None, "README.md has no '## The docs' section"
    order = list(dict.fromkeys(MAPPED.findall(found.group(1))))
    on_disk = sorted(page.name for page in DOCS.glob("*.md"))
    assert sorted(order) == on_disk, f"the README's map lists {order}, docs/ holds {on_disk}"
    return [README, *(DOCS / name for name in order)]


def all_examples() -> list[Example]:
    """Every page's examples, in reading order."""
    return [e for page in pages() for e in examples(page.read_text(encoding="utf-8"))]


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    for fence in FENCE.finditer(text):
        lang, code = fence.group(1), fence.group(2)
        mark = MARK.search(text, 0, fence.start())
        marked = mark is not None and mark.end() == fence.start()
        if lang == "toml":
            tomllib.loads(code)  # every configuration shown parses
            if marked and mark is not None and mark.group(1) == "example":
                found.append(Example(mark.group(2), lang, code))  # and this one runs
        elif lang in RUN:
            assert marked and mark is not None and mark.group(1) == "example", (
                f"a {lang} block without <!-- example: NAME --> before it:\n{code}"
            )
            found.append(Example(mark.group(2), lang, code))
        elif lang == "json" and marked and mark is not None:
            assert mark.group(1) == "answer"
            (owner,) = [e for e in found if e.name == mark.group(2)]
            owner.answer = json.loads(code)
    return found


@dataclass
class Outcome:
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0
    json: Any = None


@dataclass
class Demo:
    clock: FakeClock
    gateway: str
    simulator: str
    config: Path
    metrics: str  # the metrics listener

    def shell(self, code: str) -> str:
        return (
            code.replace("127.0.0.1:8000", self.gateway.removeprefix("http://"))
            .replace("127.0.0.1:8001", self.simulator.removeprefix("http://"))
            .replace(LISTENER, self.metrics.removeprefix("http://"))
            .replace("deploy/demo.toml", str(self.config))
        )

    def with_configuration(self, name: str, toml: str) -> str:
        """`check-config` of the demo's config with `toml` added, in a file beside it."""
        path = self.config.with_name(f"{name}.toml")
        path.write_text(self.config.read_text(encoding="utf-8") + "\n" + toml)
        return f".venv/bin/balance-gateway check-config --config {path}"


@dataclass
class Check:
    check: Callable[[Outcome], None] = lambda outcome: None
    before: Callable[[Demo], None] = lambda demo: None
    instead: str | None = None  # a command run in the example's place (see its comment)
    # History is written off the request path: the reads before it, written first (as a
    # person reading the docs between two examples would have given it time to be).
    written: bool = False


def matches(actual: Any, shown: Any) -> bool:
    if isinstance(shown, str) and shown.endswith("…"):
        return isinstance(actual, str) and actual.startswith(shown[:-1])
    if isinstance(shown, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == shown.keys()
            and all(matches(actual[k], shown[k]) for k in shown)
        )
    if isinstance(shown, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(shown)
            and all(matches(a, b) for a, b in zip(actual, shown, strict=True))
        )
    return type(actual) is type(shown) and actual == shown


def results_by_account(outcome: Outcome) -> dict[str, Any]:
    return {r["account"]["id"]: r for r in outcome.json["data"]["balances"]["results"]}


def demo_query(outcome: Outcome) -> None:
    report = outcome.json["data"]["balances"]
    results = results_by_account(outcome)
    assert report["complete"] is True
    assert sorted(results) == ["magma", "muda-ug", "ourvoice-ci", "ourvoice-sn", "paymob-eg"]
    assert all(r["__typename"] == "AccountBalance" and not r["stale"] for r in results.values())
    assert results["ourvoice-sn"]["balances"][0]["total"] == {"amount": "50000", "currency": "XOF"}
    assert {"currency": "CDF", "kind": "CASH"}.items() <= report["totals"][0].items()


def stream_dashboard(outcome: Outcome) -> None:
    report = outcome.json["data"]["balances"]
    results = results_by_account(outcome)
    assert sorted(results) == ["magma", "muda-ug", "ourvoice-ci", "ourvoice-sn", "paymob-eg"]
    total = results["ourvoice-sn"]["balances"][0]["total"]  # top-ups above have changed it
    assert total["currency"] == "XOF" and total["amount"].isdigit()
    assert report["complete"] is True and report["totals"]


def balance_level(outcome: Outcome) -> None:
    (result,) = outcome.json["data"]["balances"]["results"]
    (balance,) = result["balances"]
    assert balance["level"] == "WARNING"  # top-ups above took it from 50,000 to 57,500
    assert balance["thresholds"] == {
        "warning": {"amount": "100000"},
        "critical": {"amount": "20000"},
    }


def daily_close_yesterday(outcome: Outcome) -> None:
    """The demo's yesterday: no reading of it (the made-up week is no reading), so every
    balance is INCOMPLETE and says why."""
    (close,) = outcome.json["data"]["dailyClose"]
    assert close["zone"] == "UTC" and close["statements"], close
    for statement in close["statements"]:
        assert statement["status"] == "INCOMPLETE" and statement["missing"], statement
        assert statement["unexplained"] is None


def balance_history(outcome: Outcome) -> None:
    (result,) = outcome.json["data"]["balances"]["results"]
    (balance,) = result["balances"]
    # the demo's made-up week (falling 2 % a day), then what the demo has read
    assert balance["history"], balance
    assert all(isinstance(p["available"]["amount"], str) for p in balance["history"])
    assert balance["runway"] is not None and balance["runway"]["burnPerDay"]["currency"] == "XOF"


def transactions(outcome: Outcome) -> None:
    connection = outcome.json["data"]["transactions"]
    assert connection["totalCount"] > 0 and len(connection["edges"]) == 20
    assert connection["pageInfo"]["hasNextPage"] is True
    assert {e["node"]["status"] for e in connection["edges"]} <= {"SUCCEEDED", "PENDING"}


def transactions_collateral(outcome: Outcome) -> None:
    edges = outcome.json["data"]["transactions"]["edges"]
    assert edges, "the demo's Muda statement has collateral rows"
    for edge in edges:
        node = edge["node"]
        assert node["asset"]["kind"] == "COLLATERAL" and node["asset"]["code"].startswith("c")
        assert node["id"] == f"muda-ug:{node['providerId']}"
        assert node["amount"]["currency"] == "UGX"


def topups_list(outcome: Outcome) -> None:
    header, *rows = outcome.stdout.splitlines()
    assert header.split() == ["client", "key", "account", "amount", "state", "resolved"]
    (row,) = rows
    assert row.split() == ["dev:anonymous", "order-8842", "ourvoice-sn", "2500", "XOF", "pending"]


def keys_new(outcome: Outcome) -> None:
    key = re.search(r"^  (bgw_\S+)$", outcome.stdout, re.M)
    digest = re.search(r'^key_sha256 = "([0-9a-f]{64})"$', outcome.stdout, re.M)
    assert key and digest
    assert hashlib.sha256(key.group(1).encode()).hexdigest() == digest.group(1)
    assert "[clients.ops-dashboard]" in outcome.stdout
    assert 'scopes = ["balances:read", "metrics:read"]' in outcome.stdout
    assert 'accounts = ["magma", "muda-ug"]' in outcome.stdout


def traced_magma(outcome: Outcome) -> None:
    """The trace of one account's read: its cache state, its attempts, microseconds."""
    assert outcome.json["data"]["balances"]["complete"] is True
    (magma,) = outcome.json["extensions"]["trace"]["accounts"]
    assert magma["account"] == "magma" and magma["cache"] in ("fresh", "miss")
    assert isinstance(magma["durationUs"], int) and magma["durationUs"] >= magma["gatewayUs"]
    for attempt in magma["upstream"]:
        assert attempt["request"].startswith("GET /") and "?" not in attempt["request"]


def balances_at_or_below(outcome: Outcome) -> None:
    (line,) = outcome.json["data"]["balances"]["balances"]  # the demo's one at WARNING
    assert line["account"] == {"id": "ourvoice-sn"} and line["balance"]["level"] == "WARNING"


def mcp_python_client(outcome: Outcome) -> None:
    tools, first = outcome.stdout.splitlines()
    assert (
        tools == "AccountsBelowLevel BalancesAtAGlance RecentTransactions RunwaySoonestFirst TopUp"
    )
    account, year = first.split()
    assert account in {"magma", "muda-ug", "ourvoice-ci", "ourvoice-sn", "paymob-eg"}
    assert year.isdigit() and len(year) == 4


def contains(*texts: str) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        for text in texts:
            assert text in outcome.stdout, outcome.stdout

    return check


def warns(line: str) -> Callable[[Outcome], None]:
    """The command warned exactly this, alone (on stderr; its exit status was 0)."""

    def check(outcome: Outcome) -> None:
        assert outcome.stderr.splitlines() == [line], outcome.stderr

    return check


CHECKS: dict[str, Check] = {
    # `make test` inside the test suite would run the suite again, and `make run` is run
    # for real by tests/system/test_dev_server.py; here make shows the commands both
    # targets run, which fails if a target or the demo config is gone.
    "two-commands": Check(
        contains("balance-gateway serve --config deploy/demo.toml"),
        instead="make --no-print-directory -n run test",
    ),
    "demo-query": Check(demo_query),
    "demo-curl": Check(),
    "daily-close": Check(
        contains(
            "date,zone,account,balance,currency,coverage,status,missing\n"
            "2024-06-03,UTC,muda-ug,muda-ug:UGX:issuer_ugx,UGX,BOTH,INCOMPLETE,opening: no "
            "balance reading in the hour before the day began; closing: no balance reading in "
            "the last hour of the day\n"
        )
    ),
    "fault-on": Check(),
    "stale": Check(before=lambda demo: demo.clock.advance(16)),
    "fault-off": Check(contains("")),
    "max-age": Check(),
    "refresh": Check(),
    "reporting-totals": Check(),
    "trace": Check(traced_magma),
    "transactions": Check(transactions),
    "transactions-collateral": Check(transactions_collateral),
    "topup": Check(),
    "topup-fault": Check(contains('{"mode":"503-after-commit"}')),
    "topup-pending": Check(),
    "topups-list": Check(topups_list),
    "topups-resolve": Check(
        contains("top-up 'order-8842' of 'dev:anonymous' resolved as succeeded by alice")
    ),
    "topup-replay": Check(),
    "topup-fault-off": Check(),
    "check-config": Check(contains("configuration OK: profile development")),
    "check-config-replicas": Check(
        warns(
            "warning: accounts.muda-ug.fresh_seconds: 8,640 balance reads a day (one per "
            "20 s in each of 2 processes: each has its own memory:// cache) exceed its budget "
            "of 5,000 calls a day (calls_per_day) (fix: fresh_seconds = 35 or more in "
            '[accounts.muda-ug]; or share the cache, [cache] url = "redis://…" (one read per '
            "window for the fleet))"
        )
    ),
    "export-schema": Check(contains("schema.graphql is up to date")),
    "keys-new": Check(keys_new),
    "graphiql-fetch": Check(contains("verified")),
    "metrics-requests": Check(contains('outcome="ok",reason=""}')),
    "metrics-listen": Check(contains("configuration OK: profile development")),
    "metrics-listener": Check(contains('outcome="ok",reason=""} ', "\n404\n")),
    # No Docker engine and no cluster here: each deploy example runs the check that stands
    # for it (tests/test_deploy.py and tests/system/test_fleet.py do the rest) — the file
    # `docker build` reads, linted; the compose file `docker compose` reads, parsed; what
    # `kubectl apply -k` would apply, rendered by the same kustomize.
    "docker-image": Check(
        contains("linted"), instead=".venv/bin/hadolint deploy/Dockerfile && echo linted"
    ),
    "compose-up": Check(
        contains("lb gateway-1 gateway-2 simulator redis postgres"),
        instead='.venv/bin/python -c "import yaml; '
        "print(*yaml.safe_load(open('deploy/compose.yaml'))['services'])\"",
    ),
    "kubectl-apply": Check(
        contains("kind: Deployment"),
        instead=".venv/bin/kubectl kustomize deploy/kubernetes/overlays/example",
    ),
    "readyz": Check(),
    "documents-manifest": Check(contains("trusted-documents.json: 1 documents")),
    "stream-dashboard": Check(stream_dashboard),
    "results-as-they-arrive": Check(
        contains('{"data":{"balances":{"results":[]}},"pending":[{"id":"0","path":["balances"]}')
    ),
    "balance-level": Check(balance_level),
    "balance-history": Check(balance_history, written=True),
    "daily-close-yesterday": Check(daily_close_yesterday),
    "daily-close-watch": Check(contains("configuration OK")),
    # The long profile takes minutes; here one trace on each database, the same command.
    "fleet-long": Check(
        contains("fleet[processes]"),
        # one trace of each long profile, on one database (the fleet tests run both)
        instead=(
            "FLEET_EXAMPLES=1 FLEET_PROCESS_EXAMPLES=1 make --no-print-directory fleet "
            "FLEET_ONLY=sqlite"
        ),
    ),
    "live-stream": Check(
        contains('event: next\ndata: {"data":{"balanceUpdates":{"__typename":"AccountBalance"}}}')
    ),
    "balances-at-or-below": Check(balances_at_or_below),
    "mcp-curl": Check(),
    "mcp-python-client": Check(mcp_python_client),
    "mcp-topup-without-key": Check(),
}


async def run_shell(code: str) -> Outcome:
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        code,
        cwd=ROOT,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    outcome = Outcome(out.decode(), err.decode(), process.returncode or 0)
    with contextlib.suppress(ValueError):
        outcome.json = json.loads(outcome.stdout)
    return outcome


async def run(example: Example, demo: Demo, http: httpx.AsyncClient) -> Outcome:
    check = CHECKS[example.name]
    if example.lang == "graphql":
        in_parts = "@stream" in example.code or "@defer" in example.code
        headers = {"accept": "multipart/mixed"} if in_parts else {}
        request = {"query": example.code}
        response = await http.post(f"{demo.gateway}/graphql", json=request, headers=headers)
        assert response.status_code == 200, response.text
        answer = (
            merge(multipart_parts(response.content))
            if in_parts
            else json.loads(response.text, parse_float=refuse_float)
        )
        outcome = Outcome(response.text, json=answer)
        assert "errors" not in outcome.json, outcome.json
        return outcome
    if example.lang == "toml":
        outcome = await run_shell(demo.with_configuration(example.name, example.code))
    else:
        outcome = await run_shell(demo.shell(check.instead or example.code))
    assert outcome.returncode == 0, f"{example.name}:\n{outcome.stdout}\n{outcome.stderr}"
    assert "Traceback" not in outcome.stderr, outcome.stderr
    return outcome


def test_every_example_has_a_check_and_every_check_an_example() -> None:
    names = [e.name for e in all_examples()]
    assert len(names) == len(set(names)), "two examples share a name"
    assert set(names) == set(CHECKS)


async def test_every_readme_example_runs_with_its_shown_outcome(tmp_path: Path) -> None:
    """Twice, as two `make run`s would: the second demo starts after `demo reset` (what
    `make run` does first) with a fresh simulator, beside the first run's journal, and
    every example that depends on the demo's state answers as shown again (the stand-in
    commands run once)."""
    found = all_examples()
    config = tmp_path / "demo.toml"  # its journal lands beside it, as deploy/'s does
    config.write_text(demo_text())
    for run_number in (1, 2):
        if run_number > 1:
            assert cli_main(["demo", "reset", "--config", str(config)]) == 0
        clock = FakeClock(time.time())
        simulator = RequestContext(create_simulator(SimState(clock=clock)).app)
        async with serving(simulator) as sim_url:
            port = int(sim_url.rsplit(":", 1)[1])
            settings = load_settings(str(config), env={}, simulator_port=port)
            app = create_app(settings, clock=clock)
            async with (
                serving(app) as gateway_url,
                serving(metrics_only(app.state.exposition)) as metrics_url,
                httpx.AsyncClient(timeout=60) as http,
            ):
                demo = Demo(clock, gateway_url, sim_url, config, metrics_url)
                for example in found:
                    if run_number > 1 and CHECKS[example.name].instead is not None:
                        continue
                    CHECKS[example.name].before(demo)
                    if CHECKS[example.name].written:
                        await app.state.recorder.flush()
                    outcome = await run(example, demo, http)
                    if example.answer is not None:
                        shown = (run_number, example.name, outcome.json)
                        assert matches(outcome.json, example.answer), shown
                    CHECKS[example.name].check(outcome)
