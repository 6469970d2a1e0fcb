"""`[metrics] listen`: off unless set; "HOST:PORT" (an IPv6 host in brackets), and anything
else a configuration problem at `metrics.listen` with the form to write."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config.operations import Address, listen_address
from gateway.errors import ConfigError
from tests.helpers import parse_settings

DEMO_ACCOUNT = {"provider": "ourvoice", "base_url": "https://x", "api_key": "inline-key"}


def settings_with(metrics: dict[str, Any]) -> Any:
    data = {
        "server": {"profile": "development"},
        "metrics": metrics,
        "accounts": {"ov": DEMO_ACCOUNT},
    }
    return parse_settings(data, {})


def test_the_listener_is_off_unless_set() -> None:
    assert settings_with({}).metrics.listen is None


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:9464", Address("0.0.0.0", 9464)),
        ("127.0.0.1:1", Address("127.0.0.1", 1)),
        ("localhost:65535", Address("localhost", 65535)),
        ("metrics.internal:9464", Address("metrics.internal", 9464)),
        ("[::]:9464", Address("::", 9464)),
        ("[::1]:9464", Address("::1", 9464)),
    ],
)
def test_host_and_port_are_read(text: str, address: Address) -> None:
    assert settings_with({"listen": text}).metrics.listen == address
    assert str(address) == text  # as the banner and errors show it


@pytest.mark.parametrize(
    "value",
    [
        9464,  # a port alone: which addresses was meant?
        "9464",
        ":9464",
        "0.0.0.0",
        "0.0.0.0:",
        "0.0.0.0:0",
        "0.0.0.0:65536",
        "0.0.0.0:99999",
        "0.0.0.0:94a4",
        "::9464",  # IPv6 without brackets
        "[::]9464",
        "http://0.0.0.0:9464",
        "0.0.0.0:9464/metrics",
        "a host:9464",
        "-:9464",  # not a host name
        "bad-.example:9464",
        "999.1.1.1:9464",  # all digits: an IPv4 address, and a wrong one
        "[1.2.3.4]:9464",  # brackets are for IPv6
        "[:]:9464",
        "[::g]:9464",
        "",
        True,
        ["0.0.0.0:9464"],
    ],
)
def test_anything_else_is_a_problem_naming_the_form(value: object) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_with({"listen": value})
    (problem,) = raised.value.problems
    assert problem.location == "metrics.listen"
    assert "HOST:PORT" in problem.message and "65535" in problem.message
    assert 'listen = "0.0.0.0:9464"' in problem.fix


def test_a_listen_problem_comes_with_the_others() -> None:
    data = {
        "server": {"profile": "development"},
        "metrics": {"listen": "9464", "operation_names": "Dashboard", "port": 9464},
        "accounts": {"ov": DEMO_ACCOUNT},
    }
    with pytest.raises(ConfigError) as raised:
        parse_settings(data, {})
    locations = {p.location for p in raised.value.problems}
    assert locations == {"metrics.listen", "metrics.operation_names", "metrics.port"}


def test_listen_address_is_pure() -> None:
    assert listen_address("10.0.0.7:9464") == ("10.0.0.7", 9464)
    assert listen_address("10.0.0.7") is None
