"""The adapters' half of `gateway.registry`: each provider's `SPEC`, loaded by name on
first use — the configuration reads specs without importing any adapter (or HTTP library)
at import time."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from gateway.registry import PROVIDERS

if TYPE_CHECKING:
    from gateway.providers.spec import ProviderSpec

ADAPTERS = {kind: registered.adapter for kind, registered in PROVIDERS.items()}


def spec(kind: str) -> ProviderSpec:
    """The spec of a registered kind (`KeyError` for an unknown one)."""
    found: ProviderSpec = importlib.import_module(ADAPTERS[kind]).SPEC
    return found
