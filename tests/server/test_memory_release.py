"""When a wave of connections has ended, the C allocator's free memory is given back, once
(`server/memory_release.py`): the peak since the last release, fallen by at least
`release_memory_after_connections` and to a quarter. The server's own ticks feed it and
the memory it gives back are tested on the real server (`test_slow_readers.py`) and in
tests/compat/test_compat.py."""

from __future__ import annotations

import asyncio
import threading

from gateway.observability.metrics import Metrics
from gateway.server.memory_release import MemoryRelease


class Releases:
    """The release function, recording the threads it ran in."""

    def __init__(self, result: bool = True) -> None:
        self.result = result
        self.threads: list[threading.Thread] = []

    def __call__(self) -> bool:
        self.threads.append(threading.current_thread())
        return self.result


async def seen(policy: MemoryRelease, *counts: int) -> None:
    for count in counts:
        policy.seen(count)
        if policy.running is not None:
            await policy.running
        await asyncio.sleep(0)  # its done-callback


def counted(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("gateway_memory_releases_total")


async def test_a_wave_that_ends_is_given_back_once_in_a_worker_thread() -> None:
    metrics, release = Metrics(), Releases()
    policy = MemoryRelease(64, metrics.memory_releases, release)
    await seen(policy, 2, 150, 300, 120, 76, 74, 30, 12, 11, 20, 12)
    assert len(release.threads) == 1  # at 74: 226 closed, under a quarter of 300 left
    assert release.threads[0] is not threading.main_thread()
    assert counted(metrics) == 1
    await seen(policy, 10)  # 64 more of them closed since (counted from 74)
    assert (len(release.threads), counted(metrics)) == (2, 2)
    await seen(policy, 0, 3, 0, 60, 0)
    assert len(release.threads) == 2


async def test_a_steady_load_or_a_small_pool_is_never_released() -> None:
    release = Releases()
    policy = MemoryRelease(64, Metrics().memory_releases, release)
    await seen(policy, *[16, 0, 16, 3] * 50)  # a keep-alive pool coming and going
    await seen(policy, 200, 150, 120, 101, 140, 200, 110)  # busy: never under a quarter
    assert release.threads == []
    await seen(policy, 50)
    assert len(release.threads) == 1


async def test_zero_turns_it_off_and_a_c_library_without_it_counts_nothing() -> None:
    off = Releases()
    await seen(MemoryRelease(0, Metrics().memory_releases, off), 500, 0)
    assert off.threads == []
    metrics, musl = Metrics(), Releases(result=False)
    await seen(MemoryRelease(64, metrics.memory_releases, musl), 500, 0)
    assert (len(musl.threads), counted(metrics)) == (1, 0)


async def test_one_release_at_a_time() -> None:
    started, finish = threading.Event(), threading.Event()

    def slow() -> bool:
        started.set()
        finish.wait(10)
        return True

    metrics = Metrics()
    policy = MemoryRelease(64, metrics.memory_releases, slow)
    policy.seen(300)
    policy.seen(0)
    running = policy.running
    assert running is not None
    await asyncio.to_thread(started.wait, 10)
    policy.seen(400)
    policy.seen(0)  # a second wave while the first release runs: left to the next
    assert policy.running is running
    finish.set()
    await running
    await asyncio.sleep(0)
    assert counted(metrics) == 1
