"""Several workers' expositions as one: every series kept with its value and labelled with
its worker, each family once (one HELP, one TYPE), and the result still Prometheus text."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.fleet_exposition import labelled
from gateway.observability.metrics import Metrics


def families(text: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """{family: {(sample name, sorted labels): value}}"""
    found: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(text):
        samples = found.setdefault(family.name, {})
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def two_workers() -> tuple[Metrics, Metrics]:
    first, second = Metrics(), Metrics()
    first.requests.labels("query", "none", "ok", "").inc(3)
    second.requests.labels("query", "none", "ok", "").inc(5)
    second.requests.labels("mutation", "none", "refused", "overloaded").inc()
    first.request_duration.labels("query", "ok").observe(0.02)
    second.request_duration.labels("query", "ok").observe(7.0)
    first.graphql_in_flight.set(2)
    return first, second


def test_every_series_keeps_its_value_and_gains_its_worker() -> None:
    first, second = two_workers()
    texts = {"0": first.render().decode(), "1": second.render().decode()}
    merged = families(labelled(texts).decode())
    for worker, text in texts.items():
        for family, samples in families(text).items():
            for (name, labels), value in samples.items():
                key = (name, tuple(sorted((*labels, ("worker", worker)))))
                assert merged[family][key] == value, (family, key)
    assert sum(len(samples) for samples in merged.values()) == sum(
        len(samples) for text in texts.values() for samples in families(text).values()
    )
    requests = merged["gateway_requests"]
    assert requests[("gateway_requests_total", (*ok_query(), ("worker", "0")))] == 3
    assert requests[("gateway_requests_total", (*ok_query(), ("worker", "1")))] == 5
    assert merged["gateway_graphql_in_flight"] == {
        ("gateway_graphql_in_flight", (("worker", "0"),)): 2.0,
        ("gateway_graphql_in_flight", (("worker", "1"),)): 0.0,
    }


def ok_query() -> tuple[tuple[str, str], ...]:
    return (
        ("operation_name", "none"),
        ("operation_type", "query"),
        ("outcome", "ok"),
        ("reason", ""),
    )


def test_each_family_is_written_once_with_its_help_and_type() -> None:
    first, second = two_workers()
    text = labelled({"0": first.render().decode(), "1": second.render().decode()}).decode()
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert len(types) == len({name for name, _ in types})
    assert ("gateway_request_duration_seconds", "histogram") in types
    assert ("gateway_requests_total", "counter") in types
    single = first.render().decode()
    assert set(re.findall(r"^# (?:HELP|TYPE) .*$", text, re.M)) == set(
        re.findall(r"^# (?:HELP|TYPE) .*$", single, re.M)
    )


def test_one_worker_alone_is_its_own_text_with_the_label() -> None:
    (first, _) = two_workers()
    single = first.render().decode()
    text = labelled({"0": single}).decode()
    assert re.sub(r',?worker="0"', "", text).replace("{}", "") == single


def test_no_worker_is_an_empty_exposition() -> None:
    assert labelled({}) == b""
