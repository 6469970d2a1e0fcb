"""A state machine over top-ups, retries, changed payloads, faults, restarts and operator
resolutions (derandomized, bounded). After every step no payment is credited twice and
succeeded ≤ ledger credits ≤ succeeded + unresolved pending; once every pending top-up is
resolved against the ledger, the two agree exactly."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gateway.app import create_app
from gateway.services.journal import open_journal
from gateway.simulator import create_simulator
from gateway.simulator.ourvoice import TOPUP_FAULTS
from gateway.simulator.state import SimState
from tests.helpers import (
    TOP_UP,
    FakeClock,
    ResetTransport,
    demo_settings,
    no_sleep,
    ourvoice_fake,
    topup,
    with_account,
)

KEYS = st.sampled_from(["a", "b", "c", "d"])
FAULTS = st.sampled_from((None, *TOPUP_FAULTS, "401", "429", "422"))


class TopUps(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.sim = create_simulator(SimState(clock=self.clock))
        self.settings = with_account(demo_settings(), "ourvoice-sn", timeout_seconds=0.05)
        self.app: Any = None
        self.http: httpx.AsyncClient | None = None
        self._start()

    def _start(self) -> None:
        self.app = create_app(
            self.settings,
            transport=ResetTransport(httpx.ASGITransport(app=self.sim.app)),
            clock=self.clock,
            sleep=no_sleep,
        )
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.loop.run_until_complete(self.lifespan.__aenter__())
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gateway"
        )

    def _stop(self) -> None:
        assert self.http is not None
        self.loop.run_until_complete(self.http.aclose())
        self.loop.run_until_complete(self.lifespan.__aexit__(None, None, None))

    def _records(self) -> list[Any]:
        store = open_journal(self.settings.idempotency.url)
        try:
            return self.loop.run_until_complete(store.records())
        finally:
            self.loop.run_until_complete(store.close())

    def _ledger(self) -> list[str]:
        return [str(c["payment_id"]) for c in ourvoice_fake(self.sim).credits["ourvoice-sn"]]

    @rule(key=KEYS, amount=st.sampled_from(["100", "200"]))
    def top_up(self, key: str, amount: str) -> None:
        assert self.http is not None
        body = topup(key, amount=amount, paymentReference=f"pay-{key}")
        self.clock.advance(1)
        response = self.loop.run_until_complete(
            self.http.post("/graphql", json={"query": TOP_UP, "variables": body})
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["topUp"]["__typename"] in (
            "TopUpSucceeded",
            "TopUpPending",
            "TopUpRejected",
        )

    @rule(fault=FAULTS)
    def set_fault(self, fault: str | None) -> None:
        ourvoice_fake(self.sim).topup_faults.clear()
        self.sim.state.clear_faults()
        if fault in ("401", "429", "422"):
            self.sim.state.set_faults("ourvoice-sn", status=int(fault))
        elif fault is not None:
            ourvoice_fake(self.sim).topup_faults["ourvoice-sn"] = fault

    @rule()
    def restart(self) -> None:
        self._stop()
        self.clock.advance(60)  # any lease the old process held has run out
        self._start()

    @rule()
    def resolve_against_the_ledger(self) -> None:
        self.clock.advance(60)
        ledger = set(self._ledger())
        store = open_journal(self.settings.idempotency.url)
        for record in self._records():
            if record.state == "pending" or (
                record.state == "in_flight" and (record.lease_until or 0) < self.clock()
            ):
                state = "succeeded" if record.request["payment_reference"] in ledger else "failed"
                self.loop.run_until_complete(
                    store.resolve(record.client, record.key, state, "ops", self.clock())
                )
        self.loop.run_until_complete(store.close())

    @invariant()
    def nothing_is_credited_twice_and_counts_agree(self) -> None:
        ledger = self._ledger()
        assert len(ledger) == len(set(ledger)), f"credited twice: {ledger}"
        records = self._records()
        succeeded = sum(r.state == "succeeded" for r in records)
        unresolved = sum(r.state in ("pending", "in_flight") for r in records)
        assert succeeded <= len(ledger) <= succeeded + unresolved

    def teardown(self) -> None:
        self.resolve_against_the_ledger()
        records = self._records()
        assert sum(r.state == "succeeded" for r in records) == len(self._ledger())
        self._stop()
        self.loop.close()


TopUps.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
test_top_ups_are_credited_exactly_once = TopUps.TestCase
