"""The fleet of deploy/compose.yaml, run as plain OS processes (no Docker engine here): two
`balance-gateway serve` replicas on the compose gateway config, the simulator, the machine's
real Redis and PostgreSQL, and Debian's nginx with the compose load-balancer config — only
addresses and secret paths rewritten to this machine's. Each promise of a fleet is asserted
across processes: one upstream call per account for cold queries spread over both replicas
(repeated), one POST for 50 identical top-ups, one rate limit per client and one quota per
account, `kill -9` of a replica under load losing no money, SIGTERM on a replica costing no
client an error, live streams on one replica told at once of a top-up made on the other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.services.journal import open_journal
from tests.deploy.test_deploy import local_load_balancer
from tests.helpers import ROOT, free_port
from tests.locked_servers import LockedRedis, locked_redis
from tests.system.processes import (
    CLI,
    TIGHT_CLIENT,
    TIGHT_KEY,
    Process,
    clean_env,
    completed,
    concurrently,
    started,
)
from tests.system.test_shutdown import until

COMPOSE = ROOT / "deploy" / "compose"
QUERY = "{ balances { complete } }"
TOP_UP = """mutation($input: TopUpInput!) { topUp(input: $input) { __typename
  ... on TopUpSucceeded { replayed transaction { id } }
  ... on TopUpPending { replayed }
  ... on TopUpRejected { code } } }"""
SEED = 50_000  # ourvoice-sn's balance in the simulator's seed
TOTAL = {
    "query": '{ balances(accountIds: ["ourvoice-sn"]) { results { ... on AccountBalance '
    "{ balances { total { amount } } } } } }"
}


@dataclass
class Fleet:
    sim: str
    replicas: list[str]
    processes: list[Process]
    lb: str
    config: Path
    namespace: str
    redis: LockedRedis

    def calls(self) -> dict[str, int]:
        counted: dict[str, int] = httpx.get(f"{self.sim}/_sim/calls", timeout=10).json()
        return counted

    def cold(self) -> None:
        """Drop every key the fleet wrote to Redis (this run's own prefix only)."""
        client = redis.Redis(port=self.redis.port, password=self.redis.admin_password)
        try:
            for key in client.scan_iter(match=f"{self.namespace}:*", count=1000):
                client.delete(key)
        finally:
            client.close()

    def served_streams(self, index: int) -> int:
        """Live streams replica `index` held (logged when each ends)."""
        lines = [json.loads(line) for line in self.processes[index].stderr.splitlines()]
        return sum(1 for e in lines if e.get("path") == "/graphql/stream")

    def served(self, index: int) -> int:
        """/graphql requests replica `index` logged (its JSON access lines)."""
        lines = [json.loads(line) for line in self.processes[index].stderr.splitlines()]
        return sum(
            1 for e in lines if e.get("logger") == "gateway.access" and e["path"] == "/graphql"
        )


@pytest.fixture
def compose_redis(tmp_path: Path, redis_server: str) -> Iterator[LockedRedis]:
    """The fleet's Redis as deploy/compose.yaml runs it: nothing served without the
    password of its compose secret, which the gateways' config gives (`redis_password`)."""
    password = (COMPOSE / "demo-secrets" / "redis_password").read_text().strip()
    with locked_redis(redis_server, tmp_path / "redis", "fleet", password) as server:
        yield server


def fleet_config(
    sim: str, redis_url: str, pg_url: str, namespace: str, changes: dict[str, str]
) -> str:
    """deploy/compose/gateway.toml with this machine's addresses and the demo secrets'
    folder; `changes` replaces a line's text with another (each must match once)."""
    text = (COMPOSE / "gateway.toml").read_text()
    replaced = {
        "http://simulator:8001": sim,
        "/run/secrets/": f"{COMPOSE / 'demo-secrets'}/",
        'url = "redis://redis:6379/0"': f'url = "{redis_url}"\nnamespace = "{namespace}"',
        'url = "postgresql://gateway@postgres:5432/gateway"': f'url = "{pg_url}"',
        **changes,
    }
    for old, new in replaced.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def running_fleet(
    tmp_path: Path,
    nginx: str,
    compose_redis: LockedRedis,
    pg_url: str,
    namespace: str,
    changes: dict[str, str] | None = None,
    extra: str = "",
) -> Iterator[Fleet]:
    sim_port, lb_port = free_port(), free_port()
    ports = [free_port(), free_port()]
    sim = f"http://127.0.0.1:{sim_port}"
    config = tmp_path / "gateway.toml"
    redis_url = compose_redis.url
    config.write_text(fleet_config(sim, redis_url, pg_url, namespace, changes or {}) + extra)
    conf = tmp_path / "nginx.conf"
    conf.write_text(local_load_balancer((COMPOSE / "nginx.conf").read_text(), lb_port, ports))
    logs, env = tmp_path / "logs", clean_env()
    serve = [str(CLI), "serve", "--config", str(config), "--port"]
    nginx_argv = [nginx, "-p", str(tmp_path), "-c", str(conf)]
    nginx_argv += ["-g", f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"]
    with (
        started([str(CLI), "simulate", "--port", str(sim_port)], logs, env=env) as simulator,
        started([*serve, str(ports[0])], logs, env=env) as first,
        started([*serve, str(ports[1])], logs, env=env) as second,
        started(nginx_argv, logs, env=env) as balancer,
    ):
        simulator.wait_http(f"{sim}/_sim/calls")
        replicas = [f"http://127.0.0.1:{p}" for p in ports]
        for process, url in zip((first, second), replicas, strict=True):
            process.wait_http(f"{url}/readyz")
        lb = f"http://127.0.0.1:{lb_port}"
        balancer.wait_http(f"{lb}/healthz")
        yield Fleet(sim, replicas, [first, second], lb, config, namespace, compose_redis)
        balancer.stop(signal.SIGQUIT)


def balance_calls(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        k: after[k] - before.get(k, 0)
        for k in after
        if k.endswith(":balance") and after[k] - before.get(k, 0)
    }


def top_up(key: str, amount: int) -> dict[str, Any]:
    return {
        "query": TOP_UP,
        "variables": {
            "input": {
                "accountId": "ourvoice-sn",
                "amount": str(amount),
                "paymentMethod": "MTN MOMO",
                "paymentReference": f"PAY-{key}",
                "idempotencyKey": key,
            }
        },
    }


# For the tests whose bursts must all be admitted: the gate's fixed ceiling (256) holds
# them, so a machine busy with other work (another test process, say: the load-adaptive
# limit would shed there, as tests/server/test_admission.py checks) changes nothing.
FIXED = {"[server]\n": '[server]\nadmission = "fixed"\n'}


def test_cold_queries_over_both_replicas_call_each_upstream_once_and_top_ups_post_once(
    tmp_path: Path, nginx: str, compose_redis: LockedRedis, pg_url: str, namespace: str
) -> None:
    rounds = []
    # What is checked here is the fleet's single flight and top-ups: the gate's fixed
    # ceiling (256) holds the 100 (FIXED).
    with running_fleet(tmp_path, nginx, compose_redis, pg_url, namespace, FIXED) as fleet:
        for _ in range(5):  # a cross-process race shows in some rounds, not in one
            fleet.cold()
            before = fleet.calls()
            answers = asyncio.run(concurrently(fleet.lb, 100, lambda i: {"query": QUERY}))
            rounds.append((answers, balance_calls(before, fleet.calls())))
        before_topups = fleet.calls().get("ourvoice-sn:topup", 0)
        topups = asyncio.run(concurrently(fleet.lb, 50, lambda i: top_up("fleet-once", 2500)))
        posts = fleet.calls().get("ourvoice-sn:topup", 0) - before_topups
        served = [fleet.served(0), fleet.served(1)]

    accounts = {"ourvoice-sn", "ourvoice-ci", "magma", "muda-ug", "paymob-eg"}
    for answers, calls in rounds:
        assert [r.status_code for r in answers] == [200] * 100
        assert all(r.json()["data"]["balances"]["complete"] for r in answers)
        assert calls == {f"{a}:balance": 1 for a in accounts}
    results = [r.json()["data"]["topUp"] for r in topups]
    assert {r["__typename"] for r in results} == {"TopUpSucceeded"}
    assert len({r["transaction"]["id"] for r in results}) == 1
    assert [r["replayed"] for r in results].count(False) == 1
    assert posts == 1
    assert min(served) > 50  # both replicas answered a real share of the 550


REFRESH = {
    "query": "mutation { refreshBalances { results { ... on AccountBalance { account { id } "
    "fetchedAt freshnessLimit { code } } } } }"
}


def test_a_hundred_refreshes_over_both_replicas_read_each_account_once(
    tmp_path: Path, nginx: str, compose_redis: LockedRedis, pg_url: str, namespace: str
) -> None:
    with running_fleet(tmp_path, nginx, compose_redis, pg_url, namespace, FIXED) as fleet:
        warm = httpx.post(f"{fleet.lb}/graphql", json={"query": QUERY}, timeout=30)
        assert warm.json()["data"]["balances"]["complete"] is True  # every account cached
        before = fleet.calls()
        answers = asyncio.run(concurrently(fleet.lb, 100, lambda i: REFRESH))
        calls = balance_calls(before, fleet.calls())
        served = [fleet.served(0), fleet.served(1)]

    assert [r.status_code for r in answers] == [200] * 100
    results = [r for a in answers for r in a.json()["data"]["refreshBalances"]["results"]]
    read: dict[str, set[str]] = {r["account"]["id"]: set() for r in results}
    for r in results:
        read[r["account"]["id"]].add(r["fetchedAt"])
    # one new read per account for the whole fleet, the same answer to every caller —
    # Muda's none: the warm query read it less than its quota's 18 s ago (one read a day
    # per 86,400 / 5,000 s), so every caller is given that read
    assert calls == {
        f"{a}:balance": 1 for a in ("ourvoice-sn", "ourvoice-ci", "magma", "paymob-eg")
    }
    assert all(len(answers_of) == 1 for answers_of in read.values()), read
    assert min(served) > 10  # both replicas answered refreshes


def test_one_rate_limit_per_client_and_one_quota_per_account_across_replicas(
    tmp_path: Path, nginx: str, compose_redis: LockedRedis, pg_url: str, namespace: str
) -> None:
    changes = {
        **FIXED,
        "[accounts.paymob-eg]\n": "[accounts.paymob-eg]\nfresh_seconds = 0\ncalls_per_day = 3\n",
    }
    paymob = {"query": '{ balances(accountIds: ["paymob-eg"]) { complete } }'}
    with running_fleet(
        tmp_path, nginx, compose_redis, pg_url, namespace, changes, TIGHT_CLIENT
    ) as fleet:
        before = fleet.calls().get("paymob-eg:balance", 0)
        limited = asyncio.run(
            concurrently(
                fleet.lb, 30, lambda i: {"query": QUERY}, {"authorization": f"Bearer {TIGHT_KEY}"}
            )
        )
        # the burst's 10 admitted queries shared one call; now alternate replicas, each
        # asking upstream (fresh_seconds 0) until the fleet's quota is spent
        for i in range(6):
            httpx.post(f"{fleet.replicas[i % 2]}/graphql", json=paymob, timeout=30)
        quota_calls = fleet.calls().get("paymob-eg:balance", 0) - before

    statuses = sorted(r.status_code for r in limited)
    assert statuses == [200] * 10 + [429] * 20  # one bucket of 10, wherever a request lands
    assert quota_calls == 3  # one day's quota of 3, shared by both replicas


def test_kill_9_of_a_replica_under_load_loses_no_money_and_the_other_keeps_answering(
    tmp_path: Path, nginx: str, compose_redis: LockedRedis, pg_url: str, namespace: str
) -> None:
    """Twelve top-ups in flight (amounts 100·2^i, so the ledger's total says exactly which
    were credited) when one replica is killed. Afterwards: every top-up the journal calls
    succeeded is credited, every credited one is succeeded or pending in the journal, each
    was POSTed once; resolving the pending ones by the ledger makes journal and ledger
    agree. The surviving replica answers throughout."""
    changes = {"[idempotency]\n": "[idempotency]\nlease_seconds = 2\n"}
    keys = {f"kill-{i}": 100 * 2**i for i in range(12)}
    with running_fleet(tmp_path, nginx, compose_redis, pg_url, namespace, changes) as fleet:
        fault = f"{fleet.sim}/_sim/faults/ourvoice-sn"
        httpx.put(fault, json={"latency_seconds": 1.0}, timeout=10)
        answers: list[httpx.Response] = []

        def load() -> None:
            answers.extend(
                asyncio.run(concurrently(fleet.lb, 12, lambda i: top_up(f"kill-{i}", 100 * 2**i)))
            )

        thread = threading.Thread(target=load)
        thread.start()
        until(lambda: fleet.calls().get("ourvoice-sn:topup", 0) >= 2, "top-ups upstream")
        fleet.processes[0].popen.kill()  # kill -9, mid-flight
        fleet.processes[0].popen.wait(10)
        thread.join(60)
        after_kill = httpx.post(f"{fleet.lb}/graphql", json={"query": QUERY}, timeout=30)
        survivor = httpx.post(f"{fleet.replicas[1]}/graphql", json={"query": QUERY}, timeout=30)
        httpx.delete(fault, timeout=10)
        posts = fleet.calls().get("ourvoice-sn:topup", 0)

        def journal() -> dict[str, str]:
            async def read() -> dict[str, str]:
                store = open_journal(pg_url)
                try:
                    # this test's keys: the schema is shared with the other fleet tests
                    return {r.key: r.state for r in await store.records() if r.key in keys}
                finally:
                    await store.close()

            return asyncio.run(read())

        def ledger() -> tuple[int, set[str]]:
            """The simulator's total credited (fetched fresh), and the keys it encodes."""
            fleet.cold()
            answer = httpx.post(f"{fleet.replicas[1]}/graphql", json=TOTAL, timeout=30).json()
            total = answer["data"]["balances"]["results"][0]["balances"][0]["total"]["amount"]
            delta = int(total) - SEED
            return delta, {k for k, amount in keys.items() if (delta // 100) & (amount // 100)}

        # a POST whose gateway died is still being handled upstream for its latency
        until(lambda: len(ledger()[1]) >= posts, "the simulator to finish the POSTs it got")
        delta, credited = ledger()
        states = journal()
        succeeded = {k for k, s in states.items() if s == "succeeded"}
        unknown = {k for k, s in states.items() if s in ("in_flight", "pending")}

        # the operator's step: each top-up the journal cannot tell, resolved by the ledger
        until(
            lambda: all(
                k
                in completed(
                    [str(CLI), "topups", "list", "--pending", "--config", str(fleet.config)]
                ).stdout
                for k in unknown
            ),
            "the dead replica's leases to run out",
        )
        for key in sorted(unknown):
            outcome = "succeeded" if key in credited else "failed"
            resolved = completed(
                [
                    str(CLI),
                    "topups",
                    "resolve",
                    key,
                    "--client",
                    "dev:anonymous",
                    "--as",
                    outcome,
                    "--by",
                    "fleet-test",
                    "--config",
                    str(fleet.config),
                ]
            )
            assert resolved.returncode == 0, resolved.stderr
        final = journal()

    assert delta % 100 == 0 and delta // 100 < 2**12
    seen = (sorted(credited), states, [r.text for r in answers])
    assert succeeded <= credited <= succeeded | unknown, seen  # nothing lost or unrecorded
    assert posts == len(credited)  # each credited top-up POSTed once, none twice
    assert unknown  # the kill did cut some top-ups off mid-flight
    assert {k for k, s in final.items() if s == "succeeded"} == credited
    for response in answers:  # the client saw an answer, or the balancer's 502 for the dead
        assert response.status_code in (200, 502)
        if response.status_code == 200:
            result = response.json()["data"]["topUp"]
            assert result["__typename"] in ("TopUpSucceeded", "TopUpPending")
    assert after_kill.status_code == 200 and survivor.status_code == 200
    assert survivor.json()["data"]["balances"]["complete"] is True


def test_sigterm_on_a_replica_finishes_its_requests_and_costs_clients_nothing(
    tmp_path: Path, nginx: str, compose_redis: LockedRedis, pg_url: str, namespace: str
) -> None:
    changes = {"drain_seconds = 5": "drain_seconds = 2"}
    slow = {"query": '{ balances(accountIds: ["magma"]) { complete } }'}
    with running_fleet(tmp_path, nginx, compose_redis, pg_url, namespace, changes) as fleet:
        httpx.put(f"{fleet.sim}/_sim/faults/magma", json={"latency_seconds": 4}, timeout=10)
        answers: dict[str, httpx.Response] = {}

        def ask() -> None:
            answers["slow"] = httpx.post(f"{fleet.replicas[0]}/graphql", json=slow, timeout=60)

        thread = threading.Thread(target=ask)
        thread.start()
        until(lambda: fleet.calls().get("magma:balance", 0) >= 1, "the slow call upstream")
        fleet.processes[0].popen.send_signal(signal.SIGTERM)
        until(
            lambda: httpx.get(f"{fleet.replicas[0]}/readyz", timeout=5).status_code == 503,
            "readiness 503",
        )
        through_lb = [
            httpx.post(f"{fleet.lb}/graphql", json={"query": QUERY}, timeout=30) for _ in range(20)
        ]
        thread.join(60)
        status = fleet.processes[0].popen.wait(30)

    assert answers["slow"].status_code == 200
    assert answers["slow"].json()["data"]["balances"]["complete"] is True
    assert [r.status_code for r in through_lb] == [200] * 20  # no client saw the restart
    assert status == 0


async def live_streams(url: str, count: int, ids: list[str]) -> list[tuple[httpx.Response, Any]]:
    """`count` live streams open at once through `url`, each its own connection."""
    body = {"query": LIVE, "variables": {"ids": ids}}
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    http = httpx.AsyncClient(timeout=60, limits=limits)
    opened = []
    for _ in range(count):
        request = http.build_request(
            "POST", f"{url}/graphql/stream", json=body, headers={"accept": "text/event-stream"}
        )
        response = await http.send(request, stream=True)
        assert response.status_code == 200, await response.aread()
        opened.append((response, response.aiter_lines()))
    return opened


async def updates(lines: Any, wanted: int) -> list[dict[str, Any]]:
    """The next `wanted` balance updates of one stream (heartbeats skipped)."""
    found: list[dict[str, Any]] = []
    async for line in lines:
        if line.startswith("data: {"):
            found.append(json.loads(line[len("data: ") :])["data"]["balanceUpdates"])
            if len(found) == wanted:
                return found
    raise AssertionError(f"the stream ended after {found}")


LIVE = """subscription($ids: [ID!]) { balanceUpdates(accountIds: $ids) { __typename
  ... on AccountBalance { account { id } balances { total { amount } } } } }"""


def test_two_hundred_live_subscribers_on_two_replicas_share_one_read_and_see_a_top_up(
    tmp_path: Path, nginx: str, compose_redis: LockedRedis, pg_url: str, namespace: str
) -> None:
    """200 streams through the balancer, spread over both replicas: their snapshot costs
    one upstream read per account for the whole fleet; a top-up through one replica
    reaches every subscriber on both."""
    changes = {"[accounts.ourvoice-sn]\n": "[accounts.ourvoice-sn]\nfresh_seconds = 2\n"}
    accounts = ["ourvoice-sn", "magma"]
    one_client = "\n[live]\nmax_streams_per_client = 200\n"  # all 200 are the demo's anonymous
    with running_fleet(
        tmp_path, nginx, compose_redis, pg_url, namespace, changes, one_client
    ) as fleet:

        async def scenario() -> tuple[list[list[dict[str, Any]]], dict[str, int], list[Any]]:
            before, started = fleet.calls(), time.monotonic()
            streams = await live_streams(fleet.lb, 200, accounts)
            try:
                async with asyncio.timeout(60):  # a bound on the fleet's pace
                    snapshots = await asyncio.gather(*(updates(lines, 2) for _, lines in streams))
                reads = balance_calls(before, fleet.calls())
                windows["elapsed"] = time.monotonic() - started
                async with httpx.AsyncClient(timeout=30) as http:
                    await http.post(f"{fleet.lb}/graphql", json=top_up("live-fleet", 7000))
                async with asyncio.timeout(60):
                    pushed = await asyncio.gather(*(updates(lines, 1) for _, lines in streams))
            finally:
                for response, _ in streams:
                    await response.aclose()
            return snapshots, reads, pushed

        windows: dict[str, float] = {}
        snapshots, reads, pushed = asyncio.run(scenario())
        served = [fleet.served_streams(0), fleet.served_streams(1)]

    for snapshot in snapshots:
        assert {u["account"]["id"] for u in snapshot} == set(accounts)
    # 200 subscribers on two replicas: one upstream read per account per fresh window (an
    # entry is read again only once it has aged a window) — opening 200 streams may take
    # more than ourvoice-sn's 2 s window on a busy machine, never a read per subscriber
    fresh = {"ourvoice-sn": 2.0, "magma": 15.0}
    for account, seconds in fresh.items():
        assert 1 <= reads[f"{account}:balance"] <= 1 + int(windows["elapsed"] / seconds), reads
    assert {(p[0]["account"]["id"], p[0]["balances"][0]["total"]["amount"]) for p in pushed} == {
        ("ourvoice-sn", str(SEED + 7000))
    }
    assert min(served) > 20  # both replicas held a real share of the streams


def test_a_top_up_on_one_replica_reaches_the_other_replicas_streams_long_before_its_poll(
    tmp_path: Path, nginx: str, compose_redis: LockedRedis, pg_url: str, namespace: str
) -> None:
    """Replica 1's watcher polls ourvoice-sn once an hour here: its streams have a top-up
    made on replica 0 because replica 0 told every process of it (Redis pub/sub)."""
    changes = {"[accounts.ourvoice-sn]\n": "[accounts.ourvoice-sn]\nfresh_seconds = 3600\n"}
    channel = f"{namespace}:v1:changed"

    def subscribed() -> int:
        client = redis.Redis(port=compose_redis.port, password=compose_redis.admin_password)
        try:
            counts: list[tuple[bytes | str, int]] = client.pubsub_numsub(channel)
        finally:
            client.close()
        return counts[0][1]

    with running_fleet(tmp_path, nginx, compose_redis, pg_url, namespace, changes) as fleet:
        until(lambda: subscribed() == 2, "both replicas subscribed")
        zero, one = fleet.replicas

        async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            streams = await live_streams(one, 5, ["ourvoice-sn"])
            try:
                async with asyncio.timeout(60):  # a bound on the fleet's pace, not an hour
                    snapshots = await asyncio.gather(*(updates(lines, 1) for _, lines in streams))
                    async with httpx.AsyncClient(timeout=30) as http:
                        await http.post(f"{zero}/graphql", json=top_up("told", 4000))
                    pushed = await asyncio.gather(*(updates(lines, 1) for _, lines in streams))
            finally:
                for response, _ in streams:
                    await response.aclose()
            return [s[0] for s in snapshots], [p[0] for p in pushed]

        snapshots, pushed = asyncio.run(scenario())
    assert {u["balances"][0]["total"]["amount"] for u in snapshots} == {str(SEED)}
    assert {u["balances"][0]["total"]["amount"] for u in pushed} == {str(SEED + 4000)}
