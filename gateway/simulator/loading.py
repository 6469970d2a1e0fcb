"""The simulator's half of `gateway.registry`: each provider's fake, loaded by name."""

from __future__ import annotations

import importlib

from gateway.registry import PROVIDERS
from gateway.simulator.fake import FakeSpec


def fake_spec(kind: str) -> FakeSpec:
    found: FakeSpec = importlib.import_module(PROVIDERS[kind].fake).FAKE
    return found
