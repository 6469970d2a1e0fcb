"""One contract for the top-up journal on both backends: SQLite (embedded) and the real
PostgreSQL — the same SQL, run by each."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.services.journal import Journal, Record, open_journal
from tests.helpers import ROOT


@pytest.fixture
async def store(journal_url: str) -> AsyncIterator[Journal]:
    opened = open_journal(journal_url)
    yield opened
    if journal_url.startswith("postgresql"):  # leave the shared schema as we found it
        for record in await opened.records():
            await opened.database.run("DELETE FROM topups WHERE client = ?", (record.client,))
    await opened.close()


def record(
    key: str = "k1",
    client: str = "ops",
    owner: str = "o1",
    lease: float = 130.0,
    fingerprint: str = "f1",
) -> Record:
    return Record(
        client,
        key,
        fingerprint,
        "ourvoice-sn",
        {
            "amount": "5000",
            "currency": "XOF",
            "payment_method": "MTN MOMO",
            "payment_reference": "P1",
        },
        "in_flight",
        owner,
        lease,
        None,
        100.0,
    )


async def test_exactly_one_caller_begins_a_key(store: Journal) -> None:
    assert await store.begin(record()) is None
    existing = await store.begin(record(owner="o2", fingerprint="f2"))
    assert existing is not None and existing.owner == "o1" and existing.fingerprint == "f1"
    assert await store.begin(record(client="other")) is None  # keys are per client


async def test_finish_is_a_compare_and_set(store: Journal) -> None:
    await store.begin(record())
    assert not await store.finish("ops", "k1", "intruder", "succeeded", {})
    assert await store.finish("ops", "k1", "o1", "pending", {})
    assert not await store.finish("ops", "k1", "o1", "succeeded", {})  # already final-ish
    assert await store.resolve("ops", "k1", "succeeded", "alice", 200.0)
    late = await store.finish("ops", "k1", "o1", "failed", {})
    got = await store.get("ops", "k1")
    assert not late and got is not None
    assert (got.state, got.resolved_by, got.resolved_at) == ("succeeded", "alice", 200.0)


async def test_release_gives_the_key_back_only_while_in_flight(store: Journal) -> None:
    await store.begin(record())
    assert await store.release("ops", "k1", "o1")
    assert await store.get("ops", "k1") is None
    await store.begin(record())
    await store.finish("ops", "k1", "o1", "succeeded", {"transaction": {"id": "x"}})
    assert not await store.release("ops", "k1", "o1")


async def test_pending_listing_includes_abandoned_in_flight_records(
    store: Journal,
) -> None:
    await store.begin(record("a", lease=150.0))
    await store.begin(record("b", lease=300.0))
    await store.begin(record("c"))
    await store.finish("ops", "c", "o1", "pending", {})
    pending = {r.key for r in await store.records(pending_only=True, now=200.0)}
    assert pending == {"a", "c"}  # b's owner still holds its lease
    journal = await store.records(account="ourvoice-sn")
    assert [r.key for r in journal] == ["c", "b", "a"]  # newest first (ties: key)


OPEN = """
import os, sys, time
from gateway.services.journal import Sqlite
path, start = sys.argv[1], sys.argv[2]
while not os.path.exists(start):
    time.sleep(0.001)
Sqlite(path)
print("opened")
"""


def test_workers_opening_a_new_journal_together_all_open_it(tmp_path: Path) -> None:
    """`serve --workers N` on SQLite: N processes open (and create) the same file at the
    same moment — every one must open it. (Before the fix, switching to WAL while another
    process did failed at once with "database is locked": 4 of 30 in five rounds of six.)"""
    for round_ in range(3):
        path, start = tmp_path / f"journal-{round_}.db", tmp_path / f"go-{round_}"
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, str(path), str(start)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(6)
        ]
        try:
            start.touch()  # all of them at once
            outcomes = [w.communicate(timeout=60) for w in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
        assert [out.strip() for out, _ in outcomes] == ["opened"] * 6, [e for _, e in outcomes]
