"""A faithful fake of every provider, written from the providers' own docs.

`create_simulator()` mounts the fake of every provider in `gateway.registry` under its own
prefix (`/ourvoice`, `/magma`, `/muda`, `/paymob`) and adds control routes under `/_sim`.
Nothing here imports `gateway.providers`: the contract tests would otherwise test adapters
against themselves. Adding a provider adds its fake module and its registry line — nothing
here changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from gateway.registry import PROVIDERS
from gateway.simulator.books import STATEMENT_FAULTS, movement_from_json
from gateway.simulator.fake import Fake
from gateway.simulator.loading import fake_spec
from gateway.simulator.state import (
    SWITCHES,
    FaultError,
    Faults,
    SimState,
    json_response,
    with_faults,
)

Tenants = Mapping[str, tuple[Any, ...]]  # provider kind → the tenants its fake knows
# A rates provider (for `[reporting] rates_url`): illustrative figures, not market data.
RATES_PATH, RATES_TENANT = "/rates/latest", "rates"
SIM_RATES = {
    "USD": Decimal("1.0842"),
    "GBP": Decimal("0.8497"),
    "KES": Decimal("140.12"),
    "UGX": Decimal("4012.5"),
    "EGP": Decimal("51.47"),
    "ZAR": Decimal("20.161"),
}


class Simulator:
    """The fake providers plus handles tests use: `state` (faults, counters, clock) and
    `fakes[kind]` (e.g. `fakes["ourvoice"].balances`, `fakes["muda"].tokens`,
    `fakes["paymob_bills"].ledger`). `tenants` replaces a fake's seed tenants."""

    def __init__(self, state: SimState | None = None, tenants: Tenants | None = None) -> None:
        self.state = state or SimState()
        self.fakes: dict[str, Fake] = {}
        self.tenants_of: dict[str, tuple[Any, ...]] = {}
        self.prefixes: dict[str, str] = {}
        routes: list[Any] = []
        for kind in PROVIDERS:
            spec = fake_spec(kind)
            known = (tenants or {}).get(kind, spec.tenants)
            self.fakes[kind] = spec.build(self.state, known)
            self.tenants_of[kind] = known
            routes.append(Mount(spec.prefix, routes=list(self.fakes[kind].routes())))
            self.prefixes[kind] = spec.prefix
        self.tenants = sorted(t.name for known in self.tenants_of.values() for t in known)
        self.app = Starlette(
            routes=[
                *routes,
                Route("/", self._index, methods=["GET"]),
                Route("/_sim/faults", self._list_faults, methods=["GET"]),
                Route("/_sim/faults/{tenant}", self._set_faults, methods=["PUT", "DELETE"]),
                Route(
                    "/_sim/topup-faults/{tenant}", self._set_topup_fault, methods=["PUT", "DELETE"]
                ),
                Route("/_sim/calls", self._calls, methods=["GET"]),
                Route("/_sim/books/{tenant}", self._post_movement, methods=["POST"]),
                Route(RATES_PATH, self._rates, methods=["GET"]),
            ]
        )

    async def _index(self, request: Request) -> Response:
        """What is served here: each provider's base path and accounts, and the control
        routes — what a newcomer opening the simulator's address wants to know."""
        return JSONResponse(
            {
                "simulator": "balance-gateway provider simulator (see docs/architecture.md)",
                "providers": {
                    kind: {
                        "base_url": self.prefixes[kind],
                        "accounts": sorted(t.name for t in self.tenants_of[kind]),
                    }
                    for kind in self.fakes
                },
                "control": {
                    "GET /_sim/faults": "the faults switched on, per account",
                    "PUT /_sim/faults/{account}": "switch faults on (JSON of switches)",
                    "DELETE /_sim/faults/{account}": "switch them off",
                    "PUT /_sim/topup-faults/{account}": "a top-up fault mode",
                    "DELETE /_sim/topup-faults/{account}": "switch it off",
                    "GET /_sim/calls": "calls counted per account and route",
                    "POST /_sim/books/{account}": "a movement of money, perhaps with a "
                    "statement fault (see docs/architecture.md)",
                    f"GET {RATES_PATH}": "exchange rates per EUR (for [reporting] rates_url)",
                },
            }
        )

    async def _list_faults(self, request: Request) -> Response:
        return JSONResponse(self.state.faults_as_json())

    async def _set_faults(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if tenant not in self.tenants and tenant != RATES_TENANT:  # the rates: as an account
            return JSONResponse({"error": f"no account {tenant!r}", "accounts": self.tenants}, 404)
        if request.method == "DELETE":
            self.state.clear_faults(tenant)
            return Response(status_code=204)
        try:
            self.state.faults[tenant] = Faults.from_json(json.loads(await request.body()))
        except ValueError as exc:  # FaultError, or a body that is not JSON
            error = str(exc) if isinstance(exc, FaultError) else "the body is not JSON"
            return JSONResponse({"error": error, "switches": SWITCHES}, 400)
        return JSONResponse(self.state.faults_as_json()[tenant])

    async def _set_topup_fault(self, request: Request) -> Response:
        """`{"mode": MODE}` for the tenant's next top-ups, on a fake that takes top-ups
        (it has `topup_faults` and `topup_modes`); DELETE clears."""
        tenant = request.path_params["tenant"]
        owners = {
            t.name: fake
            for kind, fake in self.fakes.items()
            if hasattr(fake, "topup_faults")
            for t in self.tenants_of[kind]
        }
        fake: Any = owners.get(tenant)
        if fake is None:
            known = sorted(owners)
            return JSONResponse({"error": f"no top-up account {tenant!r}", "accounts": known}, 404)
        if request.method == "DELETE":
            fake.topup_faults.pop(tenant, None)
            return Response(status_code=204)
        try:
            mode = json.loads(await request.body()).get("mode")
        except (ValueError, AttributeError):
            mode = None
        if mode not in fake.topup_modes:
            return JSONResponse(
                {"error": 'send {"mode": MODE}', "modes": list(fake.topup_modes)}, 400
            )
        fake.topup_faults[tenant] = mode
        return JSONResponse({"mode": mode})

    async def _post_movement(self, request: Request) -> Response:
        """One movement into the tenant's books (`books.py`): 400 says what is wrong."""
        tenant = request.path_params["tenant"]
        if tenant not in self.tenants:
            return JSONResponse({"error": f"no account {tenant!r}", "accounts": self.tenants}, 404)
        try:
            movement = movement_from_json(json.loads(await request.body()), self.state.clock)
        except ValueError as exc:
            return JSONResponse({"error": str(exc), "faults": STATEMENT_FAULTS}, 400)
        self.state.books.post(tenant, movement)
        return JSONResponse({"posted": movement.id}, 201)

    async def _rates(self, request: Request) -> Response:
        """A rates provider in the shape of Frankfurter's (ECB reference rates): units of
        each currency per one EUR, as JSON numbers, dated by the simulator's clock. Its
        faults are those of the tenant `rates`; its calls are counted as `rates:latest`."""
        day = datetime.fromtimestamp(self.state.clock(), UTC).date().isoformat()
        body = {"amount": Decimal(1), "base": "EUR", "date": day, "rates": dict(SIM_RATES)}

        async def answer() -> Response:
            return json_response(body)

        return await with_faults(
            self.state, RATES_TENANT, "latest", lambda status, text: {"message": text}, answer
        )

    async def _calls(self, request: Request) -> Response:
        return JSONResponse(dict(self.state.calls))


def create_simulator(state: SimState | None = None, tenants: Tenants | None = None) -> Simulator:
    return Simulator(state, tenants)


__all__ = [
    "create_simulator",
]
