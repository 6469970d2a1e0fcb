"""`[reporting]`: the reporting currency, its rounding and a static rate table with its
as-of date — exact decimal strings only, every mistake named."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal

from gateway.config.reporting import RateTable, ReportingSettings
from tests.config.test_settings import problems
from tests.helpers import demo_text, parse_settings

DEMO = {k: v for k, v in tomllib.loads(demo_text()).items() if k != "reporting"}


def test_a_static_table_with_its_date_is_read_exactly() -> None:
    text = """
[reporting]
currency = "EUR"
rounding = "half-up"
as_of = 2024-06-03
[reporting.rates]
USD = "1.0842"
EGP = "51.5"
"""
    settings = parse_settings({**DEMO, **tomllib.loads(text)}, {})
    assert settings.reporting == ReportingSettings(
        "EUR",
        "half-up",
        RateTable("EUR", date(2024, 6, 3), {"USD": Decimal("1.0842"), "EGP": Decimal("51.5")}),
    )
    assert parse_settings(DEMO, {}).reporting == ReportingSettings()  # off by default


def test_floats_unknown_currencies_and_a_missing_date_are_named() -> None:
    found = problems(
        {
            **DEMO,
            "reporting": {
                "currency": "EURO",
                "rounding": "up",
                "rates": {"USD": 1.08, "XYZ": "2", "EGP": "0"},
            },
        }
    )
    assert found["reporting.currency"].startswith("unknown currency 'EURO'")
    assert found["reporting.rounding"].startswith("must be one of 'half-even', 'half-up'")
    assert "never a TOML float" in found["reporting.rates.USD"]
    assert "never a TOML float" in found["reporting.rates.EGP"]  # zero is no rate
    assert found["reporting.rates.XYZ"].startswith("unknown currency")
    wild = problems({**DEMO, "reporting": {"as_of": "2024-06-03", "rates": {"USD": "0.0000001"}}})
    assert "from 0.000001 to 1,000,000,000" in wild["reporting.rates.USD"]
    assert found["reporting.as_of"].startswith("rates need the date")
    assert problems({**DEMO, "reporting": {"as_of": "June"}})["reporting.as_of"].startswith(
        "must be a date"
    )


def test_a_rates_provider_url_carries_no_credentials_and_is_the_one_source() -> None:
    settings = parse_settings(
        {**DEMO, "reporting": {"currency": "EUR", "rates_url": "https://rates.example/latest"}}, {}
    )
    assert settings.reporting.rates_url == "https://rates.example/latest"
    assert settings.reporting.rates_fresh_seconds == 3600
    for url, said in (
        ("https://user:pw@rates.example/latest", "must carry no credentials"),
        ("ftp://rates.example/latest", "must be an http:// or https:// URL"),
    ):
        found = problems({**DEMO, "reporting": {"rates_url": url}})
        assert found["reporting.rates_url"].startswith(said)
    both = {"rates_url": "https://rates.example/", "as_of": "2024-06-03", "rates": {"USD": "1"}}
    assert problems({**DEMO, "reporting": both})["reporting.rates_url"].startswith(
        "one source of rates"
    )
