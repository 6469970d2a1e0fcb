"""The top-up journal on a PostgreSQL that takes TCP only over TLS and only with a
password (`tests/locked_servers.py`: a server of this run's own, `ssl = on`): the
gateway's `[idempotency] sslmode`, `ca_file` and password reach it, the connection is
encrypted (the server says so), and what it refuses — no TLS, a wrong password, a server
certificate no trusted CA signed — is said in words, never mistaken for "down"."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gateway.app import postgres_access
from gateway.config.secret import Secret
from gateway.config.settings import IdempotencySettings, Settings
from gateway.config.tls import TlsFiles
from gateway.services.journal import open_journal, postgres_refusal
from tests.helpers import demo_settings, free_port
from tests.locked_servers import TlsPostgres, certificates
from tests.services.test_journal import record


def journal_settings(server: TlsPostgres, **changes: Any) -> Settings:
    """`[idempotency]` as an operator writes it for `server`: verify-full, its CA."""
    journal = IdempotencySettings(
        url=server.url(),
        password=Secret(server.password),
        sslmode="verify-full",
        tls=TlsFiles(server.certs.ca),
    )
    return dataclasses.replace(demo_settings(), idempotency=dataclasses.replace(journal, **changes))


async def test_the_journal_writes_over_a_verified_tls_connection(
    tls_postgres_server: TlsPostgres,
) -> None:
    settings = journal_settings(tls_postgres_server)
    journal = open_journal(settings.idempotency.url, 2, *postgres_access(settings))
    try:
        began = await journal.begin(record("tls-1"))
        kept = [r.key for r in await journal.records()]
        rows, _ = await journal.database.run(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
    finally:
        await journal.close()
    assert began is None  # the key was free: this caller owns it
    assert "tls-1" in kept  # read back (the server is the run's own, shared by its tests)
    assert rows[0][0] is True and rows[0][1].startswith("TLS")
    assert await postgres_refusal(settings.idempotency.url, *postgres_access(settings)) is None


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"sslmode": "disable"}, "no encryption"),  # pg_hba.conf: hostssl only
        ({"password": Secret("not-the-password")}, "password authentication failed"),
        ({"tls": "another CA"}, "certificate verify failed"),
    ],
    ids=["without tls", "wrong password", "untrusted server"],
)
async def test_what_postgresql_refuses_is_said(
    tls_postgres_server: TlsPostgres, tmp_path: Path, changes: dict[str, Any], said: str
) -> None:
    if changes.get("tls") == "another CA":
        changes = {"tls": TlsFiles(certificates(tmp_path / "other").ca)}
    settings = journal_settings(tls_postgres_server, **changes)
    refused = await postgres_refusal(settings.idempotency.url, *postgres_access(settings))
    assert refused is not None and said in refused, refused


async def test_a_postgresql_that_cannot_be_reached_is_not_refused() -> None:
    """Down is not refused: readiness reports it, and the start is not stopped."""
    down = f"postgresql://balance_gateway@127.0.0.1:{free_port()}/postgres"
    assert await postgres_refusal(down, "x", {"sslmode": "require"}) is None


async def test_a_host_name_that_does_not_resolve_is_down_not_refused() -> None:
    """A DNS hiccup as a pod starts must read as not ready, not as a crash loop."""
    lost = "postgresql://balance_gateway@no-such-host.invalid:5432/postgres"
    assert await postgres_refusal(lost, "x", {"sslmode": "require"}) is None
