"""Hypothesis strategies for realistic balance traces, as plain data a harness can replay.

A `Trace` is a few balances (each with a currency, an alert rule and the provider's initial
amounts), an initial `[history] every_seconds`, a start time for the injected clock and a
list of `Step`s. Replaying one step, in this order:

1. the injected clock moves forward by `step.advance` seconds;
2. the replicas in `step.kill` are killed hard (SIGKILL) and started again, those in
   `step.restart` are stopped gracefully and started again (`kill` and `restart` are
   disjoint). When `step.every_seconds` is set (an `EVERY_CHANGE` step), that setting is in
   force from this clock time: `restart` then lists every replica, to be started with it;
3. for each `Poll` in `step.polls`: the clock moves forward by `poll.gap` seconds; the
   provider of `step.balance` is set to hold `poll.total` / `poll.available` and to answer
   (`poll.provider_up`) or fail (not up: no fresh read can happen); then replica
   `poll.replica` (0..2) is asked for that balance.

Amounts are `Decimal`s with at most two decimals, `0 ≤ available ≤ total ≤ 10^9`; other
balances' provider amounts do not change during a step. The clock only moves forward; every
poll gap is at least one second, so two fresh reads of one balance never share a time.
Pure data: nothing here talks to a gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

import hypothesis.strategies as st

from tests.fleet.oracle import Thresholds

__all__ = [
    "CURRENCIES",
    "EVERY_SECONDS_CHOICES",
    "MAX_AMOUNT",
    "REPLICAS",
    "Action",
    "BalanceSpec",
    "Poll",
    "Step",
    "TimedPoll",
    "Trace",
    "traces",
]

REPLICAS = 3
MAX_AMOUNT = Decimal(10) ** 9
MAX_CENTS = 10**11
CURRENCIES = ("KES", "UGX", "NGN", "GHS", "EGP")
EVERY_SECONDS_CHOICES = (30, 60, 300, 900, 3600)
START = 1_750_000_000  # 2025-06-15T15:06:40Z


class Action(StrEnum):
    BURST = "burst"  # spending: available falls poll after poll
    TOPUP = "topup"  # available rises
    FLAT = "flat"  # nothing changes, several polls
    FLAP_THRESHOLD = "flap_threshold"  # alternately threshold + 1 and threshold − 1
    FLAP_BAND = "flap_band"  # alternately two amounts inside (threshold, threshold + margin]
    FLAP_ACROSS = "flap_across"  # alternately ≤ threshold and > threshold + margin
    OUTAGE = "outage"  # the provider fails every poll (its amounts may still move)
    EVERY_CHANGE = "every_change"  # [history] every_seconds changes; no polls


@dataclass(frozen=True, slots=True)
class Poll:
    gap: float  # seconds the clock moves forward before this poll (≥ 1)
    replica: int  # which replica is asked, 0..2
    provider_up: bool  # False: the provider fails (timeout/5xx), so no fresh read
    total: Decimal  # what the provider holds at this poll
    available: Decimal


@dataclass(frozen=True, slots=True)
class Step:
    advance: float  # seconds the clock moves forward first (seconds to days)
    action: Action
    balance: str | None  # the balance polled; None for EVERY_CHANGE
    polls: tuple[Poll, ...]
    restart: tuple[int, ...] = ()  # replicas stopped gracefully and started again first
    kill: tuple[int, ...] = ()  # replicas SIGKILLed and started again first
    every_seconds: int | None = None  # EVERY_CHANGE: the new [history] every_seconds
    threshold: Decimal | None = None  # FLAP_*: the threshold flapped around


@dataclass(frozen=True, slots=True)
class BalanceSpec:
    name: str
    currency: str
    thresholds: Thresholds  # its rule; `thresholds.currency` may differ from `currency`
    total: Decimal  # the provider's amounts before the first step
    available: Decimal


@dataclass(frozen=True, slots=True)
class TimedPoll:
    at: float  # the injected clock when the poll is made
    step: int  # index into Trace.steps
    balance: str
    currency: str
    poll: Poll


@dataclass(frozen=True, slots=True)
class Trace:
    start: float  # the injected clock before the first step
    every_seconds: int  # [history] every_seconds before any EVERY_CHANGE step
    balances: tuple[BalanceSpec, ...]
    steps: tuple[Step, ...]

    def thresholds(self) -> dict[str, Thresholds]:
        return {balance.name: balance.thresholds for balance in self.balances}

    def timeline(self) -> Iterator[TimedPoll]:
        """Every poll with the clock time it is made at, when the clock moves exactly by the
        trace's advances and gaps (added one by one, in order, as float seconds)."""
        currency = {balance.name: balance.currency for balance in self.balances}
        clock = self.start
        for index, step in enumerate(self.steps):
            clock += step.advance
            for poll in step.polls:
                clock += poll.gap
                assert step.balance is not None
                yield TimedPoll(clock, index, step.balance, currency[step.balance], poll)

    def every_schedule(self) -> list[tuple[float, int]]:
        """`[(from_time, every_seconds), ...]` for `oracle.schedule` / `oracle.history`."""
        changes: list[tuple[float, int]] = [(self.start, self.every_seconds)]
        for at, step in self._step_times():
            if step.every_seconds is not None:
                changes.append((at, step.every_seconds))
        return changes

    def end(self) -> float:
        """The clock after the last step."""
        clock = self.start
        for step in self.steps:
            clock += step.advance
            for poll in step.polls:
                clock += poll.gap
        return clock

    def _step_times(self) -> Iterator[tuple[float, Step]]:
        """Each step with the clock after its advance (the same float additions, in the same
        order, as `timeline`)."""
        clock = self.start
        for step in self.steps:
            clock += step.advance
            yield clock, step
            for poll in step.polls:
                clock += poll.gap


# ---------------------------------------------------------------------------------------


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _cents(amount: Decimal) -> int:
    return int(amount.scaleb(2))


def _seconds(draw: st.DrawFn, low: int, high: int) -> float:
    whole = draw(st.integers(low, high))
    millis = draw(st.sampled_from((0, 0, 0, 250, 500, 999)))
    return float(whole) + millis / 1000


ADVANCE_RANGES = ((0, 59), (60, 3_599), (3_600, 86_399), (86_400, 3 * 86_400))
GAP_RANGES = ((1, 59), (60, 3_599), (3_600, 6 * 3_600))


def _advance(draw: st.DrawFn) -> float:
    low, high = draw(st.sampled_from(ADVANCE_RANGES))
    return _seconds(draw, low, high)


def _gap(draw: st.DrawFn) -> float:
    low, high = draw(st.sampled_from(GAP_RANGES))
    return _seconds(draw, max(1, low), high)


@st.composite
def _thresholds(draw: st.DrawFn, currency: str) -> Thresholds:
    warning_cents = draw(st.one_of(st.none(), st.integers(100_000, 10**10)))
    critical_high = (warning_cents - 1) if warning_cents is not None else 10**10
    critical_cents = draw(st.one_of(st.none(), st.integers(1, critical_high)))
    hysteresis_cents = draw(
        st.one_of(st.none(), st.none(), st.integers(0, 10**6), st.just(0), st.just(100))
    )
    foreign = draw(st.integers(0, 19)) == 0  # now and then the rule is in another currency
    rule_currency = draw(st.sampled_from([c for c in CURRENCIES if c != currency]))
    return Thresholds(
        warning=None if warning_cents is None else _money(warning_cents),
        critical=None if critical_cents is None else _money(critical_cents),
        hysteresis=None if hysteresis_cents is None else _money(hysteresis_cents),
        currency=rule_currency if foreign else currency,
    )


@st.composite
def _balance(draw: st.DrawFn, index: int) -> tuple[BalanceSpec, int]:
    currency = draw(st.sampled_from(CURRENCIES))
    rule = draw(_thresholds(currency))
    reserved = draw(st.one_of(st.just(0), st.integers(0, 10**7)))
    pivot = rule.warning if rule.warning is not None else rule.critical
    if pivot is not None and draw(st.booleans()):
        # start near the rule: between half and three times the pivot
        low = _cents(pivot) // 2
        available = draw(st.integers(low, min(MAX_CENTS - reserved, 3 * _cents(pivot))))
    else:
        available = draw(st.integers(0, MAX_CENTS - reserved))
    spec = BalanceSpec(
        name=f"bal-{index}",
        currency=currency,
        thresholds=rule,
        total=_money(available + reserved),
        available=_money(available),
    )
    return spec, reserved


def _replicas(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return (draw(st.integers(0, REPLICAS - 1)),), ()
    if roll == 1:
        return (), (draw(st.integers(0, REPLICAS - 1)),)
    return (), ()


def _flap_targets(
    draw: st.DrawFn, rule: Thresholds, current: int, action: Action
) -> tuple[Action, Decimal, list[int]]:
    """The flap done (FLAP_BAND becomes FLAP_ACROSS when the band holds no whole cent), the
    threshold and the two amounts (cents, before clipping) it alternates."""
    candidates = [t for t in (rule.warning, rule.critical) if t is not None]
    threshold = draw(st.sampled_from(candidates)) if candidates else _money(current)
    t = _cents(threshold)
    top = _cents(threshold + rule.margin(threshold))  # floor of threshold + margin
    if action is Action.FLAP_THRESHOLD:
        return action, threshold, [t + 100, t - 100]
    if action is Action.FLAP_BAND and top > t:
        first = draw(st.integers(t + 1, top))
        second = draw(st.integers(t + 1, top))
        return action, threshold, [first, second]
    below = t - draw(st.integers(0, max(0, min(t, 10**6))))
    above = top + draw(st.integers(1, 10**6))
    return Action.FLAP_ACROSS, threshold, [below, above]


@st.composite
def _step(
    draw: st.DrawFn,
    balances: tuple[BalanceSpec, ...],
    reserved: dict[str, int],
    amounts: dict[str, int],
    every: list[int],
) -> Step:
    """One step; updates `amounts` (available cents per balance) and `every` in place."""
    advance = _advance(draw)
    kill, restart = _replicas(draw)
    action = draw(st.sampled_from(list(Action)))
    if action is Action.EVERY_CHANGE:
        new = draw(st.sampled_from([e for e in EVERY_SECONDS_CHOICES if e != every[0]]))
        every[0] = new
        return Step(
            advance=advance,
            action=action,
            balance=None,
            polls=(),
            restart=tuple(range(REPLICAS)),
            kill=(),
            every_seconds=new,
        )
    spec = draw(st.sampled_from(balances))
    name = spec.name
    ceiling = MAX_CENTS - reserved[name]
    current = amounts[name]
    values: list[int] = []
    up = True
    threshold: Decimal | None = None
    if action is Action.BURST:
        for _ in range(draw(st.integers(1, 6))):
            spend = draw(st.one_of(st.integers(1, 1_000_000), st.integers(0, max(0, current))))
            current = max(0, current - spend)
            values.append(current)
    elif action is Action.TOPUP:
        for _ in range(draw(st.integers(1, 3))):
            add = draw(st.one_of(st.integers(0, 10**8), st.integers(0, max(0, ceiling - current))))
            current = min(ceiling, current + add)
            values.append(current)
    elif action is Action.FLAT:
        values = [current] * draw(st.integers(2, 10))
    elif action is Action.OUTAGE:
        up = False
        for _ in range(draw(st.integers(1, 5))):
            if draw(st.booleans()):  # the amount may move while nobody can read it
                current = max(0, current - draw(st.integers(0, 1_000_000)))
            values.append(current)
    else:
        action, threshold, pair = _flap_targets(draw, spec.thresholds, current, action)
        phase = draw(st.integers(0, 1))
        for i in range(draw(st.integers(2, 8))):
            values.append(min(ceiling, max(0, pair[(i + phase) % 2])))
        current = values[-1]
    amounts[name] = current
    polls = tuple(
        Poll(
            gap=_gap(draw),
            replica=draw(st.integers(0, REPLICAS - 1)),
            provider_up=up,
            total=_money(value + reserved[name]),
            available=_money(value),
        )
        for value in values
    )
    return Step(
        advance=advance,
        action=action,
        balance=name,
        polls=polls,
        restart=restart,
        kill=kill,
        threshold=threshold,
    )


@st.composite
def traces(
    draw: st.DrawFn,
    max_balances: int = 3,
    max_steps: int = 30,
    min_balances: int = 1,
    min_steps: int = 1,
) -> Trace:
    """A trace of `min_balances`..`max_balances` balances and `min_steps`..`max_steps`
    steps."""
    count = draw(st.integers(min_balances, max_balances))
    drawn = [draw(_balance(index)) for index in range(count)]
    balances = tuple(spec for spec, _ in drawn)
    reserved = {spec.name: held for spec, held in drawn}
    amounts = {spec.name: _cents(spec.available) for spec in balances}
    start = float(START + draw(st.integers(0, 365 * 86_400)))
    every = [draw(st.sampled_from(EVERY_SECONDS_CHOICES))]
    initial_every = every[0]
    steps = tuple(
        draw(_step(balances, reserved, amounts, every))
        for _ in range(draw(st.integers(min_steps, max_steps)))
    )
    return Trace(start=start, every_seconds=initial_every, balances=balances, steps=steps)
