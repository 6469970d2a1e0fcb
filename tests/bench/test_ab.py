"""`bench/ab.py`, two commits side by side, its pure parts: the alternating order and the
medians per commit. (The run itself takes minutes and is never a test.)"""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.bench.scripts import bench_script


@pytest.fixture(scope="module")
def ab() -> ModuleType:
    return bench_script("ab")


def test_rounds_alternate_which_commit_goes_first(ab: ModuleType) -> None:
    assert ab.order(4) == [("A", "B"), ("B", "A"), ("A", "B"), ("B", "A")]


def test_each_commits_figures_are_the_medians_of_its_rounds(ab: ModuleType) -> None:
    rows = [
        {"side": side, "connections": 16, "rps": 100.0, "gw_cpu_ms": 1.0}
        | {"p50_ms": p50, "p99_ms": p50 + 5}  # the figures that differ by round
        for side, p50 in [("A", 60.0), ("B", 56.0), ("B", 57.0), ("A", 59.0), ("A", 70.0)]
    ]
    rows.append(
        {
            "side": "A",
            "connections": 1,
            "rps": 9.0,
            "p50_ms": 55.0,
            "p99_ms": 58.0,
            "gw_cpu_ms": 7.0,
        }
    )
    table = ab.medians(rows)
    assert table["A", 16] == {"rps": 100.0, "p50_ms": 60.0, "p99_ms": 65.0, "gw_cpu_ms": 1.0}
    assert table["B", 16]["p50_ms"] == 56.5  # two rounds: their mean
    assert table["A", 1]["gw_cpu_ms"] == 7.0
