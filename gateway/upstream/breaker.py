"""A circuit breaker per account, driven by the gateway's (injectable) clock.

closed ── N consecutive failures ──▶ open ── cool-down elapsed ──▶ half-open (one probe)
  ▲                                   ▲                               │
  └──────────── probe succeeds ───────┼───────── probe fails ─────────┘

Failures are 5xx, timeouts and connection failures; 4xx never count, and a 429 is neither
a failure nor a success. While open (and while the probe is out) calls fail fast.
"""

from __future__ import annotations

from enum import Enum

from gateway.clock import Clock, whole_seconds


class BreakerState(Enum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(self, failure_threshold: int, cooldown_seconds: float, clock: Clock) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probe_out or self._clock() - self._opened_at >= self.cooldown_seconds:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_after(self) -> int:
        """Whole seconds until a probe may be tried (0 when it may be now)."""
        if self._opened_at is None:
            return 0
        return whole_seconds(self._opened_at + self.cooldown_seconds - self._clock())

    def allow(self) -> bool:
        """May a call go out now? In half-open, only the one probe may."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_out = False

    def record_failure(self) -> None:
        if self._probe_out or self._opened_at is not None:
            self._opened_at = self._clock()  # the probe failed: another full cool-down
            self._probe_out = False
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()

    def record_neutral(self) -> None:
        """A 429 or a 4xx: the provider is up; a probe's slot is given back."""
        if self._probe_out:
            self.record_success()
