"""What each provider's fake offers the simulator: plain data and one factory.

A fake module defines `FAKE = FakeSpec(...)`: where it is mounted, its own seed tenants
(credentials and data), how to build it on the shared `SimState`, and which configuration
keys an account of one of its tenants needs (its credentials). The simulator mounts every
fake the registry lists; the contract suite builds its accounts from the same tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.routing import BaseRoute

from gateway.simulator.state import SimState


class Fake(Protocol):
    def routes(self) -> Sequence[BaseRoute]: ...


@dataclass(frozen=True)
class FakeSpec:
    prefix: str  # where the simulator mounts it: /ourvoice, /magma, …
    tenants: tuple[Any, ...]  # its seed tenants: each has a `name` (the demo account's id)
    build: Callable[[SimState, tuple[Any, ...]], Fake]
    account: Callable[[Any], dict[str, str]]  # a tenant's credentials, as config keys
    path: str = ""  # what an account's base URL adds after the prefix (Muda's /v1)
