"""Test helpers: a settable clock, demo settings, and an in-process gateway on the simulator."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn

from gateway._compat.asyncio import TURN, Turn
from gateway.access import SCOPES, RateLimit
from gateway.app import create_app
from gateway.cache.store import Store, open_store
from gateway.config import settings as gateway_settings
from gateway.config.accounts import AccountConfig
from gateway.config.secret import Secret
from gateway.config.security import ClientConfig
from gateway.config.settings import SIMULATOR_PORT, IdempotencySettings, Settings
from gateway.errors import ErrorCode, UpstreamError
from gateway.observability.metrics import Metrics
from gateway.providers.base import upstream_context
from gateway.providers.loading import spec as provider_spec
from gateway.server.auth import key_hash
from gateway.simulator import Simulator
from gateway.simulator.muda import MudaFake
from gateway.simulator.ourvoice import OurVoiceFake
from gateway.simulator.paymob_bills import PaymobFake
from gateway.upstream.breaker import CircuitBreaker
from gateway.upstream.channel import Channel, RetryPolicy
from gateway.upstream.client import UpstreamClient
from gateway.upstream.quota import CallLimits, Quota

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "deploy" / "demo.toml"
START = 1_717_461_806.0  # 2024-06-04T00:43:26Z


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Where `demo_settings()` puts each journal: pytest's own temporary directory for this run,
# set by conftest's session fixture (pytest keeps the last few runs, then removes them).
JOURNALS: Path | None = None


def parse_settings(
    data: Mapping[str, Any],
    env: Mapping[str, str],
    base: Path | None = None,
    simulator_port: int = SIMULATOR_PORT,
) -> Settings:
    """`gateway.config.settings.parse_settings` given the registry's providers, as the
    composition root (`gateway/cli.py`) gives them."""
    return gateway_settings.parse_settings(data, env, base, simulator_port, providers=provider_spec)


def load_settings(
    path: str, env: Mapping[str, str] | None = None, simulator_port: int = SIMULATOR_PORT
) -> Settings:
    """`gateway.config.settings.load_settings` given the registry's providers."""
    return gateway_settings.load_settings(path, env, simulator_port, providers=provider_spec)


DEMO_MANIFEST = 'manifest = "demo-documents.json"'


def demo_text(text: str | None = None) -> str:
    """The demo config's text (or `text`, made from it) to write elsewhere: its manifest
    named by its absolute path, which a relative one is not from another folder."""
    manifest = DEMO_CONFIG.parent / "demo-documents.json"
    return (text or DEMO_CONFIG.read_text()).replace(DEMO_MANIFEST, f'manifest = "{manifest}"')


def demo_accounts() -> dict[str, AccountConfig]:
    """The demo config's accounts (for modules that need an account, not a whole gateway)."""
    return load_settings(str(DEMO_CONFIG), env={}).accounts


def demo_settings() -> Settings:
    """The demo config, with a client rate limit no test of other things will meet, a
    fresh SQLite journal of its own, and no made-up past in its history."""
    settings = load_settings(str(DEMO_CONFIG), env={})
    security = dataclasses.replace(settings.security, rate_limit=RateLimit(10_000, 100_000))
    assert JOURNALS is not None, "tests/conftest.py sets the journals' directory"
    journal = IdempotencySettings(url=f"sqlite:///{JOURNALS / uuid.uuid4().hex}.db")
    history = dataclasses.replace(settings.history, demo_past_days=0)  # only what tests read
    return dataclasses.replace(settings, security=security, idempotency=journal, history=history)


def with_section(settings: Settings, section: str, **changes: Any) -> Settings:
    """Settings with `changes` made to one of its sections (`server`, `security`, `live`,
    `history`, …)."""
    changed = dataclasses.replace(getattr(settings, section), **changes)
    return dataclasses.replace(settings, **{section: changed})


def with_server(settings: Settings, **changes: Any) -> Settings:
    return with_section(settings, "server", **changes)


def with_account(settings: Settings, account_id: str, **changes: Any) -> Settings:
    """Settings with one account changed (credentials given as plain strings)."""
    account = settings.accounts[account_id]
    credentials = dict(account.credentials)
    for name in ("api_key", "private_key", "secret_key", "public_key"):
        if name in changes:
            credentials[name] = Secret(changes.pop(name))
    updated = dataclasses.replace(account, credentials=credentials, **changes)
    return dataclasses.replace(settings, accounts={**settings.accounts, account_id: updated})


FULL_KEY = "bgw_test-full-access-key-0123456789"


def production(settings: Settings, *clients: ClientConfig) -> Settings:
    """The same accounts under the production profile, with these clients (default: one
    with every scope on every account, whose key is FULL_KEY)."""
    clients = clients or (ClientConfig("full", key_hash(FULL_KEY), frozenset(SCOPES), None),)
    server = dataclasses.replace(settings.server, profile="production")
    security = dataclasses.replace(settings.security, clients={c.name: c for c in clients})
    return dataclasses.replace(settings, server=server, security=security)


def client(
    name: str, key: str, scopes: tuple[str, ...], accounts: tuple[str, ...] | None
) -> ClientConfig:
    return ClientConfig(
        name, key_hash(key), frozenset(scopes), frozenset(accounts) if accounts else None
    )


def with_cache(settings: Settings, url: str, namespace: str, **changes: Any) -> Settings:
    """Settings on the given cache backend, every account's freshness reset to the
    cache defaults (plus `changes` to [cache])."""
    cache = dataclasses.replace(settings.cache, url=url, namespace=namespace, **changes)
    accounts = {
        k: dataclasses.replace(
            a, fresh_seconds=cache.fresh_seconds, stale_seconds=cache.stale_seconds
        )
        for k, a in settings.accounts.items()
    }
    return dataclasses.replace(settings, cache=cache, accounts=accounts)


def refuse_float(text: str) -> Any:
    raise AssertionError(f"a float reached the output: {text}")


def sample(text: str, name: str, **labels: str) -> float:
    """A sample's value in a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # as written
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def sample_sum(text: str, name: str) -> float:
    """The sum of a metric's samples over all its label values."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in "{ "
    )


class GatewayClient:
    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.http = client
        self.app = app

    def as_key(self, key: str | None) -> GatewayClient:
        """The same gateway, called with this API key (None: no credentials)."""
        if key is None:
            self.http.headers.pop("authorization", None)
        else:
            self.http.headers["authorization"] = f"Bearer {key}"
        return self

    async def metric(self, name: str, **labels: str) -> float:
        """A sample's value from `/metrics` (0 when absent)."""
        return sample((await self.http.get("/metrics")).text, name, **labels)

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post("/graphql", json={"query": query, "variables": variables})

    async def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        # Money must be strings end to end: any JSON float in a response fails the test.
        result: dict[str, Any] = json.loads(response.text, parse_float=refuse_float)
        return result


async def no_sleep(seconds: float) -> None:
    """Retries in tests wait for nothing (the clock is what moves)."""
    await asyncio.sleep(0)


def make_channel(
    account: AccountConfig,
    http: UpstreamClient,
    clock: Callable[[], float],
    *,
    attempts: int = 1,
    store: Store | None = None,
    breaker: CircuitBreaker | None = None,
    limits: CallLimits | None = None,
    max_concurrency: int = 8,
    sleep: Callable[[float], Any] = no_sleep,
) -> Channel:
    return Channel(
        http,
        upstream_context(account),
        timeout_seconds=account.timeout_seconds,
        retry=RetryPolicy(max_attempts=attempts),
        breaker=breaker or CircuitBreaker(5, 30, clock),
        quota=Quota(
            account.id, limits or CallLimits(), store or open_store("memory://", "t"), clock
        ),
        max_concurrency=max_concurrency,
        metrics=Metrics(),
        clock=clock,
        sleep=sleep,
    )


@asynccontextmanager
async def running_gateway(
    settings: Settings,
    transport: httpx.AsyncBaseTransport,
    clock: Callable[[], float],
    key: str | None = FULL_KEY,
    turn: Turn = TURN,
) -> AsyncIterator[GatewayClient]:
    """The real app, lifespan included, reached in-process; providers via `transport`;
    requests carry `key` (harmless under the development profile, where a configured
    client's key is checked but none is needed); `turn` budgets first steps."""
    app = create_app(settings, transport=transport, clock=clock, sleep=no_sleep, turn=turn)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=WholeBody(app)), base_url="http://gateway"
        ) as client,
    ):
        yield GatewayClient(client, app).as_key(key if settings.security.clients else None)


READ_BYTES = 64 * 1024  # what one read of a socket hands uvicorn, about


class WholeBody:
    """A request's body handed to `app` in one message once it has all arrived — up to
    about one socket read — as uvicorn does for a body that comes in one read (httpx's in-process transport always
    sends an empty first part): so in-process requests meet the gateway as served ones
    do — a response-cache hit answered early (`server/cached_answers.py`). A client
    that leaves before its body is whole is handed on as it came."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts: list[dict[str, Any]] = []
        size = 0
        while size <= READ_BYTES:  # a larger body arrives in parts, as it would
            message = await receive()
            parts.append(message)
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if parts[-1]["type"] == "http.request":  # what arrived, as one message
            body = b"".join(part.get("body", b"") for part in parts)
            more = parts[-1].get("more_body", False)
            parts = [{"type": "http.request", "body": body, "more_body": more}]

        async def replayed() -> Any:
            return parts.pop(0) if parts else await receive()

        await self.app(scope, replayed, send)


class Gate(httpx.AsyncBaseTransport):
    """Holds every upstream call whose path contains `marker` (every call, by default) until
    the test sets `opened`: `entered` once one is held, `waiting` how many are, `cancelled`
    once one is cancelled while held."""

    def __init__(self, inner: httpx.AsyncBaseTransport, marker: str = "") -> None:
        self.inner = inner
        self.marker = marker
        self.opened = asyncio.Event()
        self.entered = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.waiting = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.marker in request.url.path:
            self.entered.set()
            self.waiting += 1
            try:
                await self.opened.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            finally:
                self.waiting -= 1
        return await self.inner.handle_async_request(request)


class Recording(httpx.AsyncBaseTransport):
    """Forwards to `inner` (the simulator), remembering every request sent through it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


class DelayTransport(httpx.AsyncBaseTransport):
    """Forwards to `inner` after a short pause, so concurrent requests are really in flight
    together even on an in-process transport."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float = 0.01) -> None:
        self.inner = inner
        self.seconds = seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.seconds)
        return await self.inner.handle_async_request(request)


class ResetTransport(httpx.AsyncBaseTransport):
    """What a dropped connection looks like to the client: the simulator's SimulatedReset
    becomes `httpx.ReadError`; `after_write` makes every top-up POST look like
    httpx-aiohttp's `ConnectTimeout` once the request was delivered."""

    def __init__(self, inner: httpx.AsyncBaseTransport, after_write: bool = False) -> None:
        self.inner = inner
        self.after_write = after_write

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from gateway.simulator.ourvoice import SimulatedReset

        try:
            response = await self.inner.handle_async_request(request)
        except SimulatedReset as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        if self.after_write and request.method == "POST":
            await response.aclose()
            raise httpx.ConnectTimeout("connection reset", request=request)
        return response


def code_raised(function: Callable[..., object], *args: Any) -> ErrorCode:
    """The code of the UpstreamError `function(*args)` raises; the test fails if none is."""
    with pytest.raises(UpstreamError) as raised:
        function(*args)
    return raised.value.code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve `app` on a free 127.0.0.1 port for the duration; always stopped."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def ourvoice_fake(sim: Simulator) -> OurVoiceFake:
    """The simulator's Our Voice: its `balances`, `credits` and `topup_faults`."""
    return cast(OurVoiceFake, sim.fakes["ourvoice"])


def muda_fake(sim: Simulator) -> MudaFake:
    """The simulator's Muda Pay: its `tokens` (revoke, refuse_all)."""
    return cast(MudaFake, sim.fakes["muda"])


def paymob_fake(sim: Simulator) -> PaymobFake:
    """The simulator's Paymob Bills: its `ledger` (insert a row at the top)."""
    return cast(PaymobFake, sim.fakes["paymob_bills"])


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts as one answer, the way a client assembles them (graphql-js 17 format)."""
    first, *rest = parts
    data = first["data"]
    errors = list(first.get("errors", []))
    paths = {p["id"]: p["path"] for p in first.get("pending", [])}
    for part in rest:
        paths.update({p["id"]: p["path"] for p in part.get("pending", [])})
        for item in part.get("incremental", []):
            target = data
            for key in paths[item["id"]] + item.get("subPath", []):
                target = target[key]
            if "items" in item:
                target.extend(item["items"])
            else:
                target.update(item["data"])
            errors += item.get("errors", [])
        for done in part.get("completed", []):
            errors += done.get("errors", [])
    return {"data": data, **({"errors": errors} if errors else {})}


def multipart_parts(body: bytes) -> list[dict[str, Any]]:
    """The JSON parts of a whole multipart/mixed answer (boundary `-`)."""
    assert body.startswith(b"---") and body.endswith(b"-----\r\n"), body[-40:]
    parts = []
    for segment in body[3:-7].split(b"\r\n---"):
        _, _, payload = segment.partition(b"\r\n\r\n")
        parts.append(json.loads(payload, parse_float=refuse_float))
    return parts


# The top-up mutation and its input, as every test that tops up sends them.
TOP_UP = """mutation($input: TopUpInput!) { topUp(input: $input) { __typename
  ... on TopUpSucceeded { replayed transaction { id reference status amount { amount currency } account { id } } }
  ... on TopUpPending { idempotencyKey message replayed }
  ... on TopUpRejected { code message retryable replayed } } }"""


def topup(key: str = "k-1", **changes: Any) -> dict[str, Any]:
    base = {
        "accountId": "ourvoice-sn",
        "amount": "5000",
        "paymentMethod": "MTN MOMO",
        "paymentReference": "PAY-1",
        "idempotencyKey": key,
    }
    return {"input": {**base, **changes}}


async def send(gw: GatewayClient, key: str = "k-1", **changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gw.query(TOP_UP, topup(key, **changes)))["data"]["topUp"]
    return result


def credits(sim: Simulator) -> int:
    return len(ourvoice_fake(sim).credits["ourvoice-sn"])


def posts(sim: Simulator) -> int:
    return sim.state.calls_to("ourvoice-sn", "topup")


# Live balances: the subscription, and a sleep the test ticks.
SUBSCRIBE = """subscription($ids: [ID!]) { balanceUpdates(accountIds: $ids) { __typename
  ... on AccountBalance { account { id } stale balances { total { amount } } }
  ... on ProviderFailure { account { id } code } } }"""


class Ticker:
    """An injected sleep: every waiter wakes when the test ticks, not when time passes."""

    def __init__(self) -> None:
        self._now = asyncio.Event()
        self.waiting = 0  # how many sleep now

    async def sleep(self, seconds: float) -> None:
        self.waiting += 1
        try:
            await self._now.wait()
        finally:
            self.waiting -= 1

    def tick(self) -> None:
        waking, self._now = self._now, asyncio.Event()
        waking.set()


def rss_mib() -> float:
    """This process's resident memory (Linux)."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert match
    return int(match.group(1)) / 1024
