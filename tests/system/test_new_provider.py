"""Adding a provider takes four hand-edited files — proven on a copy of the repository:
a throwaway fifth provider, "Echo Pay", gets its adapter module, its simulator fake (with
its own seed tenant), one registry line, and its contract expectations. Nothing else is
touched but the generated SDL (`make schema`: the `Provider` enum gains `ECHO_PAY` by
itself), and then every test that can see a fifth provider passes with five: the folders
built from the provider list (the contract suite, the simulator, the configuration's
rules, the schema, the providers, the app-wide checks, observability, deploy) and every
other test file that reads the list (the registry, the contract cases or the `Provider`
enum), found by reading the files, so a new one is included by itself (not the fuzz
test: its queries ask the demo's accounts, none of them Echo Pay's). The rest — caches,
upstream channels, services, the server, the process-level `system/` and `fleet/` tests —
exercise mechanisms over the demo's named accounts, which a fifth provider does not
change; `make test` runs them once (docs/testing.md shows the whole run on a copy)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

ADAPTER = '''"""Echo Pay: `GET /v1/balance` with a Bearer key → {"balance": "<decimal>", "currency"}."""

from __future__ import annotations

from gateway.clock import Clock
from gateway.config.accounts import AccountConfig
from gateway.domain import Asset, AssetKind, Balance, Money, ProviderKind
from gateway.providers.base import get_ok, join_url, upstream_context
from gateway.providers.reader import JsonReader
from gateway.providers.spec import ProviderSpec
from gateway.upstream.channel import Channel


class EchoPay:
    def __init__(self, account: AccountConfig, channel: Channel, clock: Clock) -> None:
        self.account, self.channel = account, channel
        self.context = upstream_context(account)

    async def fetch_balances(self) -> tuple[Balance, ...]:
        url = join_url(self.account.base_url, "/v1/balance")
        key = self.account.secret("api_key")
        body = await get_ok(self.channel, url, {"authorization": f"Bearer {key}"})
        reader = JsonReader(self.context)
        data = reader.object(reader.loads(body), "body")
        currency = reader.currency(reader.field(data, "currency", "body"), "body.currency")
        money = Money(reader.amount(data, "balance", "body", written_as="string"), currency)
        asset = Asset(currency, currency, AssetKind.CASH)
        return (Balance(f"{self.account.id}:main:{currency}", asset, money, money),)


SPEC = ProviderSpec(
    kind=ProviderKind("echo_pay"), factory=EchoPay, required_credentials=frozenset({"api_key"})
)
'''
FAKE = '''"""Fake Echo Pay: Bearer key, `{"balance": "1200.50", "currency": "KES"}`."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.fake import FakeSpec
from gateway.simulator.state import SimState, bearer, json_response, with_faults


@dataclass(frozen=True)
class EchoTenant:
    name: str
    api_key: str
    balance: str


ECHO = (EchoTenant("echo-ke", "echo-demo-key", "1200.50"),)


def error_body(status: int, message: str) -> dict[str, object]:
    return {"error": message}


class EchoFake:
    def __init__(self, state: SimState, tenants: tuple[EchoTenant, ...]) -> None:
        self.state, self.tenants = state, tenants

    def routes(self) -> list[Route]:
        by_key = {t.api_key: t for t in self.tenants}

        async def balance(request: Request) -> Response:
            tenant = by_key.get(bearer(request) or "")
            if tenant is None:
                self.state.count("anonymous", "balance")
                return json_response(error_body(401, "Unauthorized"), 401)

            async def handle() -> Response:
                return json_response({"balance": tenant.balance, "currency": "KES"})

            return await with_faults(self.state, tenant.name, "balance", error_body, handle)

        return [Route("/v1/balance", balance, methods=["GET"])]


FAKE = FakeSpec(prefix="/echo", tenants=ECHO, build=EchoFake, account=lambda t: {"api_key": t.api_key})
'''
EXPECTED = """from gateway.domain import AssetKind

BALANCES = {"echo-ke:main:KES": ("1200.50", "1200.50", AssetKind.CASH)}
DOCUMENTED_FAILURE = None
"""
# The folders whose tests are built from the provider list, and what marks a test file
# elsewhere that reads it.
SEES_PROVIDERS = (
    "tests/contract",
    "tests/simulator",
    "tests/config",
    "tests/schema",
    "tests/providers",
    "tests/app",
    "tests/observability",
    "tests/deploy",
)
FUZZ = "tests/app/test_fuzz.py::test_generated_queries_never_500_nor_leak"
READS_PROVIDERS = re.compile(r"gateway\.registry|tests\.contract|get_type\(\"Provider\"\)")


def provider_facing_tests() -> list[str]:
    elsewhere = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if not str(path.relative_to(ROOT)).startswith((*SEES_PROVIDERS, "tests/system"))
        and READS_PROVIDERS.search(path.read_text())
    )
    return [*SEES_PROVIDERS, *elsewhere]


def test_the_selection_finds_the_files_that_read_the_provider_list() -> None:
    selected = provider_facing_tests()
    assert "tests/server/test_mcp_tools.py" in selected  # the Provider enum in a tool's schema
    assert "tests/server/test_mcp_output.py" in selected
    assert not any(name.startswith("tests/cache") for name in selected)


REGISTRY_LINE = (
    '    "echo_pay": Registered("gateway.providers.echo_pay", "gateway.simulator.echo_pay"),\n'
)


def test_a_fifth_provider_is_four_files(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source, target = ROOT / name.decode(), repo / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        elif source.exists():
            shutil.copy2(source, target)
    (repo / ".venv").symlink_to(ROOT / ".venv")  # the tests that run the CLI find it there
    # The four hand-edited files:
    (repo / "gateway/providers/echo_pay.py").write_text(ADAPTER)
    (repo / "gateway/simulator/echo_pay.py").write_text(FAKE)
    registry = repo / "gateway/registry.py"
    text = registry.read_text()
    assert text.count("\n}\n") == 1
    registry.write_text(text.replace("\n}\n", "\n" + REGISTRY_LINE + "}\n"))
    (repo / "tests/contract/expected/echo_pay.py").write_text(EXPECTED)

    # The copy's own interpreter: not measured by this run's coverage.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_", "COVERAGE"))}
    env["PYTHONPATH"] = str(repo)

    # NEW_PROVIDER_WHOLE_SUITE=1: every test on the copy, system/ and fleet/ included (by
    # hand); the copy's own run of this test then takes the selection.
    whole = env.pop("NEW_PROVIDER_WHOLE_SUITE", None) == "1"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600 if whole else 900,
            check=False,
        )

    where = run("-c", "import gateway; print(gateway.__file__)")
    assert where.stdout.strip().startswith(str(repo)), where  # the copy, not the checkout
    schema_check = run("-m", "gateway", "export-schema", "--check")
    assert schema_check.returncode == 1  # the SDL is regenerated (make schema), not hand-edited
    assert run("-m", "gateway", "export-schema").returncode == 0
    assert "ECHO_PAY" in (repo / "schema.graphql").read_text()
    pytest = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=")
    # Not the fuzz test (minutes on a copy): its queries, generated from the SDL, ask the
    # demo's accounts, none of them Echo Pay's; the enum value it gains is one more value.
    selection = ["tests"] if whole else [*provider_facing_tests(), "--deselect", FUZZ]
    suite = run(*pytest, *selection)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
    assert " passed" in suite.stdout and " failed" not in suite.stdout
    ran = run(
        *pytest,
        "--co",
        "tests/contract",
        "-k",
        "echo_pay",
    )
    assert ran.stdout.count("echo_pay") >= 8, ran.stdout  # every balance case, and more
    sdl = run("-c", "from gateway.schema import sdl; print(sdl())")
    assert "ECHO_PAY" in sdl.stdout
