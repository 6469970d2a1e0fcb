"""Top-up exactly once: validate, record, send at most once, record the outcome.

Per (client, idempotency key): the record is written as in-flight *before* the POST; the
same input again replays the recorded outcome (`replayed`), another input under the same
key is IDEMPOTENCY_KEY_REUSED; concurrent requests wait up to `wait_seconds` for the
owner's outcome, else get pending. Outcomes: success → succeeded; 400/404/422 → rejected
(recorded); 401/403/429 or provably not sent → rejected, retryable, key reusable (record
removed); anything else — timeouts, resets, 5xx, odd 4xx, a 2xx that does not parse, and
httpx-aiohttp's ConnectTimeout, which can follow a written request — is pending, recorded,
never re-sent. After a success or a pending outcome the account's balance is invalidated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gateway.clock import Clock
from gateway.config.accounts import AccountConfig
from gateway.domain import (
    CURRENCY_EXPONENTS,
    Asset,
    AssetKind,
    Capability,
    Direction,
    Money,
    Transaction,
    TransactionFilter,
    TransactionPage,
)
from gateway.domain import TransactionStatus as Status
from gateway.errors import ErrorCode, UpstreamError
from gateway.observability import log_context
from gateway.observability.metrics import Metrics
from gateway.providers.protocols import TopUpProvider
from gateway.services.journal import Journal, Record

log = logging.getLogger("gateway.services.topups")
REJECTED_STATUSES = (400, 404, 422)
DEFINITE_REFUSALS = (ErrorCode.UPSTREAM_UNAUTHORIZED, ErrorCode.UPSTREAM_RATE_LIMITED)


@dataclass(frozen=True)
class TopUpRequest:
    account_id: str
    amount: Decimal
    currency: str | None
    payment_method: str
    payment_reference: str
    idempotency_key: str


@dataclass(frozen=True)
class Succeeded:
    transaction: Transaction
    replayed: bool


@dataclass(frozen=True)
class Pending:
    idempotency_key: str
    message: str
    replayed: bool


@dataclass(frozen=True)
class Rejected:
    code: ErrorCode
    message: str
    retryable: bool
    replayed: bool = False


Outcome = Succeeded | Pending | Rejected
PENDING_MESSAGE = (
    "The provider's answer is unknown; the top-up is recorded as pending and will "
    "not be sent again. An operator resolves it."
)


def is_printable(text: str, low: int, high: int) -> bool:
    """`low`–`high` printable characters, none of them surrounding whitespace: what reaches
    the provider is exactly what the client sent, so nothing is trimmed on its behalf."""
    return low <= len(text) <= high and text.isprintable() and text == text.strip()


def validate(request: TopUpRequest, account: AccountConfig) -> Rejected | None:
    def no(message: str) -> Rejected:
        return Rejected(ErrorCode.VALIDATION, message, retryable=False)

    amount, currency = request.amount, account.currency
    if currency is None:  # the configuration gives every top-up account its currency
        return Rejected(ErrorCode.UNSUPPORTED, "This account has no top-up currency.", False)
    if not amount.is_finite() or amount <= 0:
        return no("`amount` must be above zero.")
    if amount > account.topup_max_amount:
        return no(f"`amount` may be at most {account.topup_max_amount}.")
    exponent = CURRENCY_EXPONENTS[currency]
    if amount != amount.quantize(Decimal(1).scaleb(-exponent)):
        return no(f"{currency} has {exponent} decimal places; `amount` has more.")
    if request.currency is not None and request.currency != currency:
        return no(f"This account tops up in {currency}.")
    for field, value, high in (
        ("paymentMethod", request.payment_method, 100),
        ("paymentReference", request.payment_reference, 100),
        ("idempotencyKey", request.idempotency_key, 255),
    ):
        if not is_printable(value, 1, high):
            return no(f"`{field}` must be 1–{high} printable characters, unpadded.")
    return None


def fingerprint(request: TopUpRequest, currency: str) -> str:
    """The request's identity under its idempotency key (the one meaning of "fingerprint"
    in the gateway): a replay must carry the same one, or it is a key reused."""
    normal = [
        request.account_id,
        format(request.amount.normalize(), "f"),
        currency,
        request.payment_method.strip(),
        request.payment_reference.strip(),
    ]
    return hashlib.sha256(json.dumps(normal).encode()).hexdigest()


def transaction_json(tx: Transaction) -> dict[str, Any]:
    return {
        "id": tx.id,
        "account": tx.account_id,
        "reference": tx.reference,
        "provider_id": tx.provider_id,
        "status": tx.status.value,
        "raw_status": tx.raw_status,
        "amount": str(tx.amount.amount),
        "currency": tx.amount.currency,
        "created_at": tx.created_at.timestamp() if tx.created_at else None,
        "payment_method": tx.payment_method,
    }


JOURNAL_STATUS = {"succeeded": Status.SUCCEEDED, "rejected": Status.FAILED, "failed": Status.FAILED}


def journal_entry(record: Record) -> Transaction:
    """A recorded top-up as a transaction of the account's journal."""
    outcome = record.outcome or {}
    tx = outcome.get("transaction") or {}
    state = record.state
    status = JOURNAL_STATUS.get(state, Status.PENDING)
    created = tx.get("created_at") or record.created_at
    return Transaction(
        id=f"{record.account}:{record.key}" if not tx else tx["id"],
        account_id=record.account,
        reference=tx.get("reference") or record.request["payment_reference"],
        type="top_up",
        status=status,
        raw_status=state if not tx.get("raw_status") or state != "succeeded" else tx["raw_status"],
        amount=Money(Decimal(record.request["amount"]), record.request["currency"]),
        created_at=datetime.fromtimestamp(created, UTC),
        direction=Direction.CREDIT,
        payment_method=record.request["payment_method"],
        initiator=record.client,
        provider_id=tx.get("provider_id"),
        asset=Asset(
            record.request["currency"], record.request["currency"], AssetKind.PREPAID_CREDIT
        ),
    )


class TopUpService:
    def __init__(
        self,
        accounts: Mapping[str, AccountConfig],
        providers: Mapping[str, TopUpProvider],
        store: Journal,
        invalidate: Callable[[str], Awaitable[None]],
        clock: Clock,
        wait_seconds: float,
        lease_seconds: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._accounts = accounts
        self._providers = providers
        self.journal = store
        self._invalidate = invalidate
        self._clock = clock
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds

    def can_top_up(self, account_id: str) -> bool:
        account = self._accounts.get(account_id)
        return account is not None and Capability.TOP_UP in account.capabilities

    async def top_up(self, client: str, request: TopUpRequest) -> Outcome:
        log_context.stats().accounts += 1
        outcome = await self._top_up(client, request)
        kind = type(outcome).__name__.lower()  # succeeded | pending | rejected
        self._metrics.topups.labels(kind, str(outcome.replayed).lower()).inc()
        return outcome

    async def _top_up(self, client: str, request: TopUpRequest) -> Outcome:
        account = self._accounts[request.account_id]
        invalid = validate(request, account)
        if invalid is not None:
            return invalid
        currency = account.currency or ""  # set: `validate` refused an account without one
        owner = secrets.token_hex(12)
        now = self._clock()
        record = Record(
            client=client,
            key=request.idempotency_key,
            fingerprint=fingerprint(request, currency),
            account=account.id,
            request={
                "amount": format(request.amount, "f"),
                "currency": currency,
                "payment_method": request.payment_method.strip(),
                "payment_reference": request.payment_reference.strip(),
            },
            state="in_flight",
            owner=owner,
            lease_until=now + self.lease_seconds,
            outcome=None,
            created_at=now,
        )
        try:
            existing = await self.journal.begin(record)
        except Exception:
            log.exception("top-up %s: the journal refused the record", request.idempotency_key)
            return Rejected(
                ErrorCode.INTERNAL,
                "The top-up journal is unavailable; nothing was sent. Retry with the same key.",
                retryable=True,
            )
        if existing is not None:
            return await self._replay(existing, record)
        return await self._send(client, request, record, owner)

    async def _replay(self, existing: Record, mine: Record) -> Outcome:
        if existing.fingerprint != mine.fingerprint:
            return Rejected(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This idempotency key was used for a different top-up.",
                False,
            )
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait_seconds
        current: Record | None = existing
        while current is not None and current.state == "in_flight" and loop.time() < give_up:
            if current.lease_until is not None and current.lease_until < self._clock():
                break  # its owner is gone: the outcome is unknown
            await asyncio.sleep(0.02)
            current = await self.journal.get(existing.client, existing.key)
        if current is None:  # the owner gave the key back (nothing was sent): try again
            return Rejected(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                "The earlier attempt was not sent; retry.",
                retryable=True,
            )
        return answer_of(current, replayed=True)

    async def _send(
        self, client: str, request: TopUpRequest, record: Record, owner: str
    ) -> Outcome:
        provider = self._providers[request.account_id]
        try:
            tx = await provider.top_up(
                request.amount,
                record.request["payment_method"],
                record.request["payment_reference"],
            )
        except UpstreamError as exc:
            return await self._failed(client, request, owner, exc)
        except Exception:
            log.exception("top-up %s: unexpected error after sending", request.idempotency_key)
            return await self._pending(client, request, owner)
        await self._invalidate(request.account_id)
        if not await self._record(
            client, request, owner, "succeeded", {"transaction": transaction_json(tx)}
        ):
            # Credited, but not written down: say nothing we could not repeat on a replay.
            return Pending(request.idempotency_key, PENDING_MESSAGE, replayed=False)
        return Succeeded(tx, replayed=False)

    async def _record(
        self, client: str, request: TopUpRequest, owner: str, state: str, outcome: dict[str, Any]
    ) -> bool:
        """Write the outcome; a journal failure is logged and leaves the record in flight
        (pending for everyone once the lease runs out), never resends."""
        try:
            await self.journal.finish(client, request.idempotency_key, owner, state, outcome)
        except Exception:
            log.exception("top-up %s: could not record %s", request.idempotency_key, state)
            return False
        return True

    async def _failed(
        self, client: str, request: TopUpRequest, owner: str, exc: UpstreamError
    ) -> Outcome:
        status = exc.context.status
        if exc.not_sent or exc.code in DEFINITE_REFUSALS:
            try:
                await self.journal.release(client, request.idempotency_key, owner)
            except Exception:  # the key stays taken (pending later): safe, if unhelpful
                log.exception("top-up %s: could not free the key", request.idempotency_key)
            return Rejected(exc.code, exc.message, retryable=True)
        if status in REJECTED_STATUSES and exc.code is ErrorCode.UPSTREAM_REJECTED:
            outcome = {"code": exc.code.value, "message": exc.message}
            await self._record(client, request, owner, "rejected", outcome)
            return Rejected(exc.code, exc.message, retryable=False)
        log.warning(
            "top-up %s: outcome unknown (%s: %s)",
            request.idempotency_key,
            exc.code.value,
            exc.detail or exc.message,
        )
        return await self._pending(client, request, owner)

    async def _pending(self, client: str, request: TopUpRequest, owner: str) -> Outcome:
        await self._record(client, request, owner, "pending", {})
        await self._invalidate(request.account_id)
        return Pending(request.idempotency_key, PENDING_MESSAGE, replayed=False)


def answer_of(record: Record, replayed: bool) -> Outcome:
    """What a stored record answers."""
    if record.state == "succeeded":
        return Succeeded(journal_entry(record), replayed)
    if record.state == "rejected":
        outcome = record.outcome or {}
        return Rejected(
            ErrorCode(outcome.get("code", "UPSTREAM_REJECTED")),
            outcome.get("message", "The provider rejected the top-up."),
            False,
            replayed,
        )
    if record.state == "failed":
        return Rejected(
            ErrorCode.UPSTREAM_REJECTED,
            f"Resolved as failed by {record.resolved_by}.",
            False,
            replayed,
        )
    return Pending(record.key, PENDING_MESSAGE, replayed)


class JournalTransactions:
    """The account's recorded top-ups as its transaction history (Our Voice has none of its
    own). Read from the durable store on every request: never cached."""

    cacheable = False

    def __init__(self, store: Journal, account_id: str) -> None:
        self.journal = store
        self.account_id = account_id

    async def transaction_page(self, flt: TransactionFilter, page: int) -> TransactionPage:
        rows = [journal_entry(r) for r in await self.journal.records(account=self.account_id)]
        ordered = tuple(sorted(rows, key=lambda t: t.position, reverse=True))
        return TransactionPage(ordered, None, len(ordered))
