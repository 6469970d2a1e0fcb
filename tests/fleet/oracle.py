"""An independent reference model of balance history, runway, alert levels and webhook events.

Written from the definitions in the semantics notes ("Exactly what is kept and when an event
fires") only — never from the gateway's code — so that it does not share that code's
mistakes. Pure functions and frozen dataclasses: no I/O, no clock, no import from `gateway`.

Money is `decimal.Decimal` throughout (never float); times are float Unix seconds (UTC).
Arithmetic on money runs in a local 60-digit context, so every result below is the exact
value of the definition up to the stated rounding (burn per day, half-even to 0.01).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum

__all__ = [
    "DAY",
    "RUNWAY_LIMIT_SECONDS",
    "RUNWAY_WINDOW_SECONDS",
    "AlertOutcome",
    "ConflictingReadsError",
    "Event",
    "EventType",
    "EverySeconds",
    "Level",
    "Point",
    "Read",
    "RunwayResult",
    "Thresholds",
    "alerts",
    "bucket_key",
    "downsample",
    "event_type",
    "events",
    "held",
    "history",
    "instant_level",
    "next_level",
    "prune",
    "runway",
    "schedule",
    "setting_at",
]

DAY = 86_400
HOUR = 3_600
RUNWAY_WINDOW_SECONDS = 7 * DAY  # W
RUNWAY_LIMIT_SECONDS = 3_650 * DAY  # "ten years": beyond it the runway is null
CENT = Decimal("0.01")
PRECISION = 60


# ---------------------------------------------------------------------------------------
# Reads and history
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Read:
    """A fresh read: what the gateway has just read from its provider (never a cached answer).

    `at` is the gateway's clock when the provider answered (`AccountBalance.fetchedAt`).
    `every_seconds`, when given, is the `[history] every_seconds` of the replica that recorded
    this read; it overrides the setting passed to `history()` (for fleets whose replicas run
    different settings during a rolling change).
    """

    balance: str
    at: float
    total: Decimal
    available: Decimal
    currency: str
    every_seconds: int | None = None


@dataclass(frozen=True, slots=True, order=True)
class Point:
    """One history point: the last fresh read of its bucket."""

    at: float
    total: Decimal
    available: Decimal


class ConflictingReadsError(ValueError):
    """Two reads of one balance share `at` but differ in value: by definition an answer whose
    value differs comes from another read, with another `at`."""


EverySeconds = int | Callable[[float], int] | Sequence[tuple[float, int]]
"""The `[history] every_seconds` in force: a constant, a function of the read time, or a
schedule `[(from_time, every_seconds), ...]` (see `schedule`)."""


def schedule(changes: Sequence[tuple[float, int]]) -> Callable[[float], int]:
    """The setting in force at a time, from `[(from_time, every_seconds), ...]`.

    The entry with the greatest `from_time <= at` applies; before the first entry the first
    entry applies. `schedule([(0, 60), (T, 300)])` says "60 until T, then 300" (a read at
    exactly T is recorded with 300).
    """
    if not changes:
        raise ValueError("an empty every_seconds schedule")
    ordered = sorted(changes, key=lambda change: change[0])
    for _, every in ordered:
        _check_every(every)

    def setting(at: float) -> int:
        current = ordered[0][1]
        for start, every in ordered:
            if start <= at:
                current = every
            else:
                break
        return current

    return setting


def setting_at(every_seconds: EverySeconds, at: float) -> int:
    """The `every_seconds` in force at `at` for any of the accepted shapes."""
    if isinstance(every_seconds, int):
        return _check_every(every_seconds)
    if callable(every_seconds):
        return _check_every(every_seconds(at))
    return schedule(every_seconds)(at)


def bucket_key(every_seconds: int, at: float) -> tuple[int, float]:
    """A bucket: `(setting, at − (at mod setting))`. Two settings' buckets are distinct keys."""
    _check_every(every_seconds)
    return (every_seconds, at - (at % every_seconds))


def history(reads: Iterable[Read], every_seconds: EverySeconds) -> dict[str, list[Point]]:
    """Per balance, the time-ordered history points the reads must leave behind.

    Each read is bucketed with the setting in force at its `at` (or its own `every_seconds`);
    per balance and bucket exactly one point is kept: the read with the greatest `at`,
    whatever the order of `reads` and whether or not the value changed. The same read twice
    (same balance and `at`, same value) counts once; the first occurrence's setting applies.
    Retention is not applied here (see `prune`).
    """
    setting: Callable[[float], int]
    if isinstance(every_seconds, int):
        constant = _check_every(every_seconds)

        def setting(_at: float) -> int:
            return constant

    elif callable(every_seconds):
        setting = every_seconds
    else:
        setting = schedule(every_seconds)

    seen: dict[tuple[str, float], Read] = {}
    last: dict[tuple[str, int, float], Read] = {}
    for read in reads:
        if not math.isfinite(read.at):
            raise ValueError(f"a read time must be finite: {read!r}")
        earlier = seen.get((read.balance, read.at))
        if earlier is not None:
            if (earlier.total, earlier.available) != (read.total, read.available):
                raise ConflictingReadsError(f"{earlier!r} and {read!r}")
            continue
        seen[(read.balance, read.at)] = read
        every = read.every_seconds if read.every_seconds is not None else setting(read.at)
        key = (read.balance, *bucket_key(_check_every(every), read.at))
        kept = last.get(key)
        if kept is None or read.at > kept.at:
            last[key] = read

    out: dict[str, list[Point]] = {}
    for (balance, _, _), read in last.items():
        out.setdefault(balance, []).append(Point(read.at, read.total, read.available))
    for points in out.values():
        points.sort(key=lambda point: point.at)
    return out


def prune(points: Iterable[Point], now: float, retention_days: float) -> list[Point]:
    """The points that survive a retention pass at `now`: those not older than
    `retention_days` (`at >= now − retention_days days`). The gateway prunes hourly, so at
    `now` it must still hold `prune(points, now, d)` and may still hold
    `prune(points, now − 3600, d)`."""
    cutoff = now - retention_days * DAY
    return sorted((point for point in points if point.at >= cutoff), key=lambda p: p.at)


def downsample(points: Iterable[Point], since: float, until: float, every: float) -> list[Point]:
    """`history(since, until, every)`: the points with `since ≤ at ≤ until`, then the last
    (greatest `at`) of each `every`-second slice counted from `since`, in time order.
    Slice n is `[since + n·every, since + (n+1)·every)`."""
    if not every > 0 or not math.isfinite(every):
        raise ValueError(f"every must be a positive number of seconds, not {every!r}")
    last: dict[int, Point] = {}
    for point in points:
        if since <= point.at <= until:
            index = math.floor((point.at - since) / every)
            kept = last.get(index)
            if kept is None or point.at > kept.at:
                last[index] = point
    return sorted(last.values(), key=lambda point: point.at)


# ---------------------------------------------------------------------------------------
# Runway
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunwayResult:
    """`burn_per_day` is rounded half-even to 0.01; the times use the unrounded rate.

    `rate_per_second`, `fell`, `span` and `series` are the intermediate values, for
    diagnostics (they are not part of the gateway's answer).
    """

    burn_per_day: Decimal
    zero_at: float
    critical_at: float | None
    since: float
    rate_per_second: Decimal
    fell: Decimal
    span: float
    series: tuple[tuple[float, Decimal], ...] = field(repr=False)


def runway_series(
    points: Iterable[Point], available_now: Decimal, now: float
) -> list[tuple[float, Decimal]]:
    """Step 1: the last point at or before `now − W` (its time taken as `now − W`), then every
    point with `now − W < at ≤ now` in time order, then `(now, A)`."""
    window_start = now - RUNWAY_WINDOW_SECONDS
    ordered = sorted(points, key=lambda point: point.at)
    anchor: Point | None = None
    inside: list[tuple[float, Decimal]] = []
    for point in ordered:
        if point.at <= window_start:
            anchor = point
        elif point.at <= now:
            inside.append((point.at, point.available))
    series: list[tuple[float, Decimal]] = []
    if anchor is not None:
        series.append((window_start, anchor.available))
    series.extend(inside)
    series.append((now, available_now))
    return series


def runway(
    points: Iterable[Point], available_now: Decimal, now: float, critical: Decimal | None
) -> RunwayResult | None:
    """Runway at `now` for a balance whose current answer has available amount `A`.

    `points` is the balance's history; `critical` the critical threshold in the balance's
    currency (None without one: `critical_at` is then None). None when the span is under an
    hour, nothing fell, or the amount would last more than ten years at this rate.
    """
    series = runway_series(points, available_now, now)
    start = series[0][0]
    span = now - start
    with localcontext() as ctx:
        ctx.prec = PRECISION
        fell = sum(
            (max(Decimal(0), earlier - later) for (_, earlier), (_, later) in _pairs(series)),
            Decimal(0),
        )
        if span < HOUR or fell == 0:
            return None
        span_d = Decimal(span)
        rate = fell / span_d
        a = available_now
        if a * span_d / fell > RUNWAY_LIMIT_SECONDS:
            return None
        burn = (fell * DAY / span_d).quantize(CENT, rounding=ROUND_HALF_EVEN)
        zero_at = now if a <= 0 else now + float(a / rate)
        critical_at: float | None
        if critical is None:
            critical_at = None
        elif a > critical:
            critical_at = now + float((a - critical) / rate)
        else:
            critical_at = now
    return RunwayResult(
        burn_per_day=burn,
        zero_at=zero_at,
        critical_at=critical_at,
        since=start,
        rate_per_second=rate,
        fell=fell,
        span=span,
        series=tuple(series),
    )


# ---------------------------------------------------------------------------------------
# Levels and events
# ---------------------------------------------------------------------------------------


class Level(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2}


class EventType(StrEnum):
    WARNING = "balance.warning"
    CRITICAL = "balance.critical"
    RECOVERED = "balance.recovered"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A balance's alert rule. `hysteresis` is the margin added to each threshold before a
    level is left (default: 1 % of that threshold). `currency`, when given, is the rule's
    currency: a read in another currency moves nothing. A missing threshold never fires and
    never holds."""

    warning: Decimal | None
    critical: Decimal | None
    hysteresis: Decimal | None = None
    currency: str | None = None

    def margin(self, threshold: Decimal) -> Decimal:
        if self.hysteresis is not None:
            return self.hysteresis
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return threshold / 100


def instant_level(th: Thresholds, a: Decimal) -> Level:
    """`level(a)`: CRITICAL when `a ≤ critical`, else WARNING when `a ≤ warning`, else OK."""
    if th.critical is not None and a <= th.critical:
        return Level.CRITICAL
    if th.warning is not None and a <= th.warning:
        return Level.WARNING
    return Level.OK


def held(th: Thresholds, stored: Level | str, a: Decimal) -> Level:
    """`held(L, a)`: the level hysteresis keeps while `a` is not yet back above threshold +
    margin."""
    level = Level(stored)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        if (
            level is Level.CRITICAL
            and th.critical is not None
            and a <= th.critical + th.margin(th.critical)
        ):
            return Level.CRITICAL
        if (
            level in (Level.WARNING, Level.CRITICAL)
            and th.warning is not None
            and a <= th.warning + th.margin(th.warning)
        ):
            return Level.WARNING
    return Level.OK


def next_level(th: Thresholds, stored: Level | str, a: Decimal) -> Level:
    """`L'` = the more severe of `level(a)` and `held(L, a)`."""
    now = instant_level(th, a)
    kept = held(th, stored, a)
    return now if now.severity >= kept.severity else kept


def event_type(level: Level | str) -> EventType:
    """The event a change to `level` creates."""
    return {
        Level.OK: EventType.RECOVERED,
        Level.WARNING: EventType.WARNING,
        Level.CRITICAL: EventType.CRITICAL,
    }[Level(level)]


@dataclass(frozen=True, slots=True)
class Event:
    """One change of a balance's stored level, caused by the read at `at`."""

    balance: str
    type: EventType
    previous_level: Level
    level: Level
    at: float


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    """`events` in creation order; `levels` the final stored level of every balance that has
    a rule (OK when never moved); `last_applied` the `at` of the last read applied per
    balance; `ignored` the reads ignored as not newer than the last applied one (or in a
    foreign currency)."""

    events: list[Event]
    levels: dict[str, Level]
    last_applied: dict[str, float]
    ignored: list[Read]


def alerts(
    reads_in_applied_order: Iterable[Read],
    thresholds: Mapping[str, Thresholds],
    *,
    initial: Mapping[str, Level] | None = None,
    foreign_currency_advances: bool = False,
) -> AlertOutcome:
    """Applies fresh reads in the order the gateway applied them.

    Per balance the stored level starts at OK (or `initial`). A read not newer than the last
    one applied for its balance is ignored (so the same read twice changes nothing). A read
    for a balance without a rule changes nothing. A read in another currency than its rule's
    moves nothing; whether it still counts as "applied" for the ordering rule is not stated
    by the definition — by default it does not (`foreign_currency_advances=False`).
    Every change of the stored level creates one event.
    """
    levels: dict[str, Level] = {balance: Level.OK for balance in thresholds}
    if initial:
        levels.update({balance: Level(level) for balance, level in initial.items()})
    last_applied: dict[str, float] = {}
    out: list[Event] = []
    ignored: list[Read] = []
    for read in reads_in_applied_order:
        rule = thresholds.get(read.balance)
        if rule is None:
            continue
        previous_at = last_applied.get(read.balance)
        if previous_at is not None and not read.at > previous_at:
            ignored.append(read)
            continue
        if rule.currency is not None and read.currency != rule.currency:
            ignored.append(read)
            if foreign_currency_advances:
                last_applied[read.balance] = read.at
            continue
        last_applied[read.balance] = read.at
        stored = levels.get(read.balance, Level.OK)
        moved = next_level(rule, stored, read.available)
        if moved != stored:
            out.append(Event(read.balance, event_type(moved), stored, moved, read.at))
            levels[read.balance] = moved
    return AlertOutcome(out, levels, last_applied, ignored)


def events(
    reads_in_applied_order: Iterable[Read], thresholds: Mapping[str, Thresholds]
) -> list[Event]:
    """The events `alerts()` creates (use `alerts()` for the final levels too)."""
    return alerts(reads_in_applied_order, thresholds).events


# ---------------------------------------------------------------------------------------


def _check_every(every: int) -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
        raise ValueError(f"every_seconds must be a positive int, not {every!r}")
    return every


def _pairs(
    series: Sequence[tuple[float, Decimal]],
) -> Iterable[tuple[tuple[float, Decimal], tuple[float, Decimal]]]:
    return itertools.pairwise(series)
