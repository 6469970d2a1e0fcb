"""The providers the gateway knows: plain data, one line each (as libcloud's registry).

Each line names the provider kind, the module of its adapter (`gateway.providers.…`, which
defines `SPEC`) and the module of its simulator fake (`gateway.simulator.…`, which defines
`FAKE`). Everything else is derived from here: the `Provider` enum, the configuration's
checks, the simulator's mounts, the contract suite's cases. Nothing is imported here: each
side loads its own half by name, so the simulator never loads an adapter.
"""

from __future__ import annotations

from typing import NamedTuple


class Registered(NamedTuple):
    adapter: str
    fake: str


PROVIDERS: dict[str, Registered] = {
    "ourvoice": Registered("gateway.providers.ourvoice", "gateway.simulator.ourvoice"),
    "magma_onepay": Registered("gateway.providers.magma_onepay", "gateway.simulator.magma_onepay"),
    "muda": Registered("gateway.providers.muda", "gateway.simulator.muda"),
    "paymob_bills": Registered("gateway.providers.paymob_bills", "gateway.simulator.paymob_bills"),
}
