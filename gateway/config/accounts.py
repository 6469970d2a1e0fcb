"""A configured provider account: `AccountConfig`, as adapters see it, and
`parse_account`, which reads one `[accounts.ID]` table into it — credentials, base URL,
currency, country, time zone, timings, quotas, top-up limits and its low-balance
thresholds (`[[accounts.ID.thresholds]]`) — checked against its provider kind's rules.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config.checker import Checker
from gateway.config.provider_rules import ProviderLookup, ProviderRules
from gateway.config.secret import Secret
from gateway.domain import (
    COUNTRIES,
    AccountInfo,
    Capability,
    Money,
    ProviderKind,
    ThresholdRule,
    Thresholds,
    fits,
    is_known_currency,
)

ACCOUNT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ACCOUNT_KEYS = {
    "provider",
    "base_url",
    "label",
    "currency",
    "country",
    "timezone",
    "reporting_timezone",
    "timeout_seconds",
    "fresh_seconds",
    "stale_seconds",
    "calls_per_minute",
    "calls_per_day",
    "topup_status",
    "topup_max_amount",
    "history_days",
    "history_window_days",
    "thresholds",
}
CREDENTIAL_KEYS = {"api_key", "private_key", "secret_key", "public_key"}
THRESHOLD_KEYS = {"asset", "balance", "currency", "warning", "critical", "hysteresis"}
AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")
# `base_url = "simulator:/magma"` (development only): the built-in simulator, wherever it
# listens (`parse_account`'s `simulator`).
SIMULATOR_SCHEME = "simulator:"


@dataclass(frozen=True)
class AccountConfig:
    id: str
    provider: ProviderKind
    base_url: str
    label: str
    capabilities: tuple[Capability, ...]
    credentials: dict[str, Secret] = field(default_factory=dict)
    currency: str | None = None
    country: str | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # The days of the daily close (`services/daily_close.py`): the provider's documented
    # zone where it has one (Paymob: Africa/Cairo), else UTC.
    reporting_timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    timeout_seconds: float = 10.0
    fresh_seconds: float = 15.0
    stale_seconds: float = 300.0
    calls_per_minute: int | None = None
    calls_per_day: int | None = None
    topup_status: str = "completed"  # Our Voice: the collected payment's status
    topup_max_amount: Decimal = Decimal("10000000")
    # Histories read by date range (Magma): the range asked for when the client gives none
    # (the provider would answer today only), and the longest range asked for at once.
    history_days: int = 7
    history_window_days: int = 31
    thresholds: tuple[ThresholdRule, ...] = ()  # low-balance levels ([[…thresholds]])

    @cached_property
    def info(self) -> AccountInfo:
        """Built once: asked for on every request, for every account."""
        return AccountInfo(self.id, self.provider, self.label, self.capabilities)

    @cached_property
    def credentials_digest(self) -> str:
        """Names this connection (provider, URL, credentials) in cache keys without
        revealing any secret: two accounts differ here whenever their data may differ.
        Built once (settings are immutable); every request's cache keys use it."""
        digest = hashlib.sha256(f"{self.provider.value}\n{self.base_url}".encode())
        for name in sorted(self.credentials):
            digest.update(f"\n{name}={self.credentials[name].digest()}".encode())
        return digest.hexdigest()[:20]

    @cached_property
    def quota_interval_seconds(self) -> int:
        """The shortest interval between two balance reads its call quota allows, in whole
        seconds rounded up — one read per `60 / calls_per_minute` and per
        `86,400 / calls_per_day` seconds, the longer (0: no quota). No caller's
        `maxAgeSeconds` reads more often."""
        intervals = [0]
        if self.calls_per_minute:
            intervals.append(math.ceil(60 / self.calls_per_minute))
        if self.calls_per_day:
            intervals.append(math.ceil(86_400 / self.calls_per_day))
        return max(intervals)

    def secret(self, name: str) -> str:
        return self.credentials[name].reveal()

    def optional_secret(self, name: str) -> str | None:
        secret = self.credentials.get(name)
        return secret.reveal() if secret else None


def parse_account(
    check: Checker,
    account_id: str,
    raw: Any,
    *,
    providers: ProviderLookup,
    development: bool,
    fresh_seconds: float,
    stale_seconds: float,
    simulator: str,
) -> AccountConfig | None:
    """The account of table `[accounts.ID]` (`raw`), or None with its problems added to
    `check`. `fresh_seconds`/`stale_seconds` are the `[cache]` ones (the defaults here),
    `simulator` is where a `simulator:` base URL points (development only)."""
    where = f"accounts.{account_id}"
    if not ACCOUNT_ID.match(account_id):
        check.add(
            where,
            "account ids are lowercase letters, digits, - and _",
            "rename the table, e.g. [accounts.ourvoice-sn]",
        )
    if not isinstance(raw, dict):
        check.add(where, "must be a table", f"write it as [{where}]")
        return None
    start = len(check.problems)
    kind_name = check.string(raw, "provider", where)
    try:
        rules = providers(ProviderKind(kind_name).value)
    except (ValueError, KeyError):
        names = ", ".join(k.value for k in ProviderKind)
        check.add(f"{where}.provider", f"unknown provider {kind_name!r}", f"use one of: {names}")
        check.unknown(raw, ACCOUNT_KEYS | CREDENTIAL_KEYS, where)
        return None
    allowed_credentials = rules.required_credentials | rules.optional_credentials
    check.unknown(raw, ACCOUNT_KEYS | allowed_credentials, where)
    credentials: dict[str, Secret] = {}
    for name in sorted(allowed_credentials):
        if name in raw:
            secret = check.secret(raw[name], f"{where}.{name}", development)
            if secret is not None:
                credentials[name] = secret
        elif name in rules.required_credentials:
            check.add(f"{where}.{name}", f"{kind_name} needs {name}", f'add {name} = "env:NAME"')
    base_url = _base_url(check, raw, where, development, simulator)
    currency = _currency(check, raw, where, rules.default_currency, kind_name)
    if currency is None and Capability.TOP_UP in rules.capabilities:
        check.add(
            f"{where}.currency", f"{kind_name} tops up in one currency", 'e.g. currency = "XOF"'
        )
    country = check.string(raw, "country", where) or None
    if country is not None and country not in COUNTRIES:
        check.add(
            f"{where}.country",
            f"unknown country {country!r}",
            "use an ISO 3166 alpha-2 code, e.g. SN",
        )
    zone = _zone(check, raw, "timezone", where, "UTC")
    reporting = _zone(check, raw, "reporting_timezone", where, rules.reporting_timezone)
    timeout = check.number(raw, "timeout_seconds", where, 10.0, 120)
    fresh = check.number(raw, "fresh_seconds", where, fresh_seconds, 86_400, zero=True)
    stale = check.number(raw, "stale_seconds", where, stale_seconds, 7 * 86_400, zero=True)
    per_minute = check.whole(raw, "calls_per_minute", where, rules.calls_per_minute, 1_000_000)
    per_day = check.whole(raw, "calls_per_day", where, rules.calls_per_day, 100_000_000)
    topup_status, topup_max = _topup(check, raw, where, Capability.TOP_UP in rules.capabilities)
    thresholds = _thresholds(check, raw.get("thresholds", []), where, account_id, currency, rules)
    if len(check.problems) > start:
        return None
    return AccountConfig(
        id=account_id,
        provider=rules.kind,
        base_url=base_url,
        label=check.string(raw, "label", where) or account_id,
        capabilities=rules.capabilities,
        credentials=credentials,
        currency=currency,
        country=country,
        timezone=zone,
        reporting_timezone=reporting,
        timeout_seconds=timeout,
        fresh_seconds=fresh,
        stale_seconds=stale,
        calls_per_minute=per_minute,
        calls_per_day=per_day,
        topup_status=topup_status,
        topup_max_amount=topup_max,
        history_days=check.whole(raw, "history_days", where, 7, 366) or 7,
        history_window_days=check.whole(raw, "history_window_days", where, 31, 366) or 31,
        thresholds=thresholds,
    )


def _base_url(
    check: Checker, raw: Mapping[str, Any], where: str, development: bool, simulator: str
) -> str:
    """An http(s) URL; `simulator:/PATH` (development only) is PATH on the simulator."""
    base_url = check.string(raw, "base_url", where)
    if base_url.startswith(SIMULATOR_SCHEME):
        if not development:
            check.add(
                f"{where}.base_url",
                "the built-in simulator is for the development profile only",
                "point base_url at the provider",
            )
        base_url = simulator + "/" + base_url[len(SIMULATOR_SCHEME) :].lstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        check.add(
            f"{where}.base_url",
            "must be an http(s) URL without a query",
            'e.g. base_url = "https://api.example.com"',
        )
    return base_url


def _zone(check: Checker, raw: Mapping[str, Any], key: str, where: str, default: str) -> ZoneInfo:
    name = check.string(raw, key, where, default)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        check.add(f"{where}.{key}", f"unknown time zone {name!r}", 'e.g. "Africa/Dakar"')
        return ZoneInfo("UTC")


def _thresholds(
    check: Checker,
    raw: Any,
    where: str,
    account_id: str,
    account_currency: str | None,
    provider: ProviderRules,
) -> tuple[ThresholdRule, ...]:
    """`[[accounts.ID.thresholds]]`: each names one `asset` (its code) or one `balance` (its
    id, `<account>:<key>`), its `currency`, a `warning` and/or `critical` amount, and an
    optional `hysteresis` (the margin above a threshold before an alert clears)."""
    example = 'e.g. { asset = "XOF", currency = "XOF", warning = "100000", critical = "20000" }'
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        check.add(f"{where}.thresholds", "must be a list of tables", example)
        return ()
    rules: list[ThresholdRule] = []
    named: set[tuple[str, str]] = set()
    for index, entry in enumerate(raw):
        at = f"{where}.thresholds[{index}]"
        start = len(check.problems)
        check.unknown(entry, THRESHOLD_KEYS, at)
        asset, balance = entry.get("asset"), entry.get("balance")
        if (asset is None) == (balance is None) or not isinstance(asset or balance, str):
            check.add(at, "names one asset or one balance", 'asset = "XOF" or balance = "ID:KEY"')
            continue
        target = ("asset", asset) if asset is not None else ("balance", balance)
        if balance is not None and not balance.startswith(f"{account_id}:"):
            check.add(
                f"{at}.balance",
                f"unknown balance id {balance!r}: this account's ids start with {account_id}:",
                "copy the id from a Balance the gateway answers",
            )
        if target in named:
            check.add(at, f"a second rule for {target[0]} {target[1]!r}", "keep one")
        named.add(target)
        currency = check.string(entry, "currency", at)
        if not currency:
            check.add(f"{at}.currency", "the amounts' currency is missing", 'currency = "XOF"')
        elif not is_known_currency(currency):
            check.add(f"{at}.currency", f"unknown currency {currency!r}", "e.g. currency = XOF")
        elif account_currency is not None and currency != account_currency:
            check.add(
                f"{at}.currency",
                f"wrong currency {currency!r}: this account's balances are in {account_currency}",
                f'currency = "{account_currency}"',
            )
        else:
            _check_documented_currency(
                check, f"{at}.currency", currency, provider, target, account_id
            )
        levels = {
            name: amount
            for name in ("warning", "critical")
            if (amount := _amount(check, entry, at, name)) is not None
        }
        hysteresis = _amount(check, entry, at, "hysteresis")
        if not levels and len(check.problems) == start:
            check.add(at, "sets neither warning nor critical", 'warning = "100000"')
        warning, critical = levels.get("warning"), levels.get("critical")
        if warning is not None and critical is not None and warning <= critical:
            check.add(
                f"{at}.warning",
                f"warning {warning} is not above critical {critical}",
                "warning is the higher level: it comes first as a balance falls",
            )
        if len(check.problems) > start:
            continue
        thresholds = Thresholds(
            Money(warning, currency) if warning is not None else None,
            Money(critical, currency) if critical is not None else None,
            Money(hysteresis, currency) if hysteresis is not None else None,
        )
        rules.append(ThresholdRule(thresholds, asset=asset, balance=balance))
    return tuple(rules)


def _amount(check: Checker, entry: Mapping[str, Any], at: str, name: str) -> Decimal | None:
    """An amount of a threshold rule (absent: None): an exact string within the money
    domain, not negative (a whole number may be a plain integer)."""
    value = entry.get(name)
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str) and text.startswith("-"):
        check.add(f"{at}.{name}", f"negative: {name} is 0 or more", f'{name} = "100"')
        return None
    if not isinstance(text, str) or not AMOUNT.fullmatch(text) or not fits(Decimal(text)):
        check.add(f"{at}.{name}", "must be an amount, written as a string", '"100000.50"')
        return None
    return Decimal(text)


def _expected_currency(
    provider: ProviderRules, target: tuple[str, str], account_id: str
) -> str | None:
    """The currency the provider's documentation gives the balances a rule names (by its
    asset code, or by its balance id's key), or None when its rules cannot say."""
    kind, name = target
    if kind == "asset":
        derive, code = provider.asset_currency, name
    elif name.startswith(f"{account_id}:"):
        derive, code = provider.balance_currency, name[len(account_id) + 1 :]
    else:
        return None  # another account's id: a problem of its own
    found = derive(code) if derive is not None else None
    return found if is_known_currency(found) else None


def _check_documented_currency(
    check: Checker,
    at: str,
    currency: str,
    provider: ProviderRules,
    target: tuple[str, str],
    account_id: str,
) -> None:
    """For a provider that states currencies itself (Magma OnePay, Muda), a rule's
    `currency` must be the one its balances are documented to be in: any other can never
    match, and its level would stay null forever."""
    expected = _expected_currency(provider, target, account_id)
    if expected is None or currency == expected:
        return
    kind, name = target
    whose = f"balances of asset {name} are" if kind == "asset" else f"balance {name!r} is"
    check.add(at, f"wrong currency {currency!r}: {whose} in {expected}", f'currency = "{expected}"')


def _topup(
    check: Checker, raw: Mapping[str, Any], where: str, can_top_up: bool
) -> tuple[str, Decimal]:
    status, maximum = "completed", Decimal("10000000")
    if not can_top_up:
        for key in ("topup_status", "topup_max_amount"):
            if key in raw:
                check.add(f"{where}.{key}", "this provider has no top-up", f"remove {key}")
        return status, maximum
    status = check.string(raw, "topup_status", where, status) or status
    value = raw.get("topup_max_amount", maximum)
    try:
        parsed = Decimal(str(value))
    except ArithmeticError:
        parsed = Decimal(0)
    if isinstance(value, bool) or not parsed.is_finite() or parsed <= 0:
        check.add(f"{where}.topup_max_amount", "must be a positive number", "e.g. 1000000")
        return status, maximum
    return status, parsed


def _currency(
    check: Checker, raw: Mapping[str, Any], where: str, default: str | None, kind: str
) -> str | None:
    if "currency" not in raw:
        return default
    if default is None:
        check.add(
            f"{where}.currency",
            f"{kind} states the currency of every balance itself",
            "remove currency",
        )
        return None
    currency = check.string(raw, "currency", where)
    if not is_known_currency(currency):
        check.add(
            f"{where}.currency", f"unknown currency {currency!r}", "use an ISO 4217 code, e.g. XOF"
        )
        return None
    return currency
