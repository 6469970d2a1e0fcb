"""Durable records of top-up attempts: one per (client, idempotency key), never deleted
once it holds an outcome — it is also the Our Voice journal.

    in_flight ──(upstream answered)──▶ succeeded | rejected       final
        │    └──(outcome unknown)───▶ pending ──(operator)──▶ succeeded | failed
        └──(provably not sent, or a definite 401/403/429)──▶ (record removed: key reusable)

`begin` inserts the record before anything is sent, atomically: exactly one caller owns a
key. Every later write is a compare-and-set on (owner, state = in_flight), so a late writer
can never overwrite an operator's resolution. An in-flight record whose owner's lease has
expired (the gateway restarted, or died) is reported as pending — never sent again.

One journal, written once in SQL both backends speak: SQLite (embedded, WAL, a file that
survives restarts) and PostgreSQL (shared by replicas); each backend only runs statements.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

SCHEMA = """CREATE TABLE IF NOT EXISTS topups (
    client TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    account TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    lease_until DOUBLE PRECISION,
    outcome TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    resolved_by TEXT,
    resolved_at DOUBLE PRECISION,
    PRIMARY KEY (client, key)
)"""
# The same database keeps the balance history (`history.py`): one row per balance per time
# bucket of `[history] every_seconds` — the last fresh read of the bucket. A bucket is its
# setting and its first second, so buckets of two settings never meet; rows are read by `at`
# alone, so a change of the setting hides none of them.
POINTS_SCHEMA = """CREATE TABLE IF NOT EXISTS balance_points (
    balance TEXT NOT NULL,
    every_seconds INTEGER NOT NULL,
    bucket BIGINT NOT NULL,
    account TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    currency TEXT NOT NULL,
    total TEXT NOT NULL,
    available TEXT NOT NULL,
    PRIMARY KEY (balance, every_seconds, bucket)
)"""
# The history as the first release kept it (changes only, one per bucket number): its rows
# are moved into `balance_points` at start (as `every_seconds` 0), then it stays empty.
LEGACY_HISTORY_SCHEMA = """CREATE TABLE IF NOT EXISTS balance_history (
    balance TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    account TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    currency TEXT NOT NULL,
    total TEXT NOT NULL,
    available TEXT NOT NULL,
    PRIMARY KEY (balance, bucket)
)"""
MIGRATIONS = (
    "INSERT INTO balance_points "
    "(balance, every_seconds, bucket, account, at, currency, total, available) "
    "SELECT balance, 0, bucket, account, at, currency, total, available FROM balance_history "
    "WHERE true ON CONFLICT DO NOTHING",
    "DELETE FROM balance_history",
)
# … and what the webhook notifications need to be sent once across replicas and restarts
# (`notifications.py`): each balance's alert level with the read time it was last moved by
# (changed by compare-and-set), and the outbox of deliveries, written in the same
# transaction as the level change that creates them.
ALERTS_SCHEMA = """CREATE TABLE IF NOT EXISTS balance_alerts (
    balance TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    level TEXT NOT NULL,
    observed_at DOUBLE PRECISION NOT NULL,
    changed_at DOUBLE PRECISION NOT NULL
)"""
OUTBOX_SCHEMA = """CREATE TABLE IF NOT EXISTS webhook_outbox (
    id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    balance TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    PRIMARY KEY (id, endpoint)
)"""
# One row per balance and day whose close raised a `daily_close.unexplained` event: the
# primary key lets one replica of all that close the same day create it (`notifications.py`).
CLOSE_EVENTS_SCHEMA = """CREATE TABLE IF NOT EXISTS daily_close_events (
    balance TEXT NOT NULL,
    day TEXT NOT NULL,
    account TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (balance, day)
)"""
# What the hourly prunes and the delivery loop scan.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS balance_points_at ON balance_points (at)",
    "CREATE INDEX IF NOT EXISTS balance_points_time ON balance_points (balance, at)",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (state, next_at)",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_created ON webhook_outbox (created_at)",
    "CREATE INDEX IF NOT EXISTS webhook_outbox_order ON webhook_outbox (endpoint, balance, at)",
    "CREATE INDEX IF NOT EXISTS daily_close_events_created ON daily_close_events (created_at)",
)
SCHEMAS = (
    SCHEMA,
    POINTS_SCHEMA,
    LEGACY_HISTORY_SCHEMA,
    ALERTS_SCHEMA,
    OUTBOX_SCHEMA,
    CLOSE_EVENTS_SCHEMA,
    *INDEXES,
    *MIGRATIONS,
)
COLUMNS = (
    "client, key, fingerprint, account, request, state, owner, lease_until, outcome, "
    "created_at, resolved_by, resolved_at"
)


@dataclass(frozen=True)
class Record:
    client: str
    key: str
    fingerprint: str
    account: str
    request: dict[str, Any]
    state: str
    owner: str | None
    lease_until: float | None
    outcome: dict[str, Any] | None
    created_at: float
    resolved_by: str | None = None
    resolved_at: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Record:
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            json.loads(row[4]),
            row[5],
            row[6],
            row[7],
            json.loads(row[8]) if row[8] else None,
            row[9],
            row[10],
            row[11],
        )


class Journal(Protocol):
    database: Database  # the SQL database it lives in (the balance history shares it)

    async def begin(self, record: Record) -> Record | None:
        """Insert `record` (state in_flight) if the key is new: None. Else the existing one."""
        ...

    async def get(self, client: str, key: str) -> Record | None: ...

    async def finish(
        self, client: str, key: str, owner: str, state: str, outcome: dict[str, Any]
    ) -> bool:
        """Compare-and-set from in_flight (owned by `owner`) to `state`; False if it was not."""
        ...

    async def release(self, client: str, key: str, owner: str) -> bool:
        """Remove an in-flight record this owner holds (nothing was sent): key reusable."""
        ...

    async def resolve(self, client: str, key: str, state: str, by: str, at: float) -> bool:
        """An operator's verdict on a pending (or abandoned in-flight) record."""
        ...

    async def records(
        self, *, pending_only: bool = False, account: str | None = None, now: float | None = None
    ) -> list[Record]: ...

    async def pending_count(self, now: float) -> int:
        """Records whose outcome is unknown: pending, or in flight past their lease."""
        ...

    async def check_writable(self) -> None:
        """Raises unless a write would be accepted now (readiness): reachable, not read-only."""
        ...

    async def close(self) -> None: ...


def _values(record: Record) -> tuple[Any, ...]:
    return (
        record.client,
        record.key,
        record.fingerprint,
        record.account,
        json.dumps(record.request, sort_keys=True),
        record.state,
        record.owner,
        record.lease_until,
        json.dumps(record.outcome) if record.outcome else None,
        record.created_at,
        record.resolved_by,
        record.resolved_at,
    )


def _listing(pending_only: bool, account: str | None, now: float | None) -> tuple[str, list[Any]]:
    """SQL text is built from constants only; values always go as parameters."""
    clauses: list[str] = []
    args: list[Any] = []
    if pending_only:
        clauses.append("(state = 'pending' OR (state = 'in_flight' AND lease_until < ?))")
        args.append(now if now is not None else 0.0)
    if account is not None:
        clauses.append("account = ?")
        args.append(account)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT {COLUMNS} FROM topups{where} ORDER BY created_at DESC, key DESC", args


class Statements(Protocol):
    """Runs statements: `?` placeholders (each dialect translates them); the rows (of a
    SELECT) and the row count, read while holding the connection."""

    async def run(self, sql: str, args: Sequence[Any] = ()) -> tuple[list[Any], int]: ...


class Database(Statements, Protocol):
    """The SQL database: each `run` is one autocommitted statement; `transaction()` gives
    statements that commit together when the block ends, or not at all when it raises."""

    def transaction(self) -> AbstractAsyncContextManager[Statements]: ...

    async def close(self) -> None: ...


class SqlJournal:
    """The journal, written once in SQL both dialects speak."""

    def __init__(self, db: Database) -> None:
        self.database = db  # shared with the balance history and the notifications

    async def begin(self, record: Record) -> Record | None:
        placeholders = ", ".join("?" * 12)
        _, inserted = await self.database.run(
            f"INSERT INTO topups ({COLUMNS}) VALUES ({placeholders}) ON CONFLICT DO NOTHING",
            _values(record),
        )
        return None if inserted else await self.get(record.client, record.key)

    async def get(self, client: str, key: str) -> Record | None:
        rows, _ = await self.database.run(
            f"SELECT {COLUMNS} FROM topups WHERE client = ? AND key = ?", (client, key)
        )
        return Record.from_row(rows[0]) if rows else None

    async def finish(
        self, client: str, key: str, owner: str, state: str, outcome: dict[str, Any]
    ) -> bool:
        _, count = await self.database.run(
            "UPDATE topups SET state = ?, outcome = ?, lease_until = NULL "
            "WHERE client = ? AND key = ? AND owner = ? AND state = 'in_flight'",
            (state, json.dumps(outcome), client, key, owner),
        )
        return count == 1

    async def release(self, client: str, key: str, owner: str) -> bool:
        _, count = await self.database.run(
            "DELETE FROM topups WHERE client = ? AND key = ? AND owner = ? AND state = 'in_flight'",
            (client, key, owner),
        )
        return count == 1

    async def resolve(self, client: str, key: str, state: str, by: str, at: float) -> bool:
        _, count = await self.database.run(
            "UPDATE topups SET state = ?, resolved_by = ?, resolved_at = ?, lease_until = NULL "
            "WHERE client = ? AND key = ? AND state IN ('pending', 'in_flight')",
            (state, by, at, client, key),
        )
        return count == 1

    async def records(
        self, *, pending_only: bool = False, account: str | None = None, now: float | None = None
    ) -> list[Record]:
        sql, args = _listing(pending_only, account, now)
        rows, _ = await self.database.run(sql, args)
        return [Record.from_row(r) for r in rows]

    async def pending_count(self, now: float) -> int:
        rows, _ = await self.database.run(
            "SELECT COUNT(*) FROM topups "
            "WHERE state = 'pending' OR (state = 'in_flight' AND lease_until < ?)",
            (now,),
        )
        return int(rows[0][0])

    async def check_writable(self) -> None:
        # A write that changes nothing: refused by a read-only file, replica or transaction.
        await self.database.run("UPDATE topups SET state = state WHERE 1 = 0")

    async def close(self) -> None:
        await self.database.close()


class _Held:
    """The statements of one open transaction."""

    def __init__(self, run: Callable[..., Any]) -> None:
        self.run = run


class Sqlite:
    """One connection, used from one worker thread at a time, in WAL mode."""

    BUSY_SECONDS = 5.0  # how long an opening or a statement waits for another process

    def __init__(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=self.BUSY_SECONDS
        )
        self._wal()
        # The tables at once, in one write transaction: several workers opening the same
        # file wait for each other here (the busy timeout) instead of failing.
        self._db.execute("BEGIN IMMEDIATE")
        for schema in SCHEMAS:
            self._db.execute(schema)
        self._db.execute("COMMIT")
        self._lock = asyncio.Lock()

    def _wal(self) -> None:
        """Switch to WAL. SQLite refuses the switch at once, without its busy handler, while
        another process holds the file (several `serve --workers` opening it together):
        retried, within the busy timeout."""
        deadline = time.monotonic() + self.BUSY_SECONDS
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # at start-up only, before the event loop serves anything

    async def run(self, sql: str, args: Sequence[Any] = ()) -> tuple[list[Any], int]:
        async with self._lock:
            return await self._statement(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        """`BEGIN IMMEDIATE`: the write lock first, so the statements of concurrent
        transactions (of this or another process) never interleave."""
        async with self._lock:
            await self._statement("BEGIN IMMEDIATE")
            try:
                yield _Held(self._statement)
                await self._statement("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    await self._statement("ROLLBACK")
                raise

    async def _statement(self, sql: str, args: Sequence[Any] = ()) -> tuple[list[Any], int]:
        """One statement in the worker thread; the caller holds the connection."""

        def execute() -> tuple[list[Any], int]:
            cursor = self._db.execute(sql, args)
            return cursor.fetchall(), cursor.rowcount

        statement = asyncio.ensure_future(asyncio.to_thread(execute))
        try:
            return await asyncio.shield(statement)
        except asyncio.CancelledError:
            # The thread runs the statement to its end whatever happens here: hold the
            # connection until it has (closing it under a running statement crashes).
            await asyncio.wait([statement])
            raise

    async def close(self) -> None:
        async with self._lock:
            self._db.close()


class Postgres:
    """A pool of connections (psycopg's), so replicas × concurrent top-ups are not serialized
    on one. Each operation is a single autocommitted statement. A connection is checked as
    it is handed out, so after a server restart the pool reconnects rather than failing a
    top-up on a dead socket; while the server is down an operation fails within
    `POOL_TIMEOUT_SECONDS` (the top-up service then refuses before sending, or reports the
    top-up pending after — never lost, never sent twice)."""

    LOCK_ID = 727_217_001  # an advisory lock id: replicas create the table one at a time
    POOL_TIMEOUT_SECONDS = 5.0
    RECONNECT_SECONDS = 2.0

    def __init__(
        self,
        url: str,
        pool_size: int = 10,
        password: str | None = None,
        tls: Mapping[str, str] | None = None,
    ) -> None:
        from psycopg_pool import AsyncConnectionPool

        connection = connection_arguments(password, tls, int(self.POOL_TIMEOUT_SECONDS))
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=self.POOL_TIMEOUT_SECONDS,
            kwargs=connection,
            check=AsyncConnectionPool.check_connection,
            # Give a failing reconnection up soon: the next operation then starts a fresh one
            # at once, instead of waiting out an exponential backoff grown during an outage.
            reconnect_timeout=self.RECONNECT_SECONDS,
        )
        self._opened = asyncio.Lock()
        self._ready = False

    async def _open(self) -> None:
        async with self._opened:
            if self._ready:
                return
            await self._pool.open(wait=False)
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_ID,))
                for schema in SCHEMAS:
                    await conn.execute(schema)
            self._ready = True

    async def run(self, sql: str, args: Sequence[Any] = ()) -> tuple[list[Any], int]:
        if not self._ready:
            await self._open()
        async with self._pool.connection() as conn:
            return await _execute(conn, sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        if not self._ready:
            await self._open()
        async with self._pool.connection() as conn, conn.transaction():
            yield _Held(functools.partial(_execute, conn))

    async def close(self) -> None:
        await self._pool.close()


async def _execute(conn: Any, sql: str, args: Sequence[Any] = ()) -> tuple[list[Any], int]:
    """One statement on a psycopg connection: the one dialect difference is psycopg's
    placeholder (no `?` occurs in the SQL)."""
    cursor = await conn.execute(sql.replace("?", "%s"), args)
    rows = await cursor.fetchall() if cursor.description else []
    return rows, cursor.rowcount


def connection_arguments(
    password: str | None, tls: Mapping[str, str] | None, timeout_seconds: int
) -> dict[str, Any]:
    """psycopg's arguments beside the URL: autocommit, a connect timeout, the password
    (when it is not in the URL) and libpq's TLS parameters (`sslmode`, `sslrootcert`,
    `sslcert`, `sslkey`)."""
    connection: dict[str, Any] = {"autocommit": True, "connect_timeout": timeout_seconds}
    if password is not None:
        connection["password"] = password
    return connection | dict(tls or {})


# What libpq says when it could not reach the server at all (else the server, or the TLS
# handshake, refused the gateway: a configuration no retry fixes). libpq gives connection
# failures no SQLSTATE, so its own words are all there is to tell them apart.
UNREACHABLE = (
    "connection refused",
    "timeout expired",
    "could not translate host name",
    "failed to resolve host",  # psycopg's own name lookup
    "no route to host",
    "network is unreachable",
    "connection timed out",
    "the database system is starting up",
    "the database system is shutting down",
)


async def postgres_refusal(
    url: str, password: str | None = None, tls: Mapping[str, str] | None = None
) -> str | None:
    """Why PostgreSQL refuses the gateway — its password, pg_hba.conf, TLS — or None when
    it accepts a connection or cannot be reached now (readiness reports that)."""
    import psycopg

    arguments = connection_arguments(password, tls, int(Postgres.POOL_TIMEOUT_SECONDS))
    try:
        connection = await psycopg.AsyncConnection.connect(url, **arguments)
    except psycopg.OperationalError as exc:
        said = str(exc).strip()
        if any(words in said.lower() for words in UNREACHABLE):
            return None
        return " ".join(line.strip() for line in said.splitlines()) or type(exc).__name__
    except psycopg.Error as exc:  # settings load checks the URL: this is what it missed
        return f"libpq could not use the settings ({type(exc).__name__})"
    await connection.close()
    return None


def open_journal(
    url: str,
    pool_size: int = 10,
    password: str | None = None,
    tls: Mapping[str, str] | None = None,
) -> Journal:
    """`sqlite:///relative.db`, `sqlite:////absolute/path.db` or `postgresql://…` (with up to
    `pool_size` connections, `password` when it is not in the URL, and libpq's TLS
    parameters)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return SqlJournal(Sqlite(url[len("sqlite:///") :]))
    if parts.scheme in ("postgresql", "postgres"):
        return SqlJournal(Postgres(url, pool_size, password, tls))
    raise ValueError(f"unsupported idempotency URL scheme {parts.scheme!r}")
