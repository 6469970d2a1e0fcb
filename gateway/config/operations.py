"""The operator's sections: `[logging]`, `[metrics]` and `[tracing]`.

Each is optional; defaults are what a production start wants (text logs at `info`, the
gateway's own access line, health checks left out of it, `/metrics` on the main port
only, no traces).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from gateway.config.checker import Checker

LEVELS = ("info", "debug", "warning", "error", "critical")
FORMATS = ("text", "json")
LOGGER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
OPERATION_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,99}$")  # a GraphQL Name, bounded
# `[metrics] listen`: "HOST:PORT", an IPv6 host in brackets ("[::]:9464"); HOST an IPv4
# address or a host name (RFC 1123 labels), never empty (an empty one would mean "every
# address" without saying so).
LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]{1,5})")
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
LISTEN_EXAMPLE = 'listen = "0.0.0.0:9464"'


class Address(NamedTuple):
    """Where a listener binds."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


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
    # `/metrics` also served without a key on a listener of its own (None: not at all),
    # for a scraper inside the cluster; the main port's `/metrics` keeps its scope.
    listen: Address | None = None


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
    check.unknown(raw, {"operation_names", "listen"}, "metrics")
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
    return MetricsSettings(operation_names=frozenset(names), listen=_listen(check, raw))


def _listen(check: Checker, raw: Mapping[str, Any]) -> Address | None:
    if "listen" not in raw:
        return None
    value = raw["listen"]
    address = listen_address(value) if isinstance(value, str) else None
    if address is None:
        check.add(
            "metrics.listen",
            f'must be "HOST:PORT" with a port from 1 to 65535, not {value!r}',
            f'{LISTEN_EXAMPLE} (an IPv6 host in brackets: "[::]:9464")',
        )
    return address


def listen_address(text: str) -> Address | None:
    """`"0.0.0.0:9464"` → Address("0.0.0.0", 9464); None when it is not HOST:PORT."""
    found = LISTEN.fullmatch(text)
    if found is None or not 1 <= int(found["port"]) <= 65535:
        return None
    host = found["v6"] or found["host"]
    if not (_ipv6(host) if found["v6"] else _ipv4_or_name(host)):
        return None
    return Address(host, int(found["port"]))


def _ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _ipv4_or_name(host: str) -> bool:
    """An IPv4 address, or a host name whose last label is not all digits (so `999.1.1.1`
    is a wrong address, not a name)."""
    labels = host.split(".")
    if labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return len(host) <= 253 and all(LABEL.fullmatch(label) for label in labels)


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
