"""GraphQL output types (contract names from DESIGN.md).

Leaf value types — `Money`, `Country`, `Asset`, `Balance`, `CurrencyTotal` — declare the
schema only: resolvers hand Strawberry the frozen domain values themselves, whose attribute
names are these types' fields (a test holds that), so nothing is copied per request.
`view()` marks that one boundary for the type checker.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import strawberry
from graphql import BooleanValueNode, VariableNode

from gateway import domain
from gateway._compat.strawberry import resolve_info
from gateway.errors import ClientError
from gateway.errors import ErrorCode as DomainErrorCode
from gateway.schema.execution.per_object import PerObject
from gateway.services.history import MAX_POINTS, RUNWAY_DAYS, SqlHistory, downsampled
from gateway.services.history import Runway as RunwayValue
from gateway.services.history import runway as runway_of
from gateway.services.reporting import reporting_totals

if TYPE_CHECKING:
    from gateway.schema.context import Context
    from gateway.schema.transactions import TransactionFilter, TransactionsResult

# The domain enums are the GraphQL enums (registered here, so `domain` stays Strawberry-free).
strawberry.enum(domain.ProviderKind, name="Provider")
strawberry.enum(domain.Capability, name="Capability")
strawberry.enum(domain.AssetKind, name="AssetKind")
strawberry.enum(DomainErrorCode, name="ErrorCode")
strawberry.enum(
    domain.FreshnessLimitCode,
    name="FreshnessLimitCode",
    description="Why an answer is older than the `maxAgeSeconds` asked: QUOTA, the "
    "provider's call quota allows no fresher read; STALE, the provider failed and the last "
    "answer stands in (see `staleReason`); JOINED, it joined a read already under way.",
)
MAX_AGE_LIMIT = 7 * 86_400  # the longest `maxAgeSeconds` (as `stale_seconds` allows)
strawberry.enum(
    domain.Level,
    name="BalanceLevel",
    description="Where a balance's available amount stands against its configured thresholds.",
)

V = TypeVar("V")
MAX_AGE = (
    "`maxAgeSeconds`: an answer read at most that long before it was asked for (0: read "
    "now), through the shared cache and its single flight — but never more often than the "
    "provider's call quota allows: then the freshest answer allowed, with "
    "`freshnessLimit` saying why. Without it, the account's own `fresh_seconds`."
)


def checked_max_age(seconds: int | None) -> int | None:
    """A caller's `maxAgeSeconds`, within 0 and `MAX_AGE_LIMIT` (else its mistake)."""
    if seconds is not None and not 0 <= seconds <= MAX_AGE_LIMIT:
        raise ClientError(f"`maxAgeSeconds` must be from 0 to {MAX_AGE_LIMIT}.")
    return seconds


def view(values: Sequence[Any], as_type: type[V]) -> list[V]:
    """Domain values served as the GraphQL type with the same field names."""
    return cast(list[V], list(values))


@strawberry.type
class Money:
    amount: Decimal
    currency: str


@strawberry.type
class Country:
    code: str = strawberry.field(description="ISO 3166-1 alpha-2.")
    name: str
    dial_prefix: str | None
    currency: str | None
    raw_code: str | None = strawberry.field(
        description="The provider's own code where it is not ISO (Magma's RDC for CD)."
    )


@strawberry.type
class Asset:
    code: str
    currency: str
    kind: domain.AssetKind
    issuer: str | None


@strawberry.type(description="Low-balance levels of one balance, from the configuration.")
class Thresholds:
    warning: Money | None = strawberry.field(
        description="WARNING when the available amount is at or below this."
    )
    critical: Money | None = strawberry.field(
        description="CRITICAL when the available amount is at or below this."
    )
    hysteresis: Money | None = strawberry.field(
        description="The margin above a threshold the available amount must rise past "
        "before an alert clears; null: 1 % of each threshold."
    )
    currency_mismatch: bool = strawberry.field(
        description="True when this balance is in another currency than its thresholds: "
        "a configuration mistake — no level, no alert."
    )


@strawberry.type
class Balance:
    id: strawberry.ID
    asset: Asset
    country: Country | None
    total: Money
    available: Money
    pending: Money | None
    updated_at: datetime | None
    level: domain.Level | None = strawberry.field(
        description="The available amount against `thresholds`: CRITICAL at or below "
        "critical, else WARNING at or below warning, else OK. Null without thresholds, and "
        "when this balance is in another currency than they are (then "
        "`thresholds.currencyMismatch` is true: a configuration mistake, no alert)."
    )
    thresholds: Thresholds | None = strawberry.field(
        description="This balance's thresholds ([[accounts.ID.thresholds]]), if any — shown "
        "even when they cannot apply (`currencyMismatch`)."
    )

    @strawberry.field(
        description="This balance over time, as the gateway read it fresh from the provider "
        "(the last read of each `[history] every_seconds` in which it was read): the last "
        "point of each `every` seconds from `since` (default: 7 days before `until`) to "
        "`until` (default: now), at most 1000 points. A top-up shows as a rise. Empty "
        "when `[history]` is off."
    )
    async def history(
        self,
        info: strawberry.Info[Context, None],
        since: datetime | None = None,
        until: datetime | None = None,
        every: int = 3600,
    ) -> list[BalancePoint]:
        store = info.context.balance_service.history
        if store is None:
            return []
        end = until.timestamp() if until is not None else store.now()
        start = since.timestamp() if since is not None else end - 7 * 86400
        if every < 60 or start >= end or (end - start) / every > MAX_POINTS:
            raise ClientError(
                f"`since` must be before `until`, and `every` at least 60 seconds and at "
                f"least 1/{MAX_POINTS} of the range."
            )
        await made_up_past(self, store, end)
        points = await store.points(str(self.id), start, end)
        return view(downsampled(points, start, every), BalancePoint)

    @strawberry.field(
        description="When this balance runs out at its recent burn rate: the falls of its "
        "available amount over the last 7 days up to now (between history points, and to "
        "the amount now; rises — top-ups — left out), divided by the time from the first "
        "point in that window to now, projected from the available amount now. Null when "
        "nothing fell, that time is under an hour, it would last more than ten years, or "
        "`[history]` is off."
    )
    async def runway(self, info: strawberry.Info[Context, None]) -> Runway | None:
        return cast(Runway | None, await runway_for(cast(domain.Balance, self), info.context))


async def runway_for(balance: domain.Balance, context: Context) -> RunwayValue | None:
    """`Balance.runway` of one balance (`BalanceReport.balances` orders by it too)."""
    store = context.balance_service.history
    if store is None:
        return None
    now = store.now()
    await made_up_past(cast(Balance, balance), store, now)
    points = await store.window(str(balance.id), now - RUNWAY_DAYS * 86400, now)
    return runway_of(points, balance, now)


async def made_up_past(balance: Balance, store: SqlHistory, now: float) -> None:
    """The demo (`[history] demo_past_days`): its made-up past, there from the first look."""
    if store.demo_past_days:
        account = str(balance.id).split(":", 1)[0]
        await store.make_up_past(account, (cast(domain.Balance, balance),), now)


@strawberry.type(description="A balance at one moment of its history.")
class BalancePoint:
    at: datetime
    total: Money
    available: Money
    synthetic: bool = strawberry.field(
        description="True for the demo's made-up past (`[history] demo_past_days`, "
        "development profile only): never a value the provider said."
    )


@strawberry.type(description="When a balance runs out at its recent burn rate.")
class Runway:
    burn_per_day: Money = strawberry.field(
        description="What the available amount fell by per day (rises left out)."
    )
    zero_at: datetime = strawberry.field(description="When it reaches zero at that rate.")
    critical_at: datetime | None = strawberry.field(
        description="When it reaches its critical threshold (now, if it is at or below it)."
    )
    since: datetime = strawberry.field(description="The first point the rate is based on.")


@strawberry.type
class Account:
    id: strawberry.ID
    provider: domain.ProviderKind
    label: str
    capabilities: list[domain.Capability]

    @classmethod
    def of(cls, info: domain.AccountInfo) -> Account:
        return cls(
            id=strawberry.ID(info.id),
            provider=info.provider,
            label=info.label,
            capabilities=list(info.capabilities),
        )

    @strawberry.field(description=f"This account's balances. {MAX_AGE}")
    async def balance(
        self, info: strawberry.Info[Context, None], max_age_seconds: int | None = None
    ) -> AccountBalanceResult:
        info.context.principal.require("balances:read")
        (result,) = await info.context.balances([str(self.id)], checked_max_age(max_age_seconds))
        return result_of(result)

    @strawberry.field(description="This account's history, newest first.")
    async def transactions(
        self,
        info: strawberry.Info[Context, None],
        filter: Annotated[TransactionFilter, strawberry.lazy("gateway.schema.transactions")]
        | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Annotated[TransactionsResult, strawberry.lazy("gateway.schema.transactions")]:
        return await info.context.account_transactions(str(self.id), filter, first, after)


@strawberry.type(
    description="Why a balance is served stale: the failure that kept a fresh answer away."
)
class StaleReason:
    code: DomainErrorCode
    message: str
    retry_after_seconds: int | None


@strawberry.type
class AccountBalance:
    account: Account
    balances: list[Balance]
    fetched_at: datetime
    stale: bool
    stale_reason: StaleReason | None = strawberry.field(
        description="Set exactly when `stale`: the provider's failure (code and message) "
        "that this cached answer stands in for."
    )
    freshness_limit: FreshnessLimit | None = strawberry.field(
        default=None,
        description="Set when `maxAgeSeconds` was asked and this answer is older than that "
        "was when asked: why (the quota, a failure, a read joined), and the freshest the "
        "quota allows.",
    )


@strawberry.type(description="Why an answer is older than the `maxAgeSeconds` asked.")
class FreshnessLimit:
    code: domain.FreshnessLimitCode
    message: str
    max_age_seconds: int = strawberry.field(description="What was asked.")
    allowed_max_age_seconds: int = strawberry.field(
        description="The freshest the provider's call quota allows: one read every so many "
        "whole seconds (from `calls_per_minute` and `calls_per_day`, rounded up)."
    )


@strawberry.type
class ProviderFailure:
    account: Account
    code: DomainErrorCode
    message: str
    retryable: bool
    retry_after_seconds: int | None


AccountBalanceResult = Annotated[
    AccountBalance | ProviderFailure, strawberry.union("AccountBalanceResult")
]


# The schema's view of each domain result still in use, made once: shared by the requests
# that waited on its read, and with it their rendering (`execution/per_object.py`).
_VIEWS: PerObject[AccountBalance | ProviderFailure] = PerObject()


def result_of(result: domain.AccountBalanceResult) -> AccountBalance | ProviderFailure:
    return _VIEWS.get(result, None, lambda: _view_of(result))


def _view_of(result: domain.AccountBalanceResult) -> AccountBalance | ProviderFailure:
    if isinstance(result, domain.AccountBalance):
        return AccountBalance(
            account=Account.of(result.account),
            balances=view(result.balances, Balance),
            fetched_at=result.fetched_at,
            stale=result.stale,
            stale_reason=None
            if result.stale_reason is None
            else StaleReason(
                code=DomainErrorCode(result.stale_reason.code),
                message=result.stale_reason.message,
                retry_after_seconds=result.stale_reason.retry_after_seconds,
            ),
            freshness_limit=cast(FreshnessLimit | None, result.freshness_limit),
        )
    return ProviderFailure(
        account=Account.of(result.account),
        code=DomainErrorCode(result.code),
        message=result.message,
        retryable=result.retryable,
        retry_after_seconds=result.retry_after_seconds,
    )


@strawberry.type
class CurrencyTotal:
    currency: str
    kind: domain.AssetKind
    total: Money
    available: Money


@strawberry.type(description="One currency's exact total, converted to the reporting currency.")
class ConvertedTotal:
    original: CurrencyTotal = strawberry.field(description="The exact total, in its currency.")
    total: Money = strawberry.field(description="In the reporting currency, rounded once.")
    available: Money
    rate: Decimal = strawberry.field(
        description="Units of the original currency per one unit of the reporting currency."
    )
    approximate: bool = strawberry.field(
        description="False for the same currency and between EUR, XOF and XAF (a fixed "
        "parity: 1 EUR = 655.957 XOF = 655.957 XAF); true for a market rate."
    )
    as_of: date | None = strawberry.field(description="The market rate's date; null if exact.")
    source: str = strawberry.field(
        description='"same currency", "fixed parity", or where the rate came from '
        '("configuration", or the rates provider).'
    )


@strawberry.type(
    description="One asset kind's total in the reporting currency (kinds are never mixed)."
)
class ReportingTotal:
    kind: domain.AssetKind
    total: Money = strawberry.field(
        description="The sum of `converted` totals (each rounded first, so they add up)."
    )
    available: Money
    approximate: bool = strawberry.field(description="Any part converted at a market rate.")
    rounding: str = strawberry.field(
        description='"half-even" (banker\'s) or "half-up", to the reporting currency\'s minor '
        "unit ([reporting] rounding)."
    )
    converted: list[ConvertedTotal]
    unconverted: list[CurrencyTotal] = strawberry.field(
        description="Totals of a currency with no rate: listed, not added to `total`."
    )


@strawberry.enum(description="How `BalanceReport.balances` are ordered.")
class BalanceOrder(Enum):
    RUNWAY = strawberry.enum_value(
        "RUNWAY",
        description="Soonest to run out first (`Balance.runway.zeroAt`); those without a "
        "runway last, in the order of `results`.",
    )


# "At or below" a level: that level or a worse one.
LEVEL_RANK = {domain.Level.OK: 0, domain.Level.WARNING: 1, domain.Level.CRITICAL: 2}


@strawberry.type(description="One balance with its account (`BalanceReport.balances`).")
class BalanceLine:
    account: Account
    balance: Balance
    stale: bool = strawberry.field(description="As the account's `AccountBalance.stale`.")


@strawberry.type
class BalanceReport:
    account_ids: strawberry.Private[list[str]]
    all_found: strawberry.Private[bool]  # no requested id was unknown
    max_age: strawberry.Private[int | None] = None  # `maxAgeSeconds`, as asked
    refresh: strawberry.Private[bool] = False  # `refreshBalances`' report

    @strawberry.field(
        description="One result per account, in the order asked — or, under `@stream`, "
        "each as soon as it is known (cached ones at once, then each provider as it "
        "answers), in that order: every result names its account."
    )
    async def results(self, info: strawberry.Info[Context, None]) -> list[AccountBalanceResult]:
        # Declared a list (`strawberry.Streamable` would rename the union); graphql-core
        # takes a list or an async iterator alike, and streams either under `@stream`.
        if streamed(info):
            arriving: Any = self._arriving(info.context)
            return cast(list[AccountBalanceResult], arriving)
        return [
            result_of(r)
            for r in await info.context.balances(self.account_ids, self.max_age, self.refresh)
        ]

    async def _all(self, context: Context) -> list[domain.AccountBalanceResult]:
        return await context.balances(self.account_ids, self.max_age, self.refresh)

    async def _arriving(self, context: Context) -> AsyncGenerator[AccountBalanceResult, None]:
        async for result in context.arriving(self.account_ids, self.max_age, self.refresh):
            yield result_of(result)

    @strawberry.field(
        description="Per currency and kind, over the accounts that answered: known once "
        "every account has (with `@stream` on `results`, `@defer` it to get it last)."
    )
    async def totals(self, info: strawberry.Info[Context, None]) -> list[CurrencyTotal]:
        results = await self._all(info.context)
        return view(domain.totals(results), CurrencyTotal)

    @strawberry.field(
        description="Beside `totals`: per asset kind, the same totals in one reporting "
        "currency (default: [reporting] currency; none: an empty list). XOF and XAF convert "
        "to EUR exactly at their fixed parity; every other currency at a configured rate, "
        "marked approximate with its rate and as-of; one without a rate is `unconverted`."
    )
    async def reporting_totals(
        self, info: strawberry.Info[Context, None], reporting_currency: str | None = None
    ) -> list[ReportingTotal]:
        reporting = info.context.balance_service.reporting
        currency = reporting.currency if reporting_currency is None else reporting_currency
        if currency is None:
            return []
        if not domain.is_known_currency(currency):
            raise ClientError(f"Unknown reporting currency {currency!r}.")
        results = await self._all(info.context)
        table = await info.context.balance_service.rates.table()
        found = reporting_totals(domain.totals(results), currency, table, reporting.rounding)
        return cast(list[ReportingTotal], found)

    @strawberry.field(
        name="balances",
        description="Every balance of the accounts that answered, each with its account: "
        "in the order of `results`, or as `orderBy` says; with `atOrBelow`, only those at "
        "that level or a worse one (WARNING: WARNING and CRITICAL), a balance without a "
        "level left out.",
    )
    async def lines(
        self,
        info: strawberry.Info[Context, None],
        at_or_below: domain.Level | None = None,
        order_by: BalanceOrder | None = None,
    ) -> list[BalanceLine]:
        results = await info.context.balances(self.account_ids)
        lines = [
            BalanceLine(account=Account.of(r.account), balance=cast(Balance, b), stale=r.stale)
            for r in results
            if isinstance(r, domain.AccountBalance)
            for b in r.balances
        ]
        if at_or_below is not None:
            least = LEVEL_RANK[at_or_below]
            lines = [
                line
                for line in lines
                if line.balance.level is not None and LEVEL_RANK[line.balance.level] >= least
            ]
        if order_by is BalanceOrder.RUNWAY:
            runways = await asyncio.gather(
                *(runway_for(cast(domain.Balance, line.balance), info.context) for line in lines)
            )
            soonest = {
                id(line): math.inf if r is None else r.zero_at.timestamp()
                for line, r in zip(lines, runways, strict=True)
            }
            lines.sort(key=lambda line: soonest[id(line)])
        return lines

    @strawberry.field(
        description="True when every requested account answered (stale answers included)."
    )
    async def complete(self, info: strawberry.Info[Context, None]) -> bool:
        results = await self._all(info.context)
        return self.all_found and all(isinstance(r, domain.AccountBalance) for r in results)


def streamed(info: strawberry.Info[Context, None]) -> bool:
    """Whether this field is asked `@stream` (and its `if` does not turn that off)."""
    node = resolve_info(info).field_nodes[0]
    for directive in node.directives or ():
        if directive.name.value == "stream":
            on = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
            if isinstance(on, VariableNode):
                return info.variable_values.get(on.name.value) is not False
            return not isinstance(on, BooleanValueNode) or on.value
    return False
