"""`bench/run.py`'s overload case, its pure parts: the percentile, the sustainable pick,
top-ups shed while dashboards were, a run's summary, several runs judged as one, and what
it reads from the gateway's metrics and log. (The run itself is `bench/run.py --only
overload`, never a test.)"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_percentile_is_a_measured_value_by_nearest_rank(bench: ModuleType) -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert bench.percentile(values, 0.5) == 50.0
    assert bench.percentile(values, 0.99) == 99.0
    assert bench.percentile(values[::-1], 1.0) == 100.0
    assert bench.percentile([7.0], 0.99) == 7.0
    assert bench.percentile([1.0, 2.0, 3.0], 0.99) == 3.0  # small samples: the largest
    assert bench.percentile([], 0.99) == 0.0


def row(connections: int, p99: float, accepted: int, shed: int = 0, **bad: int) -> dict[str, float]:
    return {
        "connections": connections,
        "accepted_p99_ms": p99,
        "accepted": accepted,
        "accepted_rps": accepted / 10,
        "shed": shed,
        "errors": bad.get("errors", 0),
        "other_statuses": bad.get("other_statuses", 0),
        "incomplete": bad.get("incomplete", 0),
    }


def test_the_sustainable_load_is_the_most_clients_answered_fast_with_next_to_nothing_shed(
    bench: ModuleType,
) -> None:
    ramp = [
        row(16, 100, 2000),
        row(32, 140, 3000),
        row(64, 200, 4000, shed=40),  # 1 % shed: still sustainable
        row(128, 240, 6000, shed=400),  # too much shed
        row(256, 400, 5000),  # too slow
    ]
    assert bench.sustainable(ramp)["connections"] == 64
    assert bench.sustainable([*ramp[:2], row(64, 200, 4000, shed=41)])["connections"] == 32
    for bad in ({"errors": 1}, {"other_statuses": 1}, {"incomplete": 1}):
        assert (
            bench.sustainable([row(16, 100, 2000), row(32, 100, 3000, **bad)])["connections"] == 16
        )
    assert bench.sustainable([row(16, 300, 2000)]) is None
    assert bench.sustainable([row(16, 0, 0)]) is None  # nothing answered is not sustainable


def test_a_top_up_shed_near_a_shed_dashboard_counts(bench: ModuleType) -> None:
    dashboards = [5.0, 1.0, 9.5]
    assert bench.shed_near([0.2, 3.0, 6.0, 10.5, 12.0], dashboards, 1.0) == 3  # 0.2, 6, 10.5
    assert bench.shed_near([3.0], [], 1.0) == 0
    assert bench.shed_near([], dashboards, 1.0) == 0


def test_a_shed_client_waits_its_retry_after_but_not_past_the_runs_end(
    bench: ModuleType,
) -> None:
    # The run's wall time is what the gateway's CPU share is taken over: a client told
    # 3 s, 1 s before the end, waits 1 s; one shed after the end does not wait at all.
    assert bench.pause_after(2.0, now=100.0, stop=110.0) == 2.0
    assert bench.pause_after(3.0, now=109.0, stop=110.0) == 1.0
    assert bench.pause_after(3.0, now=110.5, stop=110.0) == 0.0


def test_a_share_is_shown_rounded_down_so_a_missed_figure_never_reads_as_met(
    bench: ModuleType,
) -> None:
    assert bench.percent(0.898) == "89%"  # 90 % missed: not shown as 90 %
    assert bench.percent(0.9) == "90%"
    assert bench.percent(0.29) == "29%"  # not 28 (0.29 * 100 is 28.999...)
    assert bench.percent(1.094) == "109%"


def test_a_run_is_summarised_from_its_answers(bench: ModuleType) -> None:
    dashboards = [(200, 0.1 * i, 0.1) for i in range(1, 100)] + [
        (200, 10.4, 2.0),  # ended after the run: its latency counts, not its rate
        (503, 0.5, 0.3),  # in the start's herd: counts in shed_max_ms only
        (503, 2.0, 0.02),
        (503, 4.0, 0.07),
        (500, 5.0, 0.01),
        (0, 6.0, 30.0),  # no answer
    ]
    topups = [(200, 1.0, 0.2), (503, 4.5, 0.01), (503, 8.0, 0.01), (-200, 9.0, 0.1)]
    s = bench.summarise(dashboards, topups, 10.0)
    assert s["accepted"] == 100 and s["accepted_rps"] == pytest.approx(9.9)
    assert s["accepted_p50_ms"] == pytest.approx(100) and s["accepted_p99_ms"] == pytest.approx(100)
    assert (s["shed"], s["shed_over_50ms"]) == (3, 2)
    assert s["shed_max_after_1s_ms"] == pytest.approx(70)  # the other two began after 1 s
    assert s["shed_rps"] == pytest.approx(0.3) and s["shed_max_ms"] == pytest.approx(300)
    assert s["longest_ms"] == pytest.approx(30_000)
    assert (s["other_statuses"], s["errors"]) == (1, 1)
    assert (s["topups_accepted"], s["topups_shed"], s["topups_other"]) == (1, 2, 1)
    assert s["topups_shed_while_dashboards_shed"] == 1  # at 4.5 s, near the shed at 4.0 s
    assert s["topup_p99_ms"] == pytest.approx(200)


def test_admission_events_and_gauges_are_read_from_the_metrics_page(bench: ModuleType) -> None:
    page = (
        "# HELP gateway_admission_limit GraphQL requests this worker lets run at once now.\n"
        "# TYPE gateway_admission_limit gauge\n"
        "gateway_admission_limit 42.0\n"
        'gateway_admission_events_total{operation_type="query",outcome="admitted"} 10.0\n'
        'gateway_admission_events_total{operation_type="mutation",outcome="queued"} 2.0\n'
        'gateway_admission_events_created{operation_type="query",outcome="admitted"} 1.7e9\n'
    )
    samples = bench.metric_samples(page)
    assert samples["gateway_admission_limit"] == 42.0
    assert bench.admission_events(samples) == {
        "admission_query_admitted": 10.0,
        "admission_mutation_queued": 2.0,
    }


def test_the_gateway_log_is_read_for_errors_and_statuses(bench: ModuleType) -> None:
    log = "\n".join(
        [
            'INFO gateway.access "POST /graphql" 200 80.1 ms 900 B query -',
            'INFO gateway.access "POST /graphql" 503 3.0 ms 120 B',
            'INFO gateway.access "POST /graphql" 503 3.1 ms 120 B',
            "WARNING gateway.upstream slow answer",
            "ERROR gateway.server boom",
            "Traceback (most recent call last):",
        ]
    )
    assert bench.log_findings(log) == {
        "log_errors": 2,
        "log_warnings": 1,
        "status_200": 1,
        "status_503": 2,
        "log_accepted_p99_ms": 80.1,
        "log_accepted_max_ms": 80.1,
        "log_shed_p99_ms": 3.1,
        "log_shed_max_ms": 3.1,
    }


def overload_row(
    share_again: float, share: float, p99: float, shed_max: float, near: int
) -> dict[str, float]:
    return {
        "share_of_sustainable_again": share_again,
        "share_of_sustainable": share,
        "accepted_p99_ms": p99,
        "shed_max_ms": shed_max,
        "topups_shed_while_dashboards_shed": near,
    }


def test_repeated_runs_are_judged_by_their_median_share_and_their_worst_latencies(
    bench: ModuleType,
) -> None:
    one = overload_row(0.8, 0.85, 200, 20, 0)
    assert bench.repeated([one]) is one  # a single run as it is
    assert [ok for _, ok in bench.done_when(one)] == [True, True, False, True]

    runs = [
        overload_row(0.95, 0.93, 300, 12, 0),
        overload_row(0.70, 0.72, 900, 60, 0),  # a shed over 50 ms in this one
        overload_row(0.91, 0.94, 250, 15, 0),
    ]
    three = bench.repeated(runs)
    assert three["share_of_sustainable_again"] == 0.91  # the median run's own figures
    assert three["share_of_sustainable"] == 0.94 and three["accepted_p99_ms"] == 250
    assert three["shares_again"] == [0.95, 0.70, 0.91] and three["shares"] == [0.93, 0.72, 0.94]
    assert (three["worst_accepted_p99_ms"], three["worst_shed_max_ms"]) == (900, 60)
    verdicts = dict(bench.done_when(three))
    assert verdicts["accepted ≥ 90% of the sustainable rate"]  # the median run: 94 %
    assert not verdicts["every shed ≤ 50 ms"]  # every run's sheds count
    assert verdicts["p99 accepted ≤ 1000 ms"]

    runs[1]["topups_shed_while_dashboards_shed"] = 1
    two = bench.repeated(runs[1:])  # even: the lower middle one, a run that happened
    assert two["share_of_sustainable_again"] == 0.70
    assert not dict(bench.done_when(two))["no top-up shed while dashboards are"]
