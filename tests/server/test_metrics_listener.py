"""The metrics listener's app: `GET /metrics` without a key, the main port's exposition
exactly, and 404 for every other path; under workers, every worker's exposition asked over
its Unix socket and answered as one, a silent worker left out with a warning."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.observability.metrics import Metrics
from gateway.server.exposition import Exposition
from gateway.server.metrics_listener import (
    WorkerExpositions,
    metrics_only,
    private_folder,
    worker_metrics,
    worker_socket,
)
from gateway.server.serving import ConnectionLimits, Server, unix_socket
from tests.helpers import (
    FULL_KEY,
    FakeClock,
    client,
    demo_settings,
    production,
    running_gateway,
    sample,
)

QUERY = "{ balances { complete } }"
ELSEWHERE = ["/", "/graphql", "/graphql/stream", "/healthz", "/readyz", "/dashboard", "/metrics/"]


async def fixed() -> bytes:
    return b"# the exposition\n"


async def test_metrics_answers_without_a_key_and_nothing_else_is_there() -> None:
    app = metrics_only(fixed)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://listener"
    ) as http:
        answer = await http.get("/metrics")
        assert answer.status_code == 200 and answer.content == b"# the exposition\n"
        assert answer.headers["content-type"].startswith("text/plain; version=")
        assert answer.headers["cache-control"] == "no-store"
        for path in ELSEWHERE:
            assert (await http.get(path)).status_code == 404, path
        assert (await http.post("/graphql", json={"query": QUERY})).status_code == 404
        assert (await http.post("/metrics")).status_code == 405


async def test_the_listener_says_what_the_main_port_says_to_a_metrics_client(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Production: the main port's /metrics needs the metrics:read scope — as before —
    while the listener, built on the same app's exposition, needs nothing."""
    reader = client("prometheus", "bgw_metrics-reader-key-0123456789", ("metrics:read",), ())
    full = client("full", FULL_KEY, ("balances:read",), None)
    settings = production(demo_settings(), full, reader)
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query(QUERY)
        listener = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=metrics_only(gw.app.state.exposition)),
            base_url="http://listener",
        )
        async with listener:
            scraped = (await listener.get("/metrics")).text
            assert (await gw.http.get("/metrics")).status_code == 403  # balances:read only
            assert (await gw.as_key(None).http.get("/metrics")).status_code == 401
            main = (await gw.as_key("bgw_metrics-reader-key-0123456789").http.get("/metrics")).text
    ok = {"operation_name": "none", "operation_type": "query", "outcome": "ok", "reason": ""}
    assert sample(scraped, "gateway_requests_total", **ok) == 1
    assert sample(main, "gateway_requests_total", **ok) == 1
    assert series(scraped) == series(main)


def series(text: str) -> set[str]:
    """Each sample's name and labels (its value left out: CPU seconds move between scrapes)."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}


async def test_the_exposition_counts_pending_top_ups_at_scrape_time(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gw:
        exposition: Exposition = gw.app.state.exposition

        class Stuck:
            async def pending_count(self, now: float) -> int:
                return 3

        gw.app.state.journal = Stuck()
        assert sample((await exposition()).decode(), "gateway_journal_pending") == 3

        class Broken:
            async def pending_count(self, now: float) -> int:
                raise OSError("the database is away")

        gw.app.state.journal = Broken()  # the scrape still answers, the gauge as it was
        assert sample((await exposition()).decode(), "gateway_journal_pending") == 3


@contextlib.asynccontextmanager
async def served(servers: list[Server]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(s.serve(sockets=[s.socket])) for s in servers]
    try:
        for _ in range(500):
            if all(s.started for s in servers):
                break
            await asyncio.sleep(0.01)
        yield
    finally:
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks)


async def source_of(metrics: Metrics) -> bytes:
    return metrics.render()


async def test_workers_are_asked_over_their_sockets_and_answered_as_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = private_folder()
    try:
        assert folder.stat().st_mode & 0o777 == 0o700  # this user's alone
        workers = [Metrics(), Metrics(), Metrics()]
        workers[0].graphql_in_flight.set(4)
        workers[1].graphql_in_flight.set(7)
        servers = [
            Server(
                metrics_only(functools.partial(source_of, workers[slot]), quiet=True),
                unix_socket(worker_socket(folder, slot)),
            )
            for slot in (0, 1)  # slot 2 is being replaced, say: nobody listens there
        ]
        assert worker_socket(folder, 0).stat().st_mode & 0o777 == 0o600
        every = WorkerExpositions([worker_socket(folder, s) for s in range(3)], timeout=2)
        async with served(servers):
            with caplog.at_level(logging.WARNING, "gateway.metrics"):
                text = (await every()).decode()
        assert sample(text, "gateway_graphql_in_flight", worker="0") == 4
        assert sample(text, "gateway_graphql_in_flight", worker="1") == 7
        assert 'worker="2"' not in text  # nobody at slot 2: left out of this scrape
        (warning,) = caplog.records
        assert "2.sock did not answer" in warning.getMessage()
    finally:
        shutil.rmtree(folder)


def test_worker_zero_serves_the_listener_and_the_others_close_their_copy(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "w"
    folder.mkdir()
    for slot in (0, 1):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        servers = worker_metrics(fixed, slot, 2, folder, listener, limits=ConnectionLimits())
        assert servers[0].socket.getsockname() == str(worker_socket(folder, slot))
        if slot == 0:
            assert [s.socket for s in servers[1:]] == [listener]
        else:
            assert len(servers) == 1 and listener.fileno() == -1  # closed
        for server in servers:
            server.socket.close()


def test_the_sockets_folder_is_short_enough_for_a_unix_socket(tmp_path: Path) -> None:
    """A temporary folder too long for a socket's path ($TMPDIR set deep): /tmp instead, so
    the workers bind their sockets rather than fail with a traceback each."""
    long = tmp_path / ("x" * 100)
    long.mkdir()
    folder = private_folder(str(long))
    try:
        assert folder.parent == Path("/tmp")
        assert folder.stat().st_mode & 0o777 == 0o700
        with unix_socket(worker_socket(folder, 63)):
            pass
    finally:
        shutil.rmtree(folder)
    assert private_folder(str(tmp_path)).parent == tmp_path
