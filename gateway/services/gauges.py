"""Per-balance gauges for Prometheus, from the last answer of each configured account.

Computed at scrape time from what the gateway last read (nothing polls for them):

- `gateway_balance_available` / `gateway_balance_total_amount` — the amounts (as floats: exact
  enough to alert on, never to account with);
- `gateway_balance_level` — 0 OK, 1 WARNING, 2 CRITICAL, for balances with thresholds;
- `gateway_balance_threshold{level="warning"|"critical"}` — the configured levels;
- `gateway_threshold_currency_mismatch{account,balance,currency,threshold_currency}` — 1
  for a balance whose thresholds are in another currency than its available amount: a
  configuration mistake, so neither its level nor its thresholds are exported (and a
  WARNING is logged once per balance, at the first answer that shows it);
- `gateway_balance_age_seconds{account}` — how old the data served for the account is;
- `gateway_account_failing{account}` — 1 while the account's last answer was a failure or
  a stale stand-in for one.

Labels are `account` (configured), `balance` (its id), `asset`, `kind` and `currency`: the
accounts come from the configuration, never from a client, and at most `MAX_BALANCES`
balances per account are exported, whatever a provider answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.domain import AccountBalance, AccountBalanceResult, Balance, Level

log = logging.getLogger("gateway.services.gauges")
MAX_BALANCES = 64
LEVELS = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2}
LABELS = ["account", "balance", "asset", "kind", "currency"]


class BalanceGauges(Collector):
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.answered: dict[str, AccountBalance] = {}  # the last balances per account
        self.failing: dict[str, bool] = {}
        self.mismatched: set[str] = set()  # balance ids whose mismatch is logged

    def note(self, result: AccountBalanceResult) -> None:
        """An account's answer, as a request or a live stream read it."""
        account = result.account.id
        if isinstance(result, AccountBalance):
            self.answered[account] = result
            self.failing[account] = result.stale
            for balance in result.balances:
                if mismatched(balance) and balance.id not in self.mismatched:
                    self.mismatched.add(balance.id)
                    warn_mismatch(balance)
        else:
            self.failing[account] = True

    def collect(self) -> Iterator[Metric]:
        available = GaugeMetricFamily(
            "gateway_balance_available", "Available amount of each balance.", labels=LABELS
        )
        total = GaugeMetricFamily(
            "gateway_balance_total_amount", "Total amount of each balance.", labels=LABELS
        )
        level = GaugeMetricFamily(
            "gateway_balance_level",
            "0 OK, 1 WARNING, 2 CRITICAL (balances with thresholds only).",
            labels=LABELS,
        )
        threshold = GaugeMetricFamily(
            "gateway_balance_threshold",
            "Configured low-balance levels, by level (warning, critical).",
            labels=[*LABELS, "level"],
        )
        mismatch = GaugeMetricFamily(
            "gateway_threshold_currency_mismatch",
            "1 for a balance in another currency than its thresholds (a configuration "
            "mistake: no level, no threshold gauges).",
            labels=["account", "balance", "currency", "threshold_currency"],
        )
        age = GaugeMetricFamily(
            "gateway_balance_age_seconds",
            "Age of the balances last served for the account.",
            labels=["account"],
        )
        failing = GaugeMetricFamily(
            "gateway_account_failing",
            "1 while the account's last answer was a failure or a stale stand-in.",
            labels=["account"],
        )
        now = self.clock()
        for account, answer in self.answered.items():
            age.add_metric([account], max(0.0, now - answer.fetched_at.timestamp()))
            for balance in answer.balances[:MAX_BALANCES]:
                labels = [
                    account,
                    balance.id,
                    balance.asset.code,
                    balance.asset.kind.value,
                    balance.available.currency,
                ]
                available.add_metric(labels, float(balance.available.amount))
                total.add_metric(labels, float(balance.total.amount))
                thresholds = balance.thresholds
                if thresholds is None:
                    continue
                if mismatched(balance):  # never an XOF threshold labelled GHS
                    mismatch.add_metric(
                        [account, balance.id, balance.available.currency, thresholds.currency],
                        1.0,
                    )
                    continue
                if balance.level is not None:
                    level.add_metric(labels, LEVELS[balance.level])
                for name in ("warning", "critical"):
                    money = getattr(thresholds, name)
                    if money is not None:
                        threshold.add_metric([*labels, name], float(money.amount))
        for account, is_failing in self.failing.items():
            failing.add_metric([account], 1.0 if is_failing else 0.0)
        yield from (available, total, level, threshold, mismatch, age, failing)


def mismatched(balance: Balance) -> bool:
    """Thresholds in another currency than the balance's available amount."""
    thresholds = balance.thresholds
    return thresholds is not None and thresholds.currency != balance.available.currency


def warn_mismatch(balance: Balance) -> None:
    assert balance.thresholds is not None
    log.warning(
        "balance %s is in %s but its thresholds are in %s: no level and no alert until "
        "[[accounts.ID.thresholds]] names its currency",
        balance.id,
        balance.available.currency,
        balance.thresholds.currency,
    )
