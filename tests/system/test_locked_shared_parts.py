"""`balance-gateway serve`, the installed CLI in its own process, in production against a
Redis and a PostgreSQL that demand credentials and TLS (`tests/locked_servers.py`): the
configuration docs/security.md gives works end to end, with the passwords as `env:`
references that no line the gateway writes ever shows; a password either part refuses
stops the start with one line naming the settings to fix — no traceback, no gateway
quietly serving without its cache or its journal."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.helpers import TOP_UP, free_port, topup
from tests.locked_servers import LockedRedis, TlsPostgres
from tests.system.processes import (
    CLI,
    KEY,
    SECRETS,
    clean_env,
    gateway_and_simulator,
    production_config,
    started,
)

QUERY = "{ balances { complete } }"


def locked_config(
    sim: str, folder: Path, redis: LockedRedis, postgres: TlsPostgres, namespace: str
) -> str:
    """The production config, its cache and journal the locked servers, over TLS."""
    journal = f"sqlite:///{folder / 'journal.db'}"
    text = production_config(sim, folder / "journal.db", cache=redis.tls_url, namespace=namespace)
    certs = redis.certs
    cache = f"""[cache]
username = "{redis.user}"
password = "env:REDIS_PASSWORD"
ca_file = "{certs.ca}"
cert_file = "{certs.client_cert}"
key_file = "{certs.client_key}"
"""
    idempotency = f"""[idempotency]
url = "{postgres.url()}"
password = "env:PG_PASSWORD"
sslmode = "verify-full"
ca_file = "{postgres.certs.ca}"
"""
    return text.replace("[cache]\n", cache).replace(
        f'[idempotency]\nurl = "{journal}"\n', idempotency
    )


def test_the_gateway_serves_through_credentials_and_tls_and_never_shows_them(
    tmp_path: Path, locked_redis_server: LockedRedis, tls_postgres_server: TlsPostgres
) -> None:
    sim_port, gw_port = free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        locked_config(sim_url, tmp_path, locked_redis_server, tls_postgres_server, "locked")
    )
    passwords = {
        "REDIS_PASSWORD": locked_redis_server.password,
        "PG_PASSWORD": tls_postgres_server.password,
    }
    env = clean_env(**SECRETS, **passwords)
    auth = {"authorization": f"Bearer {KEY}"}
    with gateway_and_simulator(config, (sim_port, gw_port), tmp_path / "logs", env) as (
        sim,
        gateway,
    ):
        ready = httpx.get(f"{gw_url}/readyz", timeout=10)
        answer = httpx.post(f"{gw_url}/graphql", json={"query": QUERY}, headers=auth, timeout=30)
        paid = httpx.post(
            f"{gw_url}/graphql",
            json={"query": TOP_UP, "variables": topup("locked-parts-1")},
            headers=auth,
            timeout=30,
        )
        status = gateway.stop(signal.SIGTERM)
        sim.stop(signal.SIGTERM)
        output = gateway.output
    assert ready.json() == {"status": "ready", "checks": {"cache": "ok", "journal": "ok"}}
    assert answer.json()["data"]["balances"]["complete"] is True
    assert paid.json()["data"]["topUp"]["__typename"] == "TopUpSucceeded", paid.json()
    assert status == 0
    for password in passwords.values():
        assert password not in output


def refused_start(
    tmp_path: Path, redis: LockedRedis, postgres: TlsPostgres, **passwords: str
) -> tuple[int, str]:
    """`serve` with these passwords: its exit status and everything it wrote."""
    config = tmp_path / "gateway.toml"
    config.write_text(locked_config("http://127.0.0.1:9", tmp_path, redis, postgres, "locked"))
    env = clean_env(**SECRETS, **passwords)
    argv = [str(CLI), "serve", "--config", str(config), "--port", str(free_port())]
    with started(argv, tmp_path / "logs", env=env) as gateway:
        status = gateway.popen.wait(60)
        return status, gateway.output


@pytest.mark.parametrize(
    ("refused", "said", "not_said"),
    [
        (
            "REDIS_PASSWORD",
            [
                "error: [cache] Redis refused the gateway: the credentials were refused",
                "[cache] username, password",
            ],
            "[idempotency]",
        ),
        (
            "PG_PASSWORD",
            [
                "error: [idempotency] PostgreSQL refused the gateway",
                "password authentication failed",
            ],
            "[cache]",
        ),
    ],
    ids=["redis", "postgresql"],
)
def test_a_password_refused_stops_the_start_in_one_line(
    tmp_path: Path,
    locked_redis_server: LockedRedis,
    tls_postgres_server: TlsPostgres,
    refused: str,
    said: list[str],
    not_said: str,
) -> None:
    passwords = {
        "REDIS_PASSWORD": locked_redis_server.password,
        "PG_PASSWORD": tls_postgres_server.password,
        refused: "not-the-password",
    }
    status, output = refused_start(tmp_path, locked_redis_server, tls_postgres_server, **passwords)
    assert status == 2
    assert len(output.strip().splitlines()) == 1, output  # one line, nothing before it
    assert all(words in output for words in said) and not_said not in output
    assert "Traceback" not in output and "not-the-password" not in output
