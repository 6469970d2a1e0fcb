from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from gateway.simulator import Simulator, create_simulator
from gateway.simulator.state import SimState
from gateway.upstream.client import UpstreamClient
from tests import helpers
from tests.helpers import FakeClock, GatewayClient, demo_settings, running_gateway
from tests.locked_servers import (
    LockedRedis,
    TlsPostgres,
    locked_redis,
    postgres_bin,
    tls_postgres,
)


@pytest.fixture(scope="session", autouse=True)
def journals_directory(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`demo_settings()` journals go under pytest's temporary directory for this run."""
    helpers.JOURNALS = tmp_path_factory.mktemp("journals")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return create_simulator(SimState(clock=clock))


@pytest.fixture
def sim_transport(sim: Simulator) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=sim.app)


@pytest.fixture
async def http(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient(sim_transport, wall_clock=clock)
    yield client
    await client.aclose()


@pytest.fixture
async def gw(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[GatewayClient]:
    """The demo (`demo_settings()`) running in-process, its providers the simulator: what
    most tests query. A folder or a module whose tests need another gateway overrides it."""
    async with running_gateway(demo_settings(), sim_transport, clock) as gw:
        yield gw


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """Every key this test run writes starts with this; only these keys are removed."""
    return f"bgtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def redis_url(run_prefix: str) -> Iterator[str]:
    if not redis_reachable(REDIS_URL):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is required in CI")
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield REDIS_URL
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{run_prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def namespace(run_prefix: str) -> str:
    return f"{run_prefix}-{uuid.uuid4().hex[:8]}"


PG_URL = os.environ.get("PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url(run_prefix: str) -> Iterator[str]:
    """A schema of this run's own in the shared database; only it is dropped afterwards."""
    import psycopg

    schema = run_prefix.replace("-", "_")
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI")
        pytest.skip(f"no PostgreSQL at {PG_URL}")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            separator = "&" if "?" in PG_URL else "?"
            yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The journal's database, both kinds for real: a file of this test's own, or this
    run's schema of the machine's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def required(found: str | None, what: str) -> str:
    """A system tool the tests drive: fails the test in CI (`.ci/run` installs it), skips
    it elsewhere."""
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is required in CI (.ci/run installs it)")
        pytest.skip(f"no {what}")
    return found


@pytest.fixture
def nginx() -> str:
    """Debian's nginx (the fleet's load balancer)."""
    on_path = shutil.which("nginx")
    return required(
        on_path or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None), "nginx"
    )


@pytest.fixture
def promtool() -> str:
    """Prometheus's promtool (Debian's `prometheus` package)."""
    return required(shutil.which("promtool"), "promtool (Debian's prometheus)")


@pytest.fixture
def node() -> tuple[str, str]:
    """Node and npm (JS-side checks install their packages into a temporary folder)."""
    return required(shutil.which("node"), "Node"), required(shutil.which("npm"), "npm")


@pytest.fixture
def redis_server() -> str:
    """Debian's `redis-server`, for the Redis servers tests start themselves."""
    return required(shutil.which("redis-server"), "redis-server")


@pytest.fixture
def locked_redis_server(tmp_path: Path, redis_server: str) -> Iterator[LockedRedis]:
    """A Redis of this test's own: requirepass, the gateway's ACL user, TLS with client
    certificates (`tests/locked_servers.py`)."""
    with locked_redis(redis_server, tmp_path / "redis", "locked") as server:
        yield server


@pytest.fixture(scope="session")
def tls_postgres_server() -> Iterator[TlsPostgres]:
    """A PostgreSQL of this run's own, TCP only over TLS with a password."""
    programs = postgres_bin()
    required(str(programs) if programs else None, "PostgreSQL's server programs (initdb)")
    assert programs is not None
    with tls_postgres(programs) as server:
        yield server
