"""Alert levels with hysteresis: where a balance's alert stands after one more fresh read.

`Balance.level` says where the available amount stands now. An alert is stickier: a level
is entered at its threshold and left only once the amount is back above the threshold plus
a margin — the rule's `hysteresis`, by default 1 % of each threshold — so a balance that
wobbles around a threshold raises one alert, not one per read:

    held(L, a) = CRITICAL  if L = CRITICAL and a <= critical + margin
                 WARNING   if L in (WARNING, CRITICAL) and a <= warning + margin
                 OK        otherwise
    next = the more severe of level(a) and held(L, a)
"""

from __future__ import annotations

from decimal import Decimal

from gateway.domain import Level, Money, Thresholds

SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2}
DEFAULT_MARGIN = Decimal("0.01")  # of each threshold, when the rule sets no hysteresis


def margin(thresholds: Thresholds, threshold: Money) -> Decimal:
    """How far above `threshold` the amount must rise before its level clears."""
    if thresholds.hysteresis is not None:
        return thresholds.hysteresis.amount
    return abs(threshold.amount) * DEFAULT_MARGIN


def held(thresholds: Thresholds, stored: Level, available: Decimal) -> Level:
    """The most severe level at or below `stored` whose band still holds `available`."""
    critical, warning = thresholds.critical, thresholds.warning
    if (
        stored is Level.CRITICAL
        and critical is not None
        and available <= critical.amount + margin(thresholds, critical)
    ):
        return Level.CRITICAL
    if (
        stored is not Level.OK
        and warning is not None
        and available <= warning.amount + margin(thresholds, warning)
    ):
        return Level.WARNING
    return Level.OK


def next_level(thresholds: Thresholds, stored: Level, available: Money) -> Level | None:
    """The alert level after a read of `available`; None when it is in another currency
    than the thresholds (nothing to compare: the stored level stays)."""
    now = thresholds.level_of(available)
    if now is None:
        return None
    kept = held(thresholds, stored, available.amount)
    return now if SEVERITY[now] >= SEVERITY[kept] else kept
