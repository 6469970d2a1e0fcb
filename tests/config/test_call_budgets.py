"""The quota arithmetic `check-config` does: one balance read per account per fresh window
per reader — each process with `memory://`, the whole fleet with a shared Redis — against
the account's `calls_per_day`; a warning names the account, the reads, the budget and the
`fresh_seconds` that fits, and leaves the exit status 0."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main as cli_main
from gateway.config.accounts import AccountConfig
from gateway.config.call_budgets import (
    fitting_fresh_seconds,
    over_budget,
    reads_a_day,
    shared_cache,
)
from tests.helpers import DEMO_CONFIG, demo_accounts, demo_text

MEMORY, REDIS = "memory://", "redis://redis:6379/0"


def muda(**changes: Any) -> AccountConfig:
    """The demo's Muda account (Muda documents 5,000 calls a day), changed."""
    return dataclasses.replace(demo_accounts()["muda-ug"], **changes)


def test_the_arithmetic() -> None:
    assert reads_a_day(15, 1) == 5760
    assert reads_a_day(15, 3) == 17280
    assert reads_a_day(20, 1) == 4320
    assert reads_a_day(0, 1) == float("inf")
    assert fitting_fresh_seconds(5000, 1) == 18  # 17.28 s, in whole seconds
    assert fitting_fresh_seconds(5000, 3) == 52
    assert reads_a_day(fitting_fresh_seconds(5000, 7), 7) <= 5000
    assert reads_a_day(fitting_fresh_seconds(5000, 7) - 1, 7) > 5000
    assert shared_cache(REDIS) and shared_cache("rediss://r:6380/0")
    assert not shared_cache(MEMORY)


def test_muda_read_every_15_seconds_passes_its_5000_a_day() -> None:
    (warning,) = over_budget([muda(fresh_seconds=15.0)], MEMORY, 1)
    assert warning.location == "accounts.muda-ug.fresh_seconds"
    assert warning.message == (
        "5,760 balance reads a day (one per 15 s in its one process) exceed its budget "
        "of 5,000 calls a day (calls_per_day)"
    )
    assert warning.fix == "fresh_seconds = 18 or more in [accounts.muda-ug]"


def test_with_memory_every_process_reads_on_its_own() -> None:
    assert over_budget([muda(fresh_seconds=20.0)], MEMORY, 1) == []  # 4,320 a day
    (warning,) = over_budget([muda(fresh_seconds=20.0)], MEMORY, 2)  # 8,640 a day
    assert warning.message.startswith(
        "8,640 balance reads a day (one per 20 s in each of 2 processes: each has its own "
        "memory:// cache)"
    )
    assert warning.fix == (
        "fresh_seconds = 35 or more in [accounts.muda-ug]; or share the cache, "
        '[cache] url = "redis://…" (one read per window for the fleet)'
    )


def test_with_redis_the_fleet_reads_once_per_window_whatever_its_size() -> None:
    assert over_budget([muda(fresh_seconds=20.0)], REDIS, 40) == []
    (warning,) = over_budget([muda(fresh_seconds=10.0)], REDIS, 40)
    assert "8,640 balance reads a day (one per 10 s for the whole fleet: its cache is shared)" in (
        warning.message
    )
    assert warning.fix == "fresh_seconds = 18 or more in [accounts.muda-ug]"


def test_each_account_is_judged_on_its_own_fresh_seconds_and_budget() -> None:
    accounts = demo_accounts()
    no_budget = dataclasses.replace(accounts["magma"], fresh_seconds=1.0)  # none documented
    tight = dataclasses.replace(accounts["paymob-eg"], fresh_seconds=60.0, calls_per_day=1000)
    loose = muda(fresh_seconds=40.0)  # 4,320 a day
    exact = dataclasses.replace(accounts["ourvoice-sn"], fresh_seconds=172.8, calls_per_day=1000)
    warnings = over_budget([no_budget, tight, loose, exact], MEMORY, 2)  # exact: 1,000 a day
    assert [w.location for w in warnings] == ["accounts.paymob-eg.fresh_seconds"]
    assert "2,880 balance reads a day" in warnings[0].message
    assert warnings[0].fix.startswith("fresh_seconds = 173 or more in [accounts.paymob-eg]")


def test_fresh_seconds_zero_is_bounded_by_nothing() -> None:
    (warning,) = over_budget([muda(fresh_seconds=0.0)], REDIS, 1)
    assert warning.message == (
        "fresh_seconds = 0 reads the balance from the upstream on every request (for the "
        "whole fleet: its cache is shared): nothing keeps that under its budget of 5,000 "
        "calls a day (calls_per_day)"
    )
    assert warning.fix == "fresh_seconds = 18 or more in [accounts.muda-ug]"


def test_a_budget_no_fresh_seconds_can_meet_asks_for_fewer_processes_or_redis() -> None:
    (warning,) = over_budget([muda(fresh_seconds=60.0, calls_per_day=2)], MEMORY, 3)
    assert warning.fix == (
        'run fewer processes, or share the cache, [cache] url = "redis://…" '
        "(one read per window for the fleet)"
    )


def config(tmp_path: Path, fresh: str, tables: str = "") -> str:
    """The demo config with its Muda account's `fresh_seconds` line as `fresh`, and more
    `tables` at its end."""
    text = demo_text()
    (line,) = [line for line in text.splitlines() if line.startswith("fresh_seconds = 20")]
    path = tmp_path / "demo.toml"
    path.write_text(text.replace(line, fresh) + tables)
    return str(path)


def test_check_config_warns_on_stderr_and_still_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "fresh_seconds = 15")
    assert cli_main(["check-config", "--config", path]) == 0
    shown = capsys.readouterr()
    assert shown.out.startswith("configuration OK: profile development")
    assert shown.err == (
        "warning: accounts.muda-ug.fresh_seconds: 5,760 balance reads a day (one per 15 s "
        "in its one process) exceed its budget of 5,000 calls a day (calls_per_day) "
        "(fix: fresh_seconds = 18 or more in [accounts.muda-ug])\n"
    )


def test_check_config_counts_the_processes_it_is_told_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["check-config", "--config", str(DEMO_CONFIG)]) == 0
    assert capsys.readouterr().err == ""  # the demo's Muda: one read per 20 s, 4,320 a day
    assert cli_main(["check-config", "--config", str(DEMO_CONFIG), "--replicas", "2"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: accounts.muda-ug.fresh_seconds: 8,640 balance reads a day")
    assert "fresh_seconds = 35 or more" in err
    shared = config(tmp_path, "fresh_seconds = 20", '[cache]\nurl = "redis://r:6379/0"\n')
    assert cli_main(["check-config", "--config", shared, "--replicas", "12"]) == 0
    assert capsys.readouterr().err == ""  # Redis: one read per window, whatever the fleet


def test_check_config_counts_the_workers_the_file_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`[server] workers` are processes too: each replica runs that many, each with its own
    memory:// cache."""
    text = demo_text().replace("[server]\n", "[server]\nworkers = 4\n", 1)
    path = tmp_path / "workers.toml"
    path.write_text(text)
    assert cli_main(["check-config", "--config", str(path), "--replicas", "2"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(
        "warning: accounts.muda-ug.fresh_seconds: 34,560 balance reads a day (one per 20 s "
        "in each of 8 processes"
    )


def test_a_budget_of_one_call_is_said_so() -> None:
    (warning,) = over_budget([muda(fresh_seconds=60.0, calls_per_day=1)], MEMORY, 1)
    assert "its budget of 1 call a day" in warning.message


@pytest.mark.parametrize("value", ["0", "-1", "two", "10001", "1.5", "\u0663"])
def test_replicas_is_a_whole_number(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli_main(["check-config", "--config", str(DEMO_CONFIG), "--replicas", value])
    assert done.value.code == 2
    assert "--replicas: a whole number from 1 to 10000" in capsys.readouterr().err
