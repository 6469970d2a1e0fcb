"""The dependency direction from DESIGN.md, held by walking every module's imports.

cli → app → schema → service → providers → upstream → httpx; everyone may import `domain`,
`errors` and the small shared leaves. Providers never import schema, service or Strawberry;
the service never imports httpx or Strawberry; the simulator imports nothing of the gateway
but itself (so the contract tests never test adapters against themselves).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "gateway"
SHARED = {"domain", "errors", "accounts", "wire", "clock", "metrics", "log_context", "__version__"}
# layer → what it may import (besides SHARED and itself)
ALLOWED: dict[str, set[str]] = {
    "cli": {"app", "schema", "settings", "simulator", "auth", "idempotency", "pages", "serving"},
    "serving": {"uvicorn_compat"},
    "uvicorn_compat": set(),
    "__main__": {"cli"},
    "app": {
        "admission",
        "wiring",
        "auth",
        "security_settings",
        "endpoint",
        "schema",
        "channel",
        "settings",
        "pages",
    },
    "wiring": {
        "transactions",
        "topup",
        "idempotency",
        "cursor",
        "rate_limit",
        "response_cache",
        "service",
        "providers",
        "channel",
        "upstream",
        "settings",
        "cache",
        "store",
        "breaker",
        "budget",
    },
    "endpoint": {
        "admission",
        "transactions",
        "topup",
        "response_cache",
        "schema",
        "service",
        "auth",
        "security_settings",
        "rate_limit",
    },
    "response_cache": {"cache", "store"},
    "rate_limit": {"store", "auth"},
    "log_context": set(),
    "admission": set(),
    "pages": set(),
    "settings": {"providers", "config_check", "security_settings"},
    "security_settings": {"auth", "config_check"},
    "config_check": set(),
    "auth": set(),
    "schema": {"service", "transactions", "topup", "auth", "security_settings"},
    "service": {"providers", "cache", "codec", "channel"},
    "transactions": {"providers", "cache", "codec", "channel", "cursor"},
    "topup": {"idempotency"},
    "idempotency": set(),
    "cursor": set(),
    "providers": {"channel", "upstream"},
    "channel": {"upstream", "breaker", "budget"},
    "cache": {"store"},
    "codec": set(),
    "budget": {"store"},
    "breaker": set(),
    "store": set(),
    "upstream": set(),
    "simulator": set(),
    "domain": set(),
    "errors": set(),
    "accounts": set(),
    "wire": set(),
    "clock": set(),
    "metrics": set(),
}
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "providers": {"strawberry", "starlette"},
    "service": {"httpx", "aiohttp", "strawberry", "starlette", "aiocache"},
    "cache": {"aiocache", "httpx"},
    "domain": {"httpx", "strawberry", "starlette"},
    "simulator": {"strawberry"},
}


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "gateway":
            names.update(f"gateway.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_layer_is_known() -> None:
    assert {layer_of(p) for p in MODULES if p.name != "__init__.py" or p.parent != PACKAGE} <= set(
        ALLOWED
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_dependency_direction(path: Path) -> None:
    assert not any(
        isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(path.read_text()))
    ), "relative imports hide the direction: import gateway.… absolutely"
    if path == PACKAGE / "__init__.py":
        return
    layer = layer_of(path)
    for name in imports_of(path):
        top = name.split(".")[0]
        if top == "gateway":
            target = name.split(".")[1] if "." in name else ""
            assert target in ALLOWED[layer] | SHARED | {layer}, f"{layer} imports {name}"
        else:
            assert top not in FORBIDDEN_THIRD_PARTY.get(layer, set()), f"{layer} imports {name}"


def test_the_simulator_never_imports_the_adapters() -> None:
    for path in (PACKAGE / "simulator").rglob("*.py"):
        assert not any(n.startswith("gateway.providers") for n in imports_of(path)), path


@pytest.mark.parametrize(
    ("view_name", "value_name"),
    [
        ("Money", "Money"),
        ("Country", "Country"),
        ("Asset", "Asset"),
        ("Balance", "Balance"),
        ("CurrencyTotal", "CurrencyTotal"),
    ],
)
def test_domain_values_carry_every_field_of_the_graphql_type_they_are_served_as(
    view_name: str, value_name: str
) -> None:
    import dataclasses

    from gateway import domain
    from gateway.schema import types

    declared = {f.python_name for f in getattr(types, view_name).__strawberry_definition__.fields}
    present = {f.name for f in dataclasses.fields(getattr(domain, value_name))}
    assert declared <= present, declared - present
