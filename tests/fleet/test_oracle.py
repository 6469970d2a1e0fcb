"""The reference model checked against examples computed by hand from the definitions, and
its invariants over generated traces."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fleet.oracle import (
    DAY,
    ConflictingReadsError,
    Event,
    EventType,
    Level,
    Point,
    Read,
    Thresholds,
    alerts,
    bucket_key,
    downsample,
    events,
    held,
    history,
    instant_level,
    next_level,
    prune,
    runway,
    schedule,
    setting_at,
)
from tests.fleet.traces import MAX_AMOUNT, REPLICAS, Action, Trace, traces

D = Decimal
HOUR = 3_600
T0 = 1_750_000_200.0  # a multiple of 300 (and of 60)
CENT = D("0.01")


def read(at: float, available: str | int, balance: str = "b", currency: str = "KES") -> Read:
    amount = D(available)
    return Read(balance, at, amount + 10, amount, currency)


# --- history -------------------------------------------------------------------------------


def test_two_changes_inside_one_bucket_keep_the_second_whatever_the_write_order() -> None:
    first, second, next_bucket = read(T0 + 10, 500), read(T0 + 200, 400), read(T0 + 300, 400)
    for order in ([first, second, next_bucket], [next_bucket, second, first]):
        assert history(order, 300) == {
            "b": [Point(T0 + 200, D(410), D(400)), Point(T0 + 300, D(410), D(400))]
        }


def test_an_unchanged_value_still_moves_the_point_to_the_last_read() -> None:
    points = history([read(T0 + 1, 7), read(T0 + 59, 7)], 60)["b"]
    assert points == [Point(T0 + 59, D(17), D(7))]


def test_the_same_read_twice_changes_nothing_and_a_different_value_at_the_same_time_is_refused() -> (
    None
):
    once = history([read(T0 + 5, 3)], 60)
    assert history([read(T0 + 5, 3), read(T0 + 5, 3)], 60) == once
    with pytest.raises(ConflictingReadsError):
        history([read(T0 + 5, 3), read(T0 + 5, 4)], 60)


def test_balances_are_kept_apart_and_empty_buckets_hold_nothing() -> None:
    out = history([read(T0, 1, "x"), read(T0 + 3 * 60, 2, "x"), read(T0 + 1, 9, "y")], 60)
    assert out == {
        "x": [Point(T0, D(11), D(1)), Point(T0 + 180, D(12), D(2))],
        "y": [Point(T0 + 1, D(19), D(9))],
    }


def test_every_seconds_changed_from_60_to_300_keeps_the_earlier_points() -> None:
    change = T0 + 150  # inside the 300-second bucket starting at T0
    reads = [read(T0 + s, s) for s in (10, 70, 130, 160, 250)]
    expected = [T0 + 10, T0 + 70, T0 + 130, T0 + 250]  # 60 s buckets, then (300, T0)
    by_schedule = history(reads, [(0.0, 60), (change, 300)])["b"]
    assert [p.at for p in by_schedule] == expected
    assert [p.available for p in by_schedule] == [D(10), D(70), D(130), D(250)]
    by_function = history(reads, lambda at: 60 if at < change else 300)["b"]
    assert by_function == by_schedule
    assert [p.at for p in history(reads, 300)["b"]] == [T0 + 250]
    # a read recorded by a replica still on 60 after the change lands in its own bucket
    late_60 = Read("b", T0 + 200, D(1), D(1), "KES", every_seconds=60)
    points = history([*reads, late_60], [(0.0, 60), (change, 300)])["b"]
    assert [p.at for p in points] == [T0 + 10, T0 + 70, T0 + 130, T0 + 200, T0 + 250]


def test_schedule_and_bucket_key() -> None:
    at = schedule([(100.0, 300), (0.0, 60)])
    assert (at(-5.0), at(99.9), at(100.0), at(1e9)) == (60, 60, 300, 300)
    assert setting_at(60, 5.0) == 60
    assert setting_at([(0.0, 60), (10.0, 900)], 10.0) == 900
    assert bucket_key(300, T0 + 299.5) == (300, T0)
    assert bucket_key(60, T0 + 60) == (60, T0 + 60)
    with pytest.raises(ValueError):
        bucket_key(0, T0)
    with pytest.raises(ValueError):
        schedule([])


def test_downsample_takes_the_last_point_of_each_slice_counted_from_since() -> None:
    since, until = T0 + 7, T0 + 7 + 200
    points = [
        Point(at, D(0), D(int(at - since)))
        for at in (T0, since, since + 30, since + 59, since + 60, since + 130, until, until + 1)
    ]
    picked = downsample(points, since, until, 60)
    assert [p.at - since for p in picked] == [59, 60, 130, 200]
    assert downsample(points, since, until, 1000) == [Point(until, D(0), D(200))]
    assert downsample([], since, until, 60) == []
    with pytest.raises(ValueError):
        downsample(points, since, until, 0)


def test_prune_keeps_points_not_older_than_retention() -> None:
    now = T0 + 40 * DAY
    points = [Point(now - 30 * DAY - 1, D(0), D(0)), Point(now - 30 * DAY, D(0), D(1))]
    assert prune(points, now, 30) == [points[1]]


# --- runway --------------------------------------------------------------------------------


def spent_in_first_hour_then_flat() -> tuple[list[Point], float]:
    reads = [read(T0, 1_000_000), read(T0 + 600, 950_000), read(T0 + 1_800, 920_000)]
    reads += [read(T0 + HOUR + k * HOUR, 900_000) for k in range(6 * 24 + 1)]
    now = T0 + HOUR + 6 * DAY
    return history(reads, 300)["b"], now


def test_100000_spent_in_the_first_hour_then_flat_for_six_days() -> None:
    points, now = spent_in_first_hour_then_flat()
    assert len(points) == 3 + 6 * 24 + 1
    result = runway(points, D(900_000), now, critical=D(100_000))
    assert result is not None
    # 100000 / (6 days + 1 hour) × 86400 = 16551.724… per day
    assert result.burn_per_day == D("16551.72")
    assert result.since == T0
    assert result.span == 6 * DAY + HOUR
    assert result.fell == D(100_000)
    # rate = 100000 / 522000 per second: 900000 lasts 4,698,000 s = 54.375 days
    assert result.zero_at == pytest.approx(now + 4_698_000, abs=1e-3)
    assert 7 * DAY * 3 < result.zero_at - now < 7 * DAY * 10  # weeks away
    assert result.critical_at == pytest.approx(now + 4_176_000, abs=1e-3)


def test_runway_uses_the_point_before_the_window_and_ignores_top_ups() -> None:
    now = T0 + 30 * DAY
    points = [
        Point(now - 9 * DAY, D(0), D(5_000)),
        Point(now - 8 * DAY, D(0), D(1_000)),  # the last at or before now − W: taken at now − W
        Point(now - 3 * DAY, D(0), D(800)),
        Point(now - 2 * DAY, D(0), D(1_800)),  # a top-up counts for nothing
        Point(now + 5, D(0), D(0)),  # after now: not in the series
    ]
    result = runway(points, D(1_500), now, critical=None)
    assert result is not None
    assert result.since == now - 7 * DAY
    assert result.fell == D(200 + 300)  # 1000→800, 1800→1500
    assert result.burn_per_day == D("71.43")  # 500 / 7
    assert result.critical_at is None
    assert result.zero_at == pytest.approx(now + 1_500 / (500 / (7 * DAY)), abs=1e-3)


def test_runway_rounds_half_even_and_handles_a_balance_at_or_below_its_critical() -> None:
    now = T0 + 10 * DAY
    for fell, burn in (("0.125", "0.12"), ("0.135", "0.14"), ("0.145", "0.14")):
        result = runway([Point(now - DAY, D(0), D(fell))], D(0), now, critical=D(5))
        assert result is not None
        assert result.burn_per_day == D(burn)
        assert result.zero_at == now  # A ≤ 0
        assert result.critical_at == now  # A ≤ critical


def test_runway_is_null_below_an_hour_without_a_fall_or_beyond_ten_years() -> None:
    now = T0 + 10 * DAY
    assert runway([], D(10), now, None) is None
    assert runway([Point(now - HOUR + 1, D(0), D(20))], D(10), now, None) is None
    assert runway([Point(now - HOUR, D(0), D(20))], D(10), now, None) is not None
    assert (
        runway([Point(now - DAY, D(0), D(5)), Point(now - 1, D(0), D(20))], D(20), now, None)
        is None
    )
    # 1 per day falls: 3650 left is exactly ten years (kept), 3650.01 is more (null)
    one_per_day = [Point(now - DAY, D(0), D(3_651))]
    assert runway(one_per_day, D(3_650), now, None) is not None
    assert runway([Point(now - DAY, D(0), D("3651.01"))], D("3650.01"), now, None) is None


# --- levels --------------------------------------------------------------------------------

RULE = Thresholds(warning=D(100_000), critical=D(50_000), hysteresis=None)


def test_instant_level() -> None:
    assert instant_level(RULE, D(50_000)) is Level.CRITICAL
    assert instant_level(RULE, D("50000.01")) is Level.WARNING
    assert instant_level(RULE, D(100_000)) is Level.WARNING
    assert instant_level(RULE, D("100000.01")) is Level.OK
    assert instant_level(Thresholds(None, None, None), D(0)) is Level.OK
    assert instant_level(Thresholds(None, D(5), None), D(6)) is Level.OK


def test_next_level_holds_until_above_threshold_plus_margin() -> None:
    # default margins: 1000 above warning, 500 above critical
    assert next_level(RULE, Level.WARNING, D(101_000)) is Level.WARNING
    assert next_level(RULE, Level.WARNING, D("101000.01")) is Level.OK
    assert next_level(RULE, Level.OK, D(100_500)) is Level.OK
    assert next_level(RULE, "CRITICAL", D(50_500)) is Level.CRITICAL
    assert next_level(RULE, "CRITICAL", D("50500.01")) is Level.WARNING
    assert next_level(RULE, "CRITICAL", D("101000.01")) is Level.OK
    assert next_level(RULE, "WARNING", D(10)) is Level.CRITICAL
    explicit = Thresholds(D(100), D(10), hysteresis=D(0))
    assert next_level(explicit, Level.WARNING, D("100.01")) is Level.OK
    assert next_level(explicit, Level.CRITICAL, D("10.01")) is Level.WARNING
    critical_only = Thresholds(None, D(10), None)  # a missing threshold never holds
    assert held(critical_only, Level.CRITICAL, D("10.1")) is Level.CRITICAL
    assert next_level(critical_only, Level.CRITICAL, D("10.11")) is Level.OK


# --- events --------------------------------------------------------------------------------


def test_flapping_around_warning_makes_exactly_one_warning_and_no_recovery() -> None:
    rule = {"b": Thresholds(warning=D(100_000), critical=None, hysteresis=None)}
    amounts = [100_001, 99_999] * 10
    outcome = alerts([read(T0 + i, a) for i, a in enumerate(amounts)], rule)
    assert outcome.events == [Event("b", EventType.WARNING, Level.OK, Level.WARNING, T0 + 1)]
    assert outcome.levels == {"b": Level.WARNING}


def test_warning_critical_then_partial_recovery() -> None:
    amounts = [120_000, 99_000, 40_000, 50_400, 60_000, 101_000]
    out = events([read(T0 + i, a) for i, a in enumerate(amounts)], {"b": RULE})
    assert [(e.type, e.previous_level, e.level, e.at) for e in out] == [
        (EventType.WARNING, Level.OK, Level.WARNING, T0 + 1),
        (EventType.CRITICAL, Level.WARNING, Level.CRITICAL, T0 + 2),
        (EventType.WARNING, Level.CRITICAL, Level.WARNING, T0 + 4),
    ]


def test_first_read_at_ok_makes_no_event_and_at_critical_comes_from_ok() -> None:
    assert events([read(T0, 200_000)], {"b": RULE}) == []
    out = events([read(T0, 1), read(T0 + 1, 500_000)], {"b": RULE})
    assert [(e.type, e.previous_level, e.level) for e in out] == [
        (EventType.CRITICAL, Level.OK, Level.CRITICAL),
        (EventType.RECOVERED, Level.CRITICAL, Level.OK),
    ]


def test_a_read_not_newer_than_the_last_applied_is_ignored() -> None:
    low, older_high, newer_high = (
        read(T0 + 100, 99_000),
        read(T0 + 50, 200_000),
        read(T0 + 150, 200_000),
    )
    outcome = alerts([low, older_high, low, newer_high], {"b": RULE})
    assert [(e.type, e.at) for e in outcome.events] == [
        (EventType.WARNING, T0 + 100),
        (EventType.RECOVERED, T0 + 150),
    ]
    assert outcome.ignored == [older_high, low]
    assert outcome.last_applied == {"b": T0 + 150}


def test_a_read_in_another_currency_moves_nothing() -> None:
    rule = {"b": Thresholds(D(100), None, None, currency="KES")}
    outcome = alerts([read(T0, 1, currency="UGX"), read(T0 - 1, 1)], rule)
    assert [e.level for e in outcome.events] == [Level.WARNING]  # the older KES read applies
    strict = alerts(
        [read(T0, 1, currency="UGX"), read(T0 - 1, 1)], rule, foreign_currency_advances=True
    )
    assert strict.events == []
    assert alerts([read(T0, 1, balance="other")], rule).events == []  # no rule, no event


# --- generated traces ----------------------------------------------------------------------


def ideal_reads(trace: Trace) -> list[Read]:
    """Every poll the provider answers is a fresh read at the poll's time."""
    return [
        Read(p.balance, p.at, p.poll.total, p.poll.available, p.currency)
        for p in trace.timeline()
        if p.poll.provider_up
    ]


def check_trace_is_well_formed(trace: Trace) -> None:
    names = {balance.name for balance in trace.balances}
    amounts = [(b.total, b.available) for b in trace.balances]
    for step in trace.steps:
        assert step.advance >= 0
        assert not set(step.kill) & set(step.restart)
        assert all(0 <= r < REPLICAS for r in (*step.kill, *step.restart))
        if step.action is Action.EVERY_CHANGE:
            assert step.every_seconds is not None and step.polls == () and step.balance is None
            continue
        assert step.balance in names and step.polls
        for poll in step.polls:
            assert poll.gap >= 1 and 0 <= poll.replica < REPLICAS
            assert poll.provider_up == (step.action is not Action.OUTAGE)
            amounts.append((poll.total, poll.available))
    for total, available in amounts:
        assert 0 <= available <= total <= MAX_AMOUNT
        assert available == available.quantize(CENT) and total == total.quantize(CENT)


@settings(
    derandomize=True,
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(traces())
def test_oracle_invariants_over_generated_traces(trace: Trace) -> None:
    check_trace_is_well_formed(trace)
    reads = ideal_reads(trace)
    every = trace.every_schedule()
    setting = schedule(every)
    kept = history(reads, every)

    # history: one point per bucket that holds a read, the greatest `at` of it, order-free
    buckets: dict[tuple[str, int, float], list[Read]] = defaultdict(list)
    for r in reads:
        buckets[(r.balance, *bucket_key(setting(r.at), r.at))].append(r)
    assert sum(len(points) for points in kept.values()) == len(buckets)
    for (balance, *_), members in buckets.items():
        last = max(members, key=lambda r: r.at)
        assert Point(last.at, last.total, last.available) in kept[balance]
    for points in kept.values():
        assert all(a.at < b.at for a, b in itertools.pairwise(points))
    shuffled = list(reads)
    random.Random(len(reads)).shuffle(shuffled)
    assert history(shuffled + reads[: len(reads) // 2], every) == kept

    # events: a consistent chain per balance, one per change of the stored level
    rules = trace.thresholds()
    outcome = alerts(reads, rules)
    chain: dict[str, Level] = dict.fromkeys(rules, Level.OK)
    last_at: dict[str, float] = {}
    for event in outcome.events:
        assert event.previous_level == chain[event.balance] != event.level
        assert (
            event.type
            == {
                Level.OK: EventType.RECOVERED,
                Level.WARNING: EventType.WARNING,
                Level.CRITICAL: EventType.CRITICAL,
            }[event.level]
        )
        assert event.at > last_at.get(event.balance, float("-inf"))
        chain[event.balance], last_at[event.balance] = event.level, event.at
    assert outcome.levels == chain
    # replaying reads again (duplicates, older ones) changes nothing
    assert alerts(reads + list(reversed(reads)), rules).events == outcome.events
    # the stored level is never less severe than where the amount stands, and differs only
    # inside the hysteresis band of the level it holds
    stored: dict[str, Level] = dict.fromkeys(rules, Level.OK)
    for r in reads:
        rule = rules[r.balance]
        if rule.currency not in (None, r.currency):
            continue
        stored[r.balance] = after = next_level(rule, stored[r.balance], r.available)
        now_level = instant_level(rule, r.available)
        assert after.severity >= now_level.severity
        if after != now_level:
            threshold = rule.critical if after is Level.CRITICAL else rule.warning
            assert threshold is not None
            assert threshold < r.available <= threshold + rule.margin(threshold)

    # runway and downsampling at the end of the trace
    end = trace.end()
    for balance, points in kept.items():
        current = points[-1].available
        result = runway(points, current, end, rules[balance].critical)
        if result is not None:
            assert result.burn_per_day >= 0 and result.fell > 0
            assert end - result.since >= HOUR
            assert result.zero_at >= end
            if result.critical_at is not None:
                assert end <= result.critical_at <= result.zero_at
        since = points[0].at
        slices = downsample(points, since, end, 3_600)
        assert {p.at for p in slices} <= {p.at for p in points}
        indices = [int((p.at - since) // 3_600) for p in slices]
        assert indices == sorted(set(indices))
        assert slices[-1] == points[-1]
