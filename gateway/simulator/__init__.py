"""A faithful fake of every provider, written from the providers' own docs.

`create_simulator()` mounts each fake under its own prefix (`/ourvoice`, `/magma`,
`/muda`, `/paymob`) and adds control routes under `/_sim`. Nothing here imports
`gateway.providers`: the contract tests would otherwise test adapters against themselves.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from gateway.simulator import magma_onepay, muda, ourvoice, paymob_bills, seed
from gateway.simulator.ourvoice import TOPUP_FAULTS
from gateway.simulator.state import SWITCHES, FaultError, Faults, SimState

PREFIXES = {
    "ourvoice": "/ourvoice",
    "magma_onepay": "/magma",
    "muda": "/muda",
    "paymob_bills": "/paymob",
}


class Simulator:
    """The fake providers plus handles tests use: `state` (faults, counters, clock),
    `muda_tokens`, `ourvoice` (its ledger of balances) and `paymob` (its transactions)."""

    def __init__(self, state: SimState | None = None, tenants: Tenants | None = None) -> None:
        self.state = state or SimState()
        tenants = tenants or Tenants()
        self.tenants = sorted(
            t.name for f in dataclasses.fields(tenants) for t in getattr(tenants, f.name)
        )
        self.muda_tokens = muda.MudaTokens(self.state)
        self.ourvoice = ourvoice.OurVoiceFake(self.state, tenants.ourvoice)
        self.paymob = paymob_bills.PaymobLedger(tenants.paymob)
        self.app = Starlette(
            routes=[
                Mount(PREFIXES["ourvoice"], routes=self.ourvoice.routes()),
                Mount(
                    PREFIXES["magma_onepay"], routes=magma_onepay.routes(self.state, tenants.magma)
                ),
                Mount(
                    PREFIXES["muda"], routes=muda.routes(self.state, self.muda_tokens, tenants.muda)
                ),
                Mount(
                    PREFIXES["paymob_bills"],
                    routes=paymob_bills.routes(self.state, tenants.paymob, self.paymob),
                ),
                Route("/_sim/faults", self._list_faults, methods=["GET"]),
                Route("/_sim/faults/{tenant}", self._set_faults, methods=["PUT", "DELETE"]),
                Route(
                    "/_sim/topup-faults/{tenant}", self._set_topup_fault, methods=["PUT", "DELETE"]
                ),
                Route("/_sim/calls", self._calls, methods=["GET"]),
            ]
        )

    async def _list_faults(self, request: Request) -> Response:
        return JSONResponse(self.state.faults_as_json())

    async def _set_faults(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if tenant not in self.tenants:
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
        """`{"mode": "503-after-commit"}` for the tenant's next top-ups; DELETE clears."""
        tenant = request.path_params["tenant"]
        if tenant not in self.ourvoice.balances:
            known = sorted(self.ourvoice.balances)
            return JSONResponse({"error": f"no top-up account {tenant!r}", "accounts": known}, 404)
        if request.method == "DELETE":
            self.ourvoice.topup_faults.pop(tenant, None)
            return Response(status_code=204)
        try:
            mode = json.loads(await request.body()).get("mode")
        except (ValueError, AttributeError):
            mode = None
        if mode not in TOPUP_FAULTS:
            return JSONResponse({"error": 'send {"mode": MODE}', "modes": list(TOPUP_FAULTS)}, 400)
        self.ourvoice.topup_faults[tenant] = mode
        return JSONResponse({"mode": mode})

    async def _calls(self, request: Request) -> Response:
        return JSONResponse(dict(self.state.calls))


@dataclass(frozen=True)
class Tenants:
    """Who each fake knows (credentials and data); the seed's demo tenants by default."""

    ourvoice: tuple[seed.OurVoiceTenant, ...] = seed.OURVOICE
    magma: tuple[seed.MagmaTenant, ...] = seed.MAGMA
    muda: tuple[seed.MudaTenant, ...] = seed.MUDA
    paymob: tuple[seed.PaymobTenant, ...] = seed.PAYMOB


def create_simulator(state: SimState | None = None, tenants: Tenants | None = None) -> Simulator:
    return Simulator(state, tenants)
