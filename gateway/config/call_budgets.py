"""Whether the balance reads a configuration implies fit each account's daily call budget
(`calls_per_day`): the arithmetic `check-config` does, warning — not refusing — when they
do not, since past its budget the gateway serves stale data and then
`UPSTREAM_RATE_LIMITED` for the rest of the day rather than call (`upstream/quota.py`).

A balance is read from its upstream at most once per account per fresh window
(`fresh_seconds`, the account's own or `[cache]`'s) by each *reader*, however many
dashboards poll it — so at most 86,400 / fresh_seconds reads a day per reader:

- `[cache] url = "memory://"`: each process has its own cache and single flight, and
  reads on its own: the readers are the processes (replicas × workers), and so are the
  budgets (each process counts its own, so the provider may see that many times it);
- `redis://` / `rediss://`: the cache and its single-flight marker are shared, so one
  process reads and the others wait for it and take its answer: one reader for the
  fleet, whatever the number of processes (and one budget, counted in Redis).

The figure is a floor: token exchanges (Muda's), histories and top-ups draw on the same
budget, and while Redis is unreachable every process reads on its own. The fix offered
is the smallest whole `fresh_seconds` whose reads fit the budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from urllib.parse import urlsplit

from gateway.config.accounts import AccountConfig
from gateway.errors import Problem

SECONDS_A_DAY = 86_400
MAX_FRESH_SECONDS = 86_400  # as `[cache] fresh_seconds` allows


def shared_cache(url: str) -> bool:
    """Whether every process reads through one cache (Redis) rather than its own."""
    return urlsplit(url).scheme in ("redis", "rediss")


def over_budget(accounts: Iterable[AccountConfig], cache_url: str, processes: int) -> list[Problem]:
    """A warning (as a `Problem`: where, what, the fix) for each account whose balance
    reads a day, with `processes` processes on this configuration, would pass its
    `calls_per_day`; none for an account without one."""
    shared = shared_cache(cache_url)
    readers = 1 if shared else processes
    return [
        warning
        for account in accounts
        if account.calls_per_day is not None
        and (warning := _warning(account, account.calls_per_day, readers, shared)) is not None
    ]


def reads_a_day(fresh_seconds: float, readers: int) -> float:
    """The most balance reads a day: one per fresh window per reader (0 s: no bound)."""
    return math.inf if fresh_seconds == 0 else SECONDS_A_DAY * readers / fresh_seconds


def fitting_fresh_seconds(budget: int, readers: int) -> int:
    """The smallest whole `fresh_seconds` whose reads a day fit `budget`."""
    return math.ceil(SECONDS_A_DAY * readers / budget)


def _warning(account: AccountConfig, budget: int, readers: int, shared: bool) -> Problem | None:
    reads = reads_a_day(account.fresh_seconds, readers)
    if reads <= budget:
        return None
    if shared:
        who = "for the whole fleet: its cache is shared"
    elif readers > 1:
        who = f"in each of {readers} processes: each has its own memory:// cache"
    else:
        who = "in its one process"
    calls = "call" if budget == 1 else "calls"
    quota = f"its budget of {budget:,} {calls} a day (calls_per_day)"
    if math.isinf(reads):
        message = (
            f"fresh_seconds = {account.fresh_seconds:g} reads the balance from the upstream "
            "on every request "
            f"({who}): nothing keeps that under {quota}"
        )
    else:
        fresh = f"{account.fresh_seconds:g}"
        message = (
            f"{math.ceil(reads):,} balance reads a day (one per {fresh} s {who}) exceed {quota}"
        )
    where = f"accounts.{account.id}"
    return Problem(f"{where}.fresh_seconds", message, _fix(where, budget, readers, shared))


def _fix(where: str, budget: int, readers: int, shared: bool) -> str:
    share = 'share the cache, [cache] url = "redis://…" (one read per window for the fleet)'
    fits = fitting_fresh_seconds(budget, readers)
    if fits > MAX_FRESH_SECONDS:  # not even one read a day per process fits
        return f"run fewer processes, or {share}"
    fix = f"fresh_seconds = {fits} or more in [{where}]"
    return fix if shared or readers == 1 else f"{fix}; or {share}"
