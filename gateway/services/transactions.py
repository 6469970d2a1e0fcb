"""Transaction history across providers: one newest-first, keyset-paginated connection.

Providers page differently (Paymob by page number, Muda not at all, Magma by date range);
each adapter exposes numbered upstream pages, and this module walks them: it starts at the
page the cursor's last row came from, keeps only rows strictly older than that row's
(createdAt, id) — so rows inserted upstream between two requests cause no duplicate
and no gap — filters exactly, and stops once it has `first` rows and knows whether more
follow. Upstream pages are cached (a short freshness) per account, filter and page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.cache import keys
from gateway.cache.codec import decode_transactions, encode_transactions
from gateway.cache.read_through import Codec, Freshness, ReadThroughCache
from gateway.clock import request_deadline
from gateway.config.accounts import AccountConfig
from gateway.domain import Transaction, TransactionFilter, TransactionPage
from gateway.errors import ClientError
from gateway.observability import log_context
from gateway.providers.protocols import TransactionSource
from gateway.services.cursor import Cursors, Position

PAGES = Codec[TransactionPage](encode_transactions, decode_transactions)
MAX_FIRST = 100
MAX_UPSTREAM_PAGES = 24  # per request: bounds the work one query can cause
FAR_FUTURE = 4e12  # a position newer than any row: "everything on the next pages"


@dataclass(frozen=True)
class Connection:
    edges: list[tuple[str, Transaction]]
    has_next_page: bool
    total: int | None
    resume_cursor: str | None = None  # where to go on when a page held no row to point at

    @property
    def end_cursor(self) -> str | None:
        return self.resume_cursor or (self.edges[-1][0] if self.edges else None)


class TransactionService:
    def __init__(
        self,
        accounts: Mapping[str, AccountConfig],
        sources: Mapping[str, TransactionSource],
        cache: ReadThroughCache,
        cursors: Cursors,
        fresh_seconds: float,
        deadline_seconds: float,
    ) -> None:
        self._accounts = accounts
        self._sources = sources
        self._cache = cache
        self._cursors = cursors
        self.fresh_seconds = fresh_seconds
        self.deadline_seconds = deadline_seconds

    def supports(self, account_id: str) -> bool:
        return account_id in self._sources

    async def connection(
        self, account_id: str, flt: TransactionFilter, first: int, after: str | None
    ) -> Connection:
        """Raises ClientError for a bad `first` or cursor, UpstreamError from the provider."""
        if not 1 <= first <= MAX_FIRST:
            raise ClientError(f"`first` must be from 1 to {MAX_FIRST}.")
        log_context.stats().accounts += 1
        key = flt.canonical()
        position = self._cursors.read(after, account_id, key) if after else None
        page = position.page if position else 1
        found: list[tuple[Transaction, int]] = []
        total: int | None = None
        with request_deadline(self.deadline_seconds):
            for _ in range(MAX_UPSTREAM_PAGES):
                upstream = await self._page(account_id, flt, page)
                total = upstream.total if total is None else total
                found.extend(
                    (row, page) for row in upstream.rows if self._after(row, position, flt)
                )
                if len(found) > first or upstream.next_page is None:
                    break
                page = upstream.next_page
            else:  # the per-request bound (so at most `first` rows): resume at the next page
                resume = found[-1][0].position if found else (FAR_FUTURE, "")
                return Connection(
                    [(self._cursor(account_id, key, row, at), row) for row, at in found],
                    True,
                    total,
                    self._cursors.make(account_id, key, Position(*resume, page=page)),
                )
        edges = [(self._cursor(account_id, key, row, at), row) for row, at in found[:first]]
        return Connection(edges, len(found) > first, total)

    async def rows(
        self, account_id: str, flt: TransactionFilter, max_pages: int = MAX_UPSTREAM_PAGES
    ) -> list[Transaction] | None:
        """Every row `flt` selects, walking the upstream pages (cached as `connection`'s
        are); None when there are more than `max_pages` of them. Raises UpstreamError."""
        rows: list[Transaction] = []
        page: int | None = 1
        with request_deadline(self.deadline_seconds):
            for _ in range(max_pages):
                assert page is not None
                upstream = await self._page(account_id, flt, page)
                rows.extend(row for row in upstream.rows if flt.matches(row))
                page = upstream.next_page
                if page is None:
                    return rows
        return None

    def _cursor(self, account_id: str, key: str, row: Transaction, page: int) -> str:
        return self._cursors.make(account_id, key, Position(*row.position, page=page))

    @staticmethod
    def _after(row: Transaction, position: Position | None, flt: TransactionFilter) -> bool:
        older = position is None or row.position < (position.created, position.row_id)
        return older and flt.matches(row)

    async def _page(self, account_id: str, flt: TransactionFilter, page: int) -> TransactionPage:
        account = self._accounts[account_id]
        source = self._sources[account_id]
        if not getattr(source, "cacheable", True):
            return await source.transaction_page(flt, page)
        cache_key = keys.transactions_page(account, flt, page)

        async def fetch() -> TransactionPage:
            return await source.transaction_page(flt, page)

        freshness = Freshness(self.fresh_seconds, account.stale_seconds)
        cached = await self._cache.read(cache_key, account.id, freshness, fetch, PAGES)
        return cached.value
