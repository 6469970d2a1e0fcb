"""At least 500 queries generated from schema.graphql (derandomized: the same ones on every
run) against the production profile: never a 5xx, never an unmasked message, and never
INTERNAL or an ERROR log line — a generated document can only be a client's mistake, and
its `Decimal` and `DateTime` literals include every malformed shape we know of."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, date
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from gateway.app import create_app
from gateway.simulator import create_simulator
from tests.helpers import FULL_KEY, ROOT, FakeClock, demo_settings, no_sleep, production

SCHEMA = (ROOT / "schema.graphql").read_text()
BAD_DECIMALS = ["abc", "1_000", " 5", "5 ", "5.", ".5", "١٢٣", "1e3", "1E+999999", "", "+5"]
BAD_DATETIMES = [
    "not-a-date",
    "0001-01-01T00:00:00+01:00",  # overflows when converted to UTC
    "9999-12-31T23:59:59-01:00",
    "2024-06-04",
    "2024-06-04T00:43:26",
    "2024-13-40T25:61:00Z",
    "",
]
DECIMAL = (
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str)
    | st.sampled_from(BAD_DECIMALS)
    | st.text(max_size=6)
)
DATETIME = (
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))
    | st.sampled_from(BAD_DATETIMES)
    | st.text(max_size=6)
)
DATE = (  # dailyClose's day: real ones around the demo's, and malformed ones
    st.dates(min_value=date(2024, 5, 1), max_value=date(2024, 7, 1)).map(date.isoformat)
    | st.sampled_from(["2024-02-30", "2024-06-04T00:00:00Z", "24-06-04", "", "yesterday"])
    | st.text(max_size=6)
)
SCALARS = {
    "Decimal": DECIMAL.map(nodes.String),
    "DateTime": DATETIME.map(nodes.String),
    "Date": DATE.map(nodes.String),
}
UNMASKED = re.compile(r"Traceback|File \"|/work/|site-packages|gateway\.\w+\.|Error\(|demo-")


class Gateway:
    """One app and its event loop for the whole run (hypothesis calls a sync function)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        sim = create_simulator()
        self.app = create_app(
            production(demo_settings()),
            transport=httpx.ASGITransport(app=sim.app),
            clock=FakeClock(),
            sleep=no_sleep,
        )
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.loop.run_until_complete(self.lifespan.__aenter__())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://gateway",
            headers={"authorization": f"Bearer {FULL_KEY}"},
        )

    def post(self, query: str) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post("/graphql", json={"query": query}))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self.lifespan.__aexit__(None, None, None))
        self.loop.close()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    body: dict[str, Any] = json.loads(response.text)
    for error in body.get("errors") or []:
        assert error["extensions"]["code"] not in (None, "INTERNAL"), error
        assert not UNMASKED.search(error["message"]), error["message"]


def test_generated_queries_never_500_nor_leak(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    gateway = Gateway()
    seen: list[int] = []
    try:

        @settings(
            max_examples=500,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(
            query=queries(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE)
            | queries(SCHEMA, custom_scalars=SCALARS)
            | mutations(SCHEMA, custom_scalars=SCALARS)  # `Decimal` literals live in topUp
        )
        def run(query: object) -> None:
            seen.append(1)
            check(gateway.post(str(query)))

        run()
    finally:
        gateway.close()
    assert len(seen) >= 500
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
