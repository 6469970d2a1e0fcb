"""The provider registry: plain data, one line per provider kind (as libcloud's).

Each line names the module that holds the adapter and its `SPEC`; `spec(kind)` imports it
on first use. The configuration reads specs without importing any adapter (or HTTP
library) at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.providers.spec import ProviderSpec

ADAPTERS: dict[str, str] = {
    "ourvoice": "gateway.providers.ourvoice",
    "magma_onepay": "gateway.providers.magma_onepay",
    "muda": "gateway.providers.muda",
    "paymob_bills": "gateway.providers.paymob_bills",
}


def spec(kind: str) -> ProviderSpec:
    """The spec of a registered kind (`KeyError` for an unknown one)."""
    found: ProviderSpec = importlib.import_module(ADAPTERS[kind]).SPEC
    return found
