"""Several processes' `/metrics` as one exposition, each series labelled with its process.

`serve --workers N` runs N processes, each with its own registry (`metrics.py`). One
scrape of the `[metrics] listen` listener must see all of them, yet no two may be added
up here: a gauge of one worker's in-flight requests summed is a fleet figure, but a
balance gauge summed is nonsense, and only the query knows which it wants. So each
worker's series keep their values and gain `worker="<slot>"` (a stable slot number, 0 to
N−1, not a PID: a replaced worker continues its slot's series, its counters restarting
from zero as Prometheus expects of a restarted process), and a family that several
workers report is written once, with all their samples under its one HELP and TYPE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

WORKER_LABEL = "worker"


def labelled(expositions: Mapping[str, str], label: str = WORKER_LABEL) -> bytes:
    """`{"0": text, "1": text, …}` (Prometheus text, by worker) → one Prometheus text in
    which every sample carries `label` = its worker."""
    families: dict[str, Metric] = {}
    for value, text in expositions.items():
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type, family.unit)
                families[family.name] = merged
            for s in family.samples:
                labels = {**s.labels, label: value}
                merged.add_sample(s.name, labels, s.value, s.timestamp, s.exemplar)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)


class _Families:
    """A collector that hands out families already made (a registry renders collectors)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families
