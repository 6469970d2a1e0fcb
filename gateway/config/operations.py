"""The operator's sections: `[logging]`, `[metrics]` and `[tracing]`.

Each is optional; defaults are what a production start wants (text logs at `info`, the
gateway's own access line, health checks left out of it, no traces).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config.checker import Checker

LEVELS = ("info", "debug", "warning", "error", "critical")
FORMATS = ("text", "json")
LOGGER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
OPERATION_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,99}$")  # a GraphQL Name, bounded


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "text"
    levels: tuple[tuple[str, str], ...] = ()  # (logger, level): finer than `level`
    access_log: bool = True  # the gateway's own access line, one per request
    health_checks: bool = False  # ... including /healthz and /readyz


@dataclass(frozen=True)
class MetricsSettings:
    # Operation names that get their own label value; every other name is "other", so a
    # client cannot grow the metrics by inventing names.
    operation_names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TracingSettings:
    enabled: bool = False  # the OTLP exporter itself is configured by the OTEL_* variables
    include_document: bool = False  # the GraphQL document, with its literal values removed


def parse_logging(check: Checker, raw: Mapping[str, Any]) -> LoggingSettings:
    where = "logging"
    check.unknown(raw, {"level", "format", "levels", "access_log", "health_checks"}, where)
    levels = check.table(raw, "levels", f"{where}.levels")
    fine: list[tuple[str, str]] = []
    for logger, level in sorted(levels.items()):
        if not LOGGER_NAME.match(logger) or level not in LEVELS:
            check.add(
                f"{where}.levels.{logger}",
                f"must map a logger name to one of {', '.join(LEVELS)}",
                '"gateway.upstream" = "debug"',
            )
            continue
        fine.append((logger, level))
    return LoggingSettings(
        level=check.choice(raw, "level", where, LEVELS),
        format=check.choice(raw, "format", where, FORMATS),
        levels=tuple(fine),
        access_log=check.boolean(raw, "access_log", where, True),
        health_checks=check.boolean(raw, "health_checks", where, False),
    )


def parse_metrics(check: Checker, raw: Mapping[str, Any]) -> MetricsSettings:
    check.unknown(raw, {"operation_names"}, "metrics")
    names = raw.get("operation_names", [])
    if not isinstance(names, list) or not all(
        isinstance(n, str) and OPERATION_NAME.match(n) for n in names
    ):
        check.add(
            "metrics.operation_names",
            "must be a list of GraphQL operation names",
            'operation_names = ["DashboardBalances"]',
        )
        names = []
    if len(names) > 100:
        check.add("metrics.operation_names", "at most 100 names", "list the ones you chart")
        names = []
    return MetricsSettings(operation_names=frozenset(names))


def parse_tracing(check: Checker, raw: Mapping[str, Any]) -> TracingSettings:
    check.unknown(raw, {"enabled", "include_document"}, "tracing")
    enabled = check.boolean(raw, "enabled", "tracing", False)
    if enabled and not installed("opentelemetry.sdk"):
        check.add(
            "tracing.enabled",
            "OpenTelemetry is not installed",
            "pip install 'balance-gateway[otel]', or set enabled = false",
        )
        enabled = False
    return TracingSettings(
        enabled=enabled,
        include_document=check.boolean(raw, "include_document", "tracing", False),
    )


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing
        return False
