"""Admission control: a busy gateway sheds load at once instead of queueing it.

What hurts a busy worker is not how many requests it holds but how long ready work waits
for its one CPU: a request waiting on an upstream costs nothing, while a few hundred
requests that all want the CPU turn each other's 5 ms into seconds. So the limit on GraphQL
requests running at once follows that wait, measured where it happens:

- `LoopDelayProbe` asks the event loop to wake it every `PROBE_SECONDS` and measures how
  late it woke: the time ready work waits for the CPU (the scheduling delay) — or, when
  longer, how long the oldest read's result has waited to be handed to its request
  (`cache/handout.py` wakes them a few per turn). The limit follows the median of the
  last `WINDOW` of these: a queue that persists, not a burst.
- `AdaptiveLimit` is a gradient limiter (in the spirit of TCP Vegas, Netflix's Gradient2,
  Envoy's adaptive concurrency) fed those delays: above the target, the limit shrinks in
  proportion (target / delay, at most halving); at or below it, and only while the limit
  held a request back, it grows by its square root. Each step is smoothed, and the
  limit stays between a floor and the ceiling `max_concurrent_requests`.
- `Admission` is the gate: a query is admitted while fewer than the limit minus a share
  reserved for mutations run; a mutation while fewer than the limit run, or fewer
  mutations than that share — so dashboards can never take the slots top-ups need, even
  when the limit has just shrunk under the queries already running. A request that finds
  no room is shed at once — or, with `wait_seconds` above 0 (opt-in), waits (at most
  `max_waiting` of them, each at most `wait_seconds` and never past its deadline,
  mutations first, then in arrival order) and is shed when its wait ends:
  `Overloaded`, answered as HTTP 503 with `Retry-After` — 1, 2 or 3 s at random, so the
  clients shed together do not all come back together. Health, readiness and metrics
  never pass the gate.

"fixed" admission is the ceiling alone: no probe, the limit never moves.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Literal

from gateway.errors import Overloaded
from gateway.observability.metrics import Metrics

RETRY_AFTER_SECONDS = (1, 3)  # a shed client is told one of these, at random
BUSY = "The gateway is busy: retry shortly."
PROBE_SECONDS = 0.05  # how often the loop's delay is measured (and the limit moved)
SMOOTHING = 0.2  # how far one measurement moves the limit towards what it says
WINDOW = 8  # measurements whose median the limit follows (0.4 s)
Kind = Literal["query", "mutation"]
KINDS: tuple[Kind, ...] = ("query", "mutation")
Sleep = Callable[[float], Awaitable[None]]


class AdaptiveLimit:
    """The concurrency limit as a pure function of the delays it is fed (`observe`)."""

    def __init__(self, ceiling: int, floor: int, target_delay: float) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.target_delay = target_delay
        # A worker starts at half its ceiling: a burst that finds it cold (a hundred
        # dashboards at once) is served, a herd of several hundred is not admitted whole
        # before anything is measured; from there it follows the loop.
        self._estimate = float(max(self.floor, ceiling // 2))
        self._recent: deque[float] = deque(maxlen=WINDOW)

    @property
    def limit(self) -> int:
        return max(self.floor, min(self.ceiling, int(self._estimate)))

    def observe(self, measured: float, held_back: bool) -> int:
        """One measurement: how late the loop woke the probe (seconds), and whether the
        limit held a request back (it found no room) since the last one. Returns the new
        limit. The delay it acts on is the median of the last `WINDOW` measurements: a
        loop late now and then (upstream answers arriving together, a collection) is not
        a saturated one."""
        self._recent.append(measured)
        delay = statistics.median(self._recent)
        estimate = self._estimate
        if delay > self.target_delay:
            wanted = estimate * max(0.5, self.target_delay / delay)
        elif held_back:  # the limit is what holds requests back
            wanted = estimate + math.sqrt(estimate)
        else:
            return self.limit  # idle or lightly loaded: nothing learnt about the limit
        estimate += SMOOTHING * (wanted - estimate)
        self._estimate = max(float(self.floor), min(float(self.ceiling), estimate))
        return self.limit


class Admission:
    def __init__(
        self,
        max_active: int,
        max_waiting: int,
        wait_seconds: float,
        metrics: Metrics,
        *,
        adaptive: AdaptiveLimit | None = None,
        reserved_for_mutations: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        retry_after: Callable[[], int] = lambda: random.randint(*RETRY_AFTER_SECONDS),  # noqa: S311 (spreading retries, not a secret)
    ) -> None:
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self.adaptive = adaptive
        self.reserved_share = reserved_for_mutations
        self.monotonic = monotonic
        self.retry_after = retry_after
        self._ceiling = max_active
        self.running = 0
        self.mutations = 0  # of those running
        self._held_back = False  # a request found no room since the last measurement
        self._waiters: dict[Kind, deque[asyncio.Future[None]]] = {
            "mutation": deque(),
            "query": deque(),
        }
        self._metrics = metrics
        self._admitted = {k: metrics.admission_events.labels(k, "admitted") for k in KINDS}
        metrics.admission_limit.set(self.limit)

    @property
    def limit(self) -> int:
        return self._ceiling if self.adaptive is None else self.adaptive.limit

    def _reserved(self, limit: int) -> int:
        """Slots only mutations may use: a share of `limit` (the current one, read once by
        the caller), at least one (0: none)."""
        if not self.reserved_share:
            return 0
        return max(1, round(limit * self.reserved_share))

    def fits(self, kind: Kind, arriving: int = 0) -> bool:
        """Whether a request of `kind` may start now (behind `arriving` more that will
        ask first)."""
        limit, running = self.limit, self.running + arriving
        if kind == "mutation":
            return running < limit or self.mutations < self._reserved(limit)
        return running < max(1, limit - self._reserved(limit))

    def roomy(self) -> bool:
        """Whether at most half the limit is running: room enough for a request to send
        its upstream calls in the turn it runs (`_compat/asyncio.started`) rather than
        after the others queued in that turn. Near the limit every admitted request's
        first step would lengthen the loop's turns, which the probe reads as a late loop:
        the adaptive limit would fall (bench/README.md)."""
        return self.running <= self.limit // 2

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def observe(self, delay: float) -> None:
        """The probe's measurement: the limit moves, and waiters it now admits go on."""
        self._metrics.loop_delay.set(delay)
        if self.adaptive is None:
            return
        limit = self.adaptive.observe(delay, self._held_back)
        self._held_back = False
        self._metrics.admission_limit.set(limit)
        self._wake()

    async def enter(self, kind: Kind, deadline_seconds: float) -> bool:
        """Take a slot (True; `release(kind)` it later), or shed (False) when none comes within
        `min(wait_seconds, deadline_seconds)` or no one more may wait."""
        if self.try_enter(kind):
            return True
        if self._no_place_to_wait():
            self.shed(kind)
            return False
        events = self._metrics.admission_events
        self._held_back = True
        started = self.monotonic()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[kind].append(turn)
        try:
            async with asyncio.timeout(min(self.wait_seconds, deadline_seconds)):
                await turn
        except TimeoutError:
            if not turn.done() or turn.cancelled():  # handed a slot just as time ran out
                self._forget(kind, turn)
                events.labels(kind, "timed_out").inc()
                return False
        except BaseException:  # cancelled (the client left): give back what was handed
            if turn.done() and not turn.cancelled():
                self.release(kind)
            self._forget(kind, turn)
            raise
        events.labels(kind, "queued").inc()
        self._metrics.admission_queue_seconds.observe(self.monotonic() - started)
        return True

    def try_enter(self, kind: Kind) -> bool:
        """Take a slot if one is free now and no one waits ahead (True; `release(kind)` it
        later); False leaves everything as it was — `enter` then decides to wait or shed."""
        if self.passes(kind):
            self._take(kind)
            return True
        return False

    def has_room(self, kind: Kind) -> bool:
        """Whether `try_enter(kind)` would take a slot now."""
        return self.fits(kind) and not self._ahead(kind)

    def passes(self, kind: Kind) -> bool:
        """For a request answered at once (a stored answer): admitted — counted as one that
        took a slot and gave it back in the same step — when there is room now (True);
        else nothing done (False: the caller sheds it, or lets it wait)."""
        if not self.has_room(kind):
            return False
        self._admitted[kind].inc()
        self._metrics.admission_queue_seconds.observe(0.0)
        return True

    def full(self, kind: Kind, arriving: int = 0) -> bool:
        """Whether a request of `kind` arriving now, behind `arriving` more that will ask
        first, would be shed at once: no room for it, and no waiting (or no one more may
        wait)."""
        if self.fits(kind, arriving) and not self._ahead(kind):
            return False
        return self._no_place_to_wait()

    def may_wait(self) -> bool:
        """Whether a request without room now would wait for one (else it is shed)."""
        return not self._no_place_to_wait()

    def _no_place_to_wait(self) -> bool:
        return self.wait_seconds <= 0 or self.waiting >= self.max_waiting

    def shed(self, kind: Kind) -> None:
        """A request of `kind` shed at once (by `enter`, or before it when `full`): counted,
        and the limit learns it held one back."""
        self._held_back = True
        self._metrics.admission_events.labels(kind, "rejected").inc()

    def release(self, kind: Kind) -> None:
        self.running -= 1
        if kind == "mutation":
            self.mutations -= 1
        self._wake()

    async def take(self, kind: Kind, deadline_seconds: float) -> None:
        """`enter`, raising `Overloaded` when shed."""
        if not await self.enter(kind, deadline_seconds):
            raise Overloaded(BUSY, retry_after_seconds=self.retry_after())

    def _ahead(self, kind: Kind) -> bool:
        """Someone who came first waits for the same room (mutations go before queries)."""
        return bool(self._waiters["mutation"] or (kind == "query" and self._waiters["query"]))

    def _take(self, kind: Kind) -> None:
        self.running += 1
        if kind == "mutation":
            self.mutations += 1

    def _forget(self, kind: Kind, turn: asyncio.Future[None]) -> None:
        with suppress(ValueError):
            self._waiters[kind].remove(turn)

    def _wake(self) -> None:
        """Hand free slots to waiters: mutations first, each kind in arrival order."""
        for kind in ("mutation", "query"):
            waiters = self._waiters[kind]
            while waiters and self.fits(kind):
                turn = waiters.popleft()
                if turn.done():  # its wait ended (timed out, cancelled) meanwhile
                    continue
                self._take(kind)
                turn.set_result(None)


class LoopDelayProbe:
    """Measures how late the event loop runs a timer, every `interval` seconds, and hands
    each measurement to `observe` (`Admission.observe`) — until cancelled. Results
    waiting to be handed to their requests (`backlog`: `cache/handout.Handout`, how long
    the oldest has waited) are ready work waiting for the CPU too: the larger counts."""

    def __init__(
        self,
        observe: Callable[[float], None],
        backlog: Callable[[], float] = lambda: 0.0,
        interval: float = PROBE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.observe = observe
        self.backlog = backlog
        self.interval = interval
        self.monotonic = monotonic
        self.sleep = sleep

    async def run(self) -> None:
        while True:
            started = self.monotonic()
            await self.sleep(self.interval)
            late = self.monotonic() - started - self.interval
            self.observe(max(0.0, late, self.backlog()))
