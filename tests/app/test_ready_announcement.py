"""How `serve` says it is ready: the metrics listener, when `[metrics] listen` opens one, is
one more address — a banner line, or a field of the JSON `ready` event."""

from __future__ import annotations

import logging

import pytest

from gateway.cli import ready_event, ready_lines
from gateway.config.operations import Address
from tests.helpers import demo_settings, with_section

URL = "http://127.0.0.1:8000"


def test_no_listener_no_line() -> None:
    assert "[metrics] listen" not in ready_lines(demo_settings(), URL, None)


def test_the_listener_is_a_line_of_the_banner() -> None:
    settings = with_section(demo_settings(), "metrics", listen=Address("0.0.0.0", 9464))
    one = ready_lines(settings, URL, None).splitlines()
    assert "  metrics    http://0.0.0.0:9464/metrics   (no key: [metrics] listen)" in one
    many = ready_lines(settings, URL, None, workers=3).splitlines()
    assert (
        "  metrics    http://0.0.0.0:9464/metrics   "
        "(no key: [metrics] listen, every worker's, labelled worker)"
    ) in many
    ipv6 = with_section(demo_settings(), "metrics", listen=Address("::", 9464))
    assert "http://[::]:9464/metrics" in ready_lines(ipv6, URL, None)


def test_the_listener_is_a_field_of_the_ready_event(caplog: pytest.LogCaptureFixture) -> None:
    settings = with_section(demo_settings(), "metrics", listen=Address("0.0.0.0", 9464))
    with caplog.at_level(logging.INFO, "gateway.cli"):
        ready_event(settings, URL, None)()
        ready_event(demo_settings(), URL, None)()
    with_listener, without = (record.__dict__["fields"] for record in caplog.records)
    assert with_listener["metrics_listener"] == "http://0.0.0.0:9464/metrics"
    assert with_listener["metrics"] == f"{URL}/metrics"
    assert "metrics_listener" not in without
