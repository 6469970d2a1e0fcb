"""Pure values the whole gateway speaks: money, assets, countries, balances.

Nothing here does I/O. Amounts are `Decimal` built from the upstream's raw text and keep
its precision; times are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import Enum
from typing import TYPE_CHECKING, Any

from gateway.registry import PROVIDERS

if TYPE_CHECKING:

    class ProviderKind(Enum):
        """One member per line of `gateway.registry` (`ProviderKind("ourvoice")`)."""

else:
    # Derived from the registry, so adding a provider never edits this module; the
    # members are the kinds in upper case (`OURVOICE`), the GraphQL enum `Provider`.
    ProviderKind = Enum("ProviderKind", {kind.upper(): kind for kind in PROVIDERS}, module=__name__)


class Capability(Enum):
    BALANCE = "BALANCE"
    TRANSACTIONS = "TRANSACTIONS"
    TOP_UP = "TOP_UP"


class AssetKind(Enum):
    CASH = "CASH"
    PREPAID_CREDIT = "PREPAID_CREDIT"
    COLLATERAL = "COLLATERAL"
    COMMISSION = "COMMISSION"


# ISO 4217 minor units for the currencies these providers use (and their neighbours).
# A currency missing here is rejected as unknown rather than guessed.
CURRENCY_EXPONENTS: dict[str, int] = {
    "XOF": 0,
    "XAF": 0,
    "GNF": 0,
    "UGX": 0,
    "RWF": 0,
    "BIF": 0,
    "KMF": 0,
    "DJF": 0,
    "KES": 2,
    "TZS": 2,
    "GHS": 2,
    "EGP": 2,
    "SLE": 2,
    "CDF": 2,
    "NGN": 2,
    "ZAR": 2,
    "ZMW": 2,
    "MWK": 2,
    "MZN": 2,
    "ETB": 2,
    "MAD": 2,
    "GMD": 2,
    "LRD": 2,
    "CVE": 2,
    "SSP": 2,
    "SDG": 2,
    "BWP": 2,
    "NAD": 2,
    "MGA": 2,
    "MRU": 2,
    "DZD": 2,
    "TND": 3,
    "LYD": 3,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
}


def is_known_currency(code: object) -> bool:
    return isinstance(code, str) and code in CURRENCY_EXPONENTS


# The money domain. One amount as a provider or a client writes it: at most 15 digits
# before the point (999 trillion: above any real balance, even in UGX or CDF) and at most 8
# after (Muda's ledger writes 7). Anything else from a provider is a bad response, never a
# million-digit string or a `decimal.Overflow`. A `Money` may hold sums of such amounts
# (totals): up to 24 digits before the point, still at most 8 after.
AMOUNT_INTEGER_DIGITS = 15
MONEY_INTEGER_DIGITS = 24
FRACTION_DIGITS = 8


def fits(amount: Decimal, integer_digits: int = AMOUNT_INTEGER_DIGITS) -> bool:
    """Finite, at most `integer_digits` digits before the point and 8 after (as written)."""
    if not amount.is_finite():
        return False
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    return exponent >= -FRACTION_DIGITS and amount.adjusted() < integer_digits


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not fits(self.amount, MONEY_INTEGER_DIGITS):
            raise ValueError("money outside the money domain")
        if not is_known_currency(self.currency):
            raise ValueError(f"unknown currency {self.currency!r}")

    @classmethod
    def checked(cls, amount: Decimal, currency: str) -> Money:
        """`Money(amount, currency)` for an amount already inside the money domain (every
        upstream amount is, through `JsonReader.money`; so is the difference of two of
        them) in a currency already known (`JsonReader.currency`): the same value, without
        checking it a second time — an adapter builds a few per balance line."""
        money = object.__new__(cls)
        object.__setattr__(money, "amount", amount)
        object.__setattr__(money, "currency", currency)
        return money

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise ValueError("cannot add different currencies")
        with localcontext(EXACT):
            return Money(self.amount + other.amount, self.currency)


# Sums of in-domain amounts are exact here (at most 24 + 8 digits), and no trap can raise.
EXACT = Context(prec=40, rounding=ROUND_HALF_EVEN, traps=[])


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str
    dial_prefix: str | None = None
    currency: str | None = None
    raw_code: str | None = None  # the provider's own code, when it is not ISO (Magma "RDC")


COUNTRIES: dict[str, Country] = {
    c.code: c
    for c in (
        Country("BJ", "Benin", "+229", "XOF"),
        Country("BF", "Burkina Faso", "+226", "XOF"),
        Country("CI", "Côte d'Ivoire", "+225", "XOF"),
        Country("CM", "Cameroon", "+237", "XAF"),
        Country("CD", "DR Congo", "+243", "CDF"),
        Country("EG", "Egypt", "+20", "EGP"),
        Country("GH", "Ghana", "+233", "GHS"),
        Country("GN", "Guinea", "+224", "GNF"),
        Country("KE", "Kenya", "+254", "KES"),
        Country("ML", "Mali", "+223", "XOF"),
        Country("SN", "Senegal", "+221", "XOF"),
        Country("SL", "Sierra Leone", "+232", "SLE"),
        Country("TZ", "Tanzania", "+255", "TZS"),
        Country("TG", "Togo", "+228", "XOF"),
        Country("UG", "Uganda", "+256", "UGX"),
    )
}


@dataclass(frozen=True)
class Asset:
    code: str
    currency: str
    kind: AssetKind
    issuer: str | None = None


class Level(Enum):
    """Where a balance's available amount stands against its thresholds."""

    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True)
class Thresholds:
    """Low-balance levels of one balance, in its currency: CRITICAL when the available
    amount is at or below `critical`, else WARNING at or below `warning`, else OK.

    `hysteresis` (configured, in the same currency): the margin above a threshold the
    available amount must rise past before an alert level clears; None is 1 % of each
    threshold. `currency_mismatch` is set by `with_levels` on the thresholds of a balance
    whose available amount is in another currency: a configuration mistake, no level."""

    warning: Money | None
    critical: Money | None
    hysteresis: Money | None = None
    currency_mismatch: bool = field(default=False, kw_only=True)

    @property
    def currency(self) -> str:
        either = self.warning or self.critical
        assert either is not None  # the configuration holds at least one
        return either.currency

    def level_of(self, available: Money) -> Level | None:
        """None when the amount is in another currency (nothing to compare it with)."""
        if available.currency != self.currency:
            return None
        if self.critical is not None and available.amount <= self.critical.amount:
            return Level.CRITICAL
        if self.warning is not None and available.amount <= self.warning.amount:
            return Level.WARNING
        return Level.OK


@dataclass(frozen=True)
class ThresholdRule:
    """Thresholds for one balance (`balance`, its id) or every balance of one asset
    (`asset`, its code) of an account; a rule for the balance wins over one for its asset."""

    thresholds: Thresholds
    asset: str | None = None
    balance: str | None = None


@dataclass(frozen=True)
class Balance:
    """One balance line. `id` is globally unique and stable: `<account>:<provider key>`.
    `thresholds` and `level` come from the configuration, never from the provider."""

    id: str
    asset: Asset
    total: Money
    available: Money
    pending: Money | None = None
    country: Country | None = None
    updated_at: datetime | None = None
    thresholds: Thresholds | None = None
    level: Level | None = None


def with_levels(
    balances: tuple[Balance, ...], rules: tuple[ThresholdRule, ...]
) -> tuple[Balance, ...]:
    """The balances, each with its thresholds and level where a rule names it."""
    if not rules:
        return balances
    by_balance = {r.balance: r for r in rules if r.balance is not None}
    by_asset = {r.asset: r for r in rules if r.asset is not None}
    leveled = []
    for balance in balances:
        rule = by_balance.get(balance.id) or by_asset.get(balance.asset.code)
        if rule is None:
            leveled.append(balance)
            continue
        thresholds = rule.thresholds
        level = thresholds.level_of(balance.available)
        if level is None:  # another currency: said, never a silently dead alert
            thresholds = replace(thresholds, currency_mismatch=True)
        leveled.append(replace(balance, thresholds=thresholds, level=level))
    return tuple(leveled)


@dataclass(frozen=True)
class AccountInfo:
    """What clients may know about a configured account (never its credentials)."""

    id: str
    provider: ProviderKind
    label: str
    capabilities: tuple[Capability, ...]


@dataclass(frozen=True)
class StaleReason:
    """Why a balance is served stale: the failure that kept the fresh answer away."""

    code: str  # an ErrorCode value
    message: str
    retry_after_seconds: int | None = None


class FreshnessLimitCode(Enum):
    """Why an answer is older than the `maxAgeSeconds` a caller asked for (stable codes)."""

    QUOTA = "QUOTA"  # the provider's call quota allows no fresher read
    STALE = "STALE"  # the provider failed: the last answer stands in (see `stale_reason`)
    JOINED = "JOINED"  # joined a read another replica had started just before


@dataclass(frozen=True)
class FreshnessLimit:
    """Why an answer is older than asked: the code, in words, what was asked and the
    freshest the provider's quota allows (`allowed_max_age_seconds`)."""

    code: FreshnessLimitCode
    message: str
    max_age_seconds: int
    allowed_max_age_seconds: int


@dataclass(frozen=True)
class AccountBalance:
    account: AccountInfo
    balances: tuple[Balance, ...]
    fetched_at: datetime
    stale: bool = False
    stale_reason: StaleReason | None = None  # set exactly when `stale`
    # Set when a caller asked for `maxAgeSeconds` and this answer is older than that.
    freshness_limit: FreshnessLimit | None = None


@dataclass(frozen=True)
class ProviderFailure:
    account: AccountInfo
    code: str  # an ErrorCode value
    message: str
    retryable: bool
    retry_after_seconds: int | None = None


AccountBalanceResult = AccountBalance | ProviderFailure


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    kind: AssetKind
    total: Money
    available: Money


def totals(results: list[AccountBalanceResult]) -> list[CurrencyTotal]:
    """Add like with like only: same currency and same asset kind, answered accounts only.
    Never raises: a sum that would leave the money domain (more than 10^24, which in-domain
    balances cannot reach) leaves that one total out rather than the whole report, as does
    a balance whose available amount is in another currency than its total.

    The amounts are added as plain Decimals (exact here: at most 24 + 8 digits) and each
    sum is checked once, as a `Money`, at the end."""
    sums: dict[tuple[str, AssetKind], list[Decimal]] = {}
    broken: set[tuple[str, AssetKind]] = set()
    with localcontext(EXACT):
        for result in results:
            if not isinstance(result, AccountBalance):
                continue
            for balance in result.balances:
                key = (balance.total.currency, balance.asset.kind)
                if key in broken:
                    continue
                if balance.available.currency != key[0]:
                    broken.add(key)
                    sums.pop(key, None)
                    continue
                pair = sums.get(key)
                if pair is None:
                    sums[key] = [balance.total.amount, balance.available.amount]
                else:
                    pair[0] += balance.total.amount
                    pair[1] += balance.available.amount
    answer = []
    for (currency, kind), (total, available) in sorted(
        sums.items(), key=lambda item: (item[0][0], item[0][1].value)
    ):
        try:
            answer.append(
                CurrencyTotal(currency, kind, Money(total, currency), Money(available, currency))
            )
        except ValueError:
            continue  # outside the money domain: this total alone is left out
    return answer


class TransactionStatus(Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REFUNDED = "REFUNDED"
    UNKNOWN = "UNKNOWN"


class Direction(Enum):
    CREDIT = "CREDIT"
    DEBIT = "DEBIT"


class StatementCoverage(Enum):
    """Which movements of one balance its provider's own statement lists: both directions
    (Muda), only money in (Paymob's available balance: bill payments are not balance
    transactions), only money out (Magma's payouts, Paymob's commission withdrawals), or
    none at all (Our Voice publishes no statement)."""

    BOTH = "BOTH"
    CREDITS = "CREDITS"
    DEBITS = "DEBITS"
    NONE = "NONE"


def map_status(raw: str | None, table: dict[str, TransactionStatus]) -> TransactionStatus:
    """Case-insensitive; anything unmapped is UNKNOWN (the raw value is kept beside it)."""
    return table.get((raw or "").strip().lower(), TransactionStatus.UNKNOWN)


@dataclass(frozen=True)
class Transaction:
    """One movement of money, whatever the provider: who moved what, where, and when.

    `id` is `<account>:<provider id>`, globally unique and stable; `provider_id` is the
    provider's own id, `reference` the client's (the merchant's, the payer's) where the
    provider keeps one. `counterparty` is the other side's account or phone, with its name
    where known; `asset` says what moved (cash, collateral, commission); `channel` how
    (mobile money, airtime, a card, a service)."""

    id: str
    account_id: str
    reference: str | None
    type: str
    status: TransactionStatus
    raw_status: str | None
    amount: Money
    created_at: datetime | None
    direction: Direction | None = None
    fee: Money | None = None
    payment_method: str | None = None
    initiator: str | None = None
    recipient: str | None = None
    provider_id: str | None = None
    counterparty: str | None = None
    counterparty_name: str | None = None
    asset: Asset | None = None
    channel: str | None = None
    country: Country | None = None
    completed_at: datetime | None = None

    @classmethod
    def of(cls, account_id: str, provider_id: str, **fields: Any) -> Transaction:
        """The one way an upstream transaction is named: `<account>:<provider id>`."""
        return cls(
            id=f"{account_id}:{provider_id}",
            account_id=account_id,
            provider_id=provider_id,
            **fields,
        )

    @property
    def position(self) -> tuple[float, str]:
        """Newest first: rows sort by (createdAt, id) descending."""
        return (self.created_at.timestamp() if self.created_at else 0.0, self.id)


@dataclass(frozen=True)
class TransactionFilter:
    created_from: datetime | None = None
    created_to: datetime | None = None
    statuses: frozenset[TransactionStatus] | None = None
    types: frozenset[str] | None = None
    reference: str | None = None
    currencies: frozenset[str] | None = None
    channels: frozenset[str] | None = None
    asset_kinds: frozenset[AssetKind] | None = None

    def matches(self, tx: Transaction) -> bool:
        """The exact filter, applied in the gateway whatever the upstream already did."""
        if self.created_from and (tx.created_at is None or tx.created_at < self.created_from):
            return False
        if self.created_to and (tx.created_at is None or tx.created_at > self.created_to):
            return False
        if self.statuses is not None and tx.status not in self.statuses:
            return False
        if self.types is not None and tx.type not in self.types:
            return False
        if self.currencies is not None and tx.amount.currency not in self.currencies:
            return False
        if self.channels is not None and tx.channel not in self.channels:
            return False
        if self.asset_kinds is not None and (
            tx.asset is None or tx.asset.kind not in self.asset_kinds
        ):
            return False
        return self.reference is None or tx.reference == self.reference

    def canonical(self) -> str:
        parts = [
            self.created_from.isoformat() if self.created_from else "",
            self.created_to.isoformat() if self.created_to else "",
            ",".join(sorted(s.value for s in self.statuses)) if self.statuses is not None else "*",
            ",".join(sorted(self.types)) if self.types is not None else "*",
            self.reference or "",
            ",".join(sorted(self.currencies)) if self.currencies is not None else "*",
            ",".join(sorted(self.channels)) if self.channels is not None else "*",
            ",".join(sorted(k.value for k in self.asset_kinds)) if self.asset_kinds else "*",
        ]
        return "|".join(parts)


@dataclass(frozen=True)
class TransactionPage:
    """One upstream page: its rows newest first, the next page's number (None: last),
    and the upstream's own total count when it gives one."""

    rows: tuple[Transaction, ...]
    next_page: int | None = None
    total: int | None = None
