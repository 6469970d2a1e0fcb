"""When a wave of connections has ended, the C allocator's free memory is given back
(`server/memory_release.py`): at least `release_memory_after_connections` closed since the
most that were open, the count held still for a tick, at most once a minute. The server's
own ticks feeding it, and the memory it gives back, are tested on the real server
(`test_slow_readers.py`) and in tests/compat/test_compat.py."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.observability.metrics import Metrics
from gateway.server.memory_release import MIN_INTERVAL_SECONDS, MemoryRelease
from gateway.server.serving import Server, listening_socket
from tests.helpers import FakeClock, demo_settings


class Releases:
    """The release function, recording the threads it ran in."""

    def __init__(self, result: bool = True) -> None:
        self.result = result
        self.threads: list[threading.Thread] = []

    def __call__(self) -> bool:
        self.threads.append(threading.current_thread())
        return self.result


async def seen(policy: MemoryRelease, *counts: int) -> None:
    """Ticks with these counts, each release run to its end before the next tick."""
    for count in counts:
        policy.seen(count)
        if policy.running is not None:
            await asyncio.wait([policy.running])
        await asyncio.sleep(0)  # its done-callback


def counted(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("gateway_memory_releases_total")


def policy_of(release: Releases, after: int = 64) -> tuple[MemoryRelease, Metrics, FakeClock]:
    metrics, clock = Metrics(), FakeClock()
    return MemoryRelease(after, metrics.memory_releases, release, clock), metrics, clock


async def test_a_wave_is_given_back_once_it_has_finished_closing_in_a_worker_thread() -> None:
    release = Releases()
    policy, metrics, clock = policy_of(release)
    await seen(policy, 2, 150, 300, 300, 120, 70, 0)  # still closing at each tick
    assert release.threads == []
    await seen(policy, 0)  # held still for a tick
    assert len(release.threads) == 1
    assert release.threads[0] is not threading.main_thread()
    assert counted(metrics) == 1
    clock.advance(MIN_INTERVAL_SECONDS)
    await seen(policy, 0, 3, 0, 0, 60, 60, 0, 0)  # nothing like a wave since
    assert len(release.threads) == 1


async def test_a_wave_above_long_lived_streams_counts_and_releases_are_a_minute_apart() -> None:
    release = Releases()
    policy, metrics, clock = policy_of(release)
    await seen(policy, 200, 200, 600, 600, 200, 200)  # 200 streams held throughout
    assert len(release.threads) == 1
    clock.advance(MIN_INTERVAL_SECONDS - 1)
    await seen(policy, 270, 270, 0, 0, 0)  # a burst that came and went: too soon
    assert len(release.threads) == 1
    clock.advance(1)
    await seen(policy, 0)
    assert (len(release.threads), counted(metrics)) == (2, 2)


async def test_a_steady_load_or_a_small_pool_is_never_released() -> None:
    release = Releases()
    policy, _, clock = policy_of(release)
    for _ in range(50):  # a keep-alive pool coming and going, a busy steady load
        await seen(policy, 16, 16, 0, 0, 16, 3, 3)
        clock.advance(MIN_INTERVAL_SECONDS)
    await seen(policy, 180, 200, 200, 150, 150, 190, 137, 137, 200)
    assert release.threads == []
    await seen(policy, 136, 136)
    assert len(release.threads) == 1


async def test_zero_turns_it_off_and_a_c_library_without_it_counts_nothing() -> None:
    off = Releases()
    await seen(policy_of(off, after=0)[0], 500, 500, 0, 0)
    assert off.threads == []
    musl = Releases(result=False)
    policy, metrics, _ = policy_of(musl)
    await seen(policy, 500, 500, 0, 0)
    assert (len(musl.threads), counted(metrics)) == (1, 0)


async def test_one_release_at_a_time_and_a_failing_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started, finish = threading.Event(), threading.Event()

    def slow() -> bool:
        started.set()
        finish.wait(10)
        raise OSError("no")

    metrics, clock = Metrics(), FakeClock()
    policy = MemoryRelease(64, metrics.memory_releases, slow, clock)
    seen_without_waiting(policy, 300, 300, 0, 0)
    running = policy.running
    assert running is not None
    await asyncio.to_thread(started.wait, 10)
    clock.advance(10 * MIN_INTERVAL_SECONDS)
    seen_without_waiting(policy, 400, 400, 0, 0)  # a second wave while it runs
    assert policy.running is running
    finish.set()
    with caplog.at_level(logging.WARNING, "gateway.memory"):
        await asyncio.wait([running])
        await asyncio.sleep(0)
    assert policy.running is None
    assert counted(metrics) == 0
    assert "giving memory back failed: OSError('no')" in caplog.text


def seen_without_waiting(policy: MemoryRelease, *counts: int) -> None:
    for count in counts:
        policy.seen(count)


def test_the_app_builds_it_from_its_setting() -> None:
    settings = demo_settings()
    for after in (7, 0):
        server = dataclasses.replace(settings.server, release_memory_after_connections=after)
        app = create_app(dataclasses.replace(settings, server=server))
        assert app.state.memory_release.after_connections == after


async def test_a_policy_that_fails_is_logged_once_and_the_server_ticks_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def seen(self, connections: int) -> None:
            raise RuntimeError("a bug")

    app = Starlette()
    app.state.memory_release = Broken()
    sock = listening_socket("127.0.0.1", 0)
    try:
        server = Server(app, sock)
        with caplog.at_level(logging.ERROR, "gateway.serving"):
            assert await server.on_tick(1) is False  # not stopping
            assert await server.on_tick(2) is False
    finally:
        sock.close()
    assert server.memory_release is None
    assert caplog.text.count("memory release stopped") == 1
