"""The house's layers, held by walking imports — per package, on the transitive closure.

The folders read as the path of a request, and imports point one way, downwards:

    cli → app → server → schema → services → providers → upstream → cache → config

(`cli` and `app` may use any layer below them; the simulator is apart). Everyone may use
the shared leaves `gateway/__init__.py` names in `__all__` — `domain`, `errors`, `clock`,
`access`, `bodies`, the provider list (`registry`), `observability/` — the package root,
and `_compat/` (one module per library whose internals are touched; it imports no gateway
module). A module may import its own package and any package below it — never one
above — so the closure of what a module loads follows the same direction. The providers'
specs and their loading by name (`providers/spec.py`, `providers/loading.py`) belong to
the providers: the configuration, below them, declares what it reads of a provider
(`config/provider_rules.py`) and is handed the lookup by the composition root. Nor do the
packages, or any two modules, import each other in a cycle. On top, what the layers
promise about third-party libraries is checked on the real import closure, in a fresh
interpreter: importing the services loads no httpx, aiohttp or Strawberry; the domain
loads nothing heavy; an adapter loads no Strawberry or Starlette; the simulator loads
nothing of the adapters (so the contract tests never test adapters against themselves).
And tests/ mirrors gateway/: every package has its folder of tests.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "gateway"
ORDER = ["config", "cache", "upstream", "providers", "services", "schema", "server", "app", "cli"]
TOP = {"__main__": "cli"}  # modules that count as a layer


def shared_leaves() -> set[str]:
    """What every layer may use: the package root and what `gateway/__init__.py` names in
    `__all__` (read from the source: the one list, not one kept here)."""
    tree = ast.parse((ROOT / "gateway" / "__init__.py").read_text(encoding="utf-8"))
    (names,) = (
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    )
    return {str(name) for name in names if not name.startswith("__")}


LEAVES = shared_leaves()  # e.g. "domain", "errors", "observability"
SHARED = {"gateway", "gateway.__init__", *(f"gateway.{leaf}" for leaf in LEAVES)}
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    name = module.split(".")[1] if "." in module else ""
    return TOP.get(name, name)


def gateway_imports(path: Path, *, runtime_only: bool = True) -> set[str]:
    """The gateway modules `path` imports at import time (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                skipped.update(id(n) for n in ast.walk(node))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("gateway"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gateway":
                names.update(f"gateway.{a.name}" for a in node.names)
            elif node.module.startswith("gateway."):
                names.add(node.module)
    return names


def allowed(importer: str, imported: str) -> bool:
    if imported in SHARED or imported.startswith(("gateway.__", "gateway._compat")):
        return True
    mine, theirs = layer_of(importer), layer_of(imported)
    if mine == theirs:
        return True
    if mine == "simulator" or theirs == "simulator":
        return mine == "cli"  # `simulate` and `serve --simulator-port`
    if theirs in ("", *LEAVES):
        return True
    if mine in ("", *LEAVES):
        return False  # a shared leaf imports only shared leaves
    if theirs not in ORDER or mine not in ORDER:
        return False
    return ORDER.index(theirs) < ORDER.index(mine)


def test_every_module_belongs_to_a_known_layer() -> None:
    known = set(ORDER) | {"simulator", "", "_compat"} | LEAVES
    assert {layer_of(module_of(p)) for p in MODULES} <= known


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path: Path) -> None:
    assert not any(
        isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(ast.parse(path.read_text()))
    ), "relative imports hide the direction: import gateway.… absolutely"
    importer = module_of(path)
    wrong = sorted(i for i in gateway_imports(path) if not allowed(importer, i))
    assert wrong == [], f"{importer} imports upwards or across: {wrong}"


TESTS = ROOT / "tests"


def mirror_of(package: Path, package_root: Path, tests_root: Path) -> Path:
    """Where the tests of `package` (a folder of `package_root` with an `__init__.py`) live:
    the same path below `tests_root`, each part without its leading underscore
    (`gateway/schema/execution` → `tests/schema/execution`, `gateway/_compat` →
    `tests/compat`); the root package's own modules (`app.py`, `cli.py`, `domain.py`, …),
    with the tests of the whole app, in `tests/app`."""
    parts = package.relative_to(package_root).parts
    return (
        tests_root.joinpath(*(part.lstrip("_") for part in parts)) if parts else tests_root / "app"
    )


def packages_without_tests(package_root: Path, tests_root: Path) -> list[str]:
    """Each package of `package_root` whose test folder is missing, is not a package itself
    (the tests import each other as `tests.<folder>.<module>`), or holds no `test_*.py`."""
    missing = []
    for init in sorted(package_root.rglob("__init__.py")):
        folder = mirror_of(init.parent, package_root, tests_root)
        if not (folder / "__init__.py").is_file() or not any(folder.glob("test_*.py")):
            missing.append(
                f"{init.parent.relative_to(package_root.parent)} → {folder.relative_to(tests_root.parent)}"
            )
    return missing


def test_every_package_has_a_test_folder_that_mirrors_it() -> None:
    """tests/ mirrors gateway/. The rule: the tests of `gateway/<a>/<b>/` (any folder with an
    `__init__.py`, nested ones included) are in `tests/<a>/<b>/`, each part without its
    leading underscore (`gateway/_compat/` → `tests/compat/`); the root package's own
    modules' (`gateway/app.py`, `cli.py`, `domain.py`, …), with the whole app's, in
    `tests/app/`. Each such folder is a package and holds at least one `test_*.py`."""
    assert packages_without_tests(PACKAGE, TESTS) == []


def test_a_package_without_tests_would_be_found(tmp_path: Path) -> None:
    package, tests = tmp_path / "gateway", tmp_path / "tests"
    for folder in ("", "cache", "_compat", "schema", "schema/execution", "cache/static"):
        (package / folder).mkdir(parents=True, exist_ok=True)
        if folder != "cache/static":  # data, not a package: no tests wanted
            (package / folder / "__init__.py").write_text("")
    for folder, files in {
        "app": ("__init__.py", "test_app.py"),
        "cache": ("__init__.py", "test_read_through.py"),
        "compat": ("test_compat.py",),  # not a package
        "schema": ("__init__.py", "helpers.py"),  # no test module
    }.items():
        (tests / folder).mkdir(parents=True)
        for name in files:
            (tests / folder / name).write_text("")
    assert packages_without_tests(package, tests) == [
        "gateway/_compat → tests/compat",
        "gateway/schema → tests/schema",
        "gateway/schema/execution → tests/schema/execution",
    ]
    assert mirror_of(package / "_compat", package, tests) == tests / "compat"
    assert mirror_of(package, package, tests) == tests / "app"


# `x._name` (not on self, cls or other) and `getattr(x, "_name")`: an access to something
# private, whether written out or built from a string.
PRIVATE = re.compile(r"([A-Za-z_]\w*(?:\(\))?|\]|\))\.(_[a-z]\w*)\b")
BY_NAME = re.compile(r"getattr\([^,]+,\s*[\"'](_[a-z]\w*)")
DOCUMENTED = {"os._exit", "logging._srcfile"}  # Python documents both (logging: "Optimization")
# What tests may not reach around `_compat/` for: the libraries' privates the gateway uses.
THIRD_PARTY = {"_schema", "_raw_info", "_body", "_backend", "_cache", "_query_params"}


def private_accesses(path: Path) -> list[str]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        code = line.split("#", 1)[0]
        for match in PRIVATE.finditer(code):
            owner, name = match.groups()
            if owner not in ("self", "cls", "other", "gateway"):
                found.append(f"{path.name}:{number} {owner}.{name}")
        found += [f"{path.name}:{number} getattr {m}" for m in BY_NAME.findall(code)]
    return found


def test_third_party_internals_are_touched_only_in_compat_modules_that_import_no_gateway() -> None:
    for path in (PACKAGE / "_compat").glob("*.py"):
        assert gateway_imports(path) == set(), path
    private = ("strawberry.schema.schema", "graphql.execution.collect_fields")
    touched = []
    for path in MODULES:
        if "_compat" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert not any(f"from {m} import" in text for m in private), path
        touched += [a for a in private_accesses(path) if a.split()[-1] not in DOCUMENTED]
    assert touched == [], "a private name reached outside gateway/_compat/"


def test_tests_reach_library_internals_only_through_compat() -> None:
    """Only `tests/compat/test_compat.py`, the fences' guard, looks behind them (and this module
    names some, as examples)."""
    touched = [
        access
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name not in ("test_compat.py", "test_architecture.py")
        for access in private_accesses(path)
        if access.split()[-1].split(".")[-1] in THIRD_PARTY or " getattr " in access
    ]
    assert touched == []


def test_a_private_access_would_be_found(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('x = s._schema\ny = getattr(f.resolve, "_is_default", False)\nself._ok\n')
    assert private_accesses(module) == ["m.py:1 s._schema", "m.py:2 getattr _is_default"]


def test_the_providers_loading_and_spec_are_plain_data() -> None:
    for module in ("loading", "spec"):
        imports = gateway_imports(PACKAGE / "providers" / f"{module}.py")
        assert imports <= SHARED, imports


def test_the_configuration_may_not_import_the_providers_loading_or_spec() -> None:
    """The one arrow that used to point up: config is handed a lookup instead."""
    for imported in ("gateway.providers.loading", "gateway.providers.spec"):
        assert not allowed("gateway.config.settings", imported)
        assert not allowed("gateway.cache.keys", imported)
        assert allowed("gateway.app", imported) and allowed("gateway.cli", imported)


def package_of(name: str) -> str:
    """The subpackage (or top-level module) of gateway that `name` is in or names:
    `gateway.config` for `gateway.config.settings`; `gateway` for the root's own names."""
    parts = name.split(".")
    if len(parts) > 1 and ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file()):
        return f"gateway.{parts[1]}"
    return "gateway"


def package_graph() -> dict[str, set[str]]:
    """Which packages each package imports at run time (not under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        mine = package_of(module_of(path))
        graph.setdefault(mine, set()).update({package_of(i) for i in gateway_imports(path)})
        graph[mine].discard(mine)
    return graph


def a_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of `graph`, as a path that ends where it starts, or [] when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        path.append(node)
        for following in sorted(graph.get(node, ())):
            if following in path:
                return [*path[path.index(following) :], following]
            if following not in done and (found := visit(following)):
                return found
        path.pop()
        done.add(node)
        return []

    for node in sorted(graph):
        if node not in done and (found := visit(node)):
            return found
    return []


def test_the_packages_import_each_other_without_a_cycle() -> None:
    graph = package_graph()
    assert {"gateway.config", "gateway.providers", "gateway.domain"} <= set(graph)
    assert a_cycle(graph) == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    """The same within packages, module by module (imports inside functions count: they
    run too); only type-checking imports may point back."""
    modules = {module_of(path): path for path in MODULES}

    def owner(name: str) -> str:  # `from gateway.x import name` names module x or a name in it
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        return name

    graph = {m: {owner(i) for i in gateway_imports(path)} - {m} for m, path in modules.items()}
    assert a_cycle(graph) == []


def test_a_cycle_would_be_found() -> None:
    assert a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}) == ["a", "b", "c", "a"]
    assert a_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def loaded_by(*modules: str) -> set[str]:
    """Top-level packages in `sys.modules` after importing `modules` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    return set(json.loads(out))


def tops(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_importing_the_services_loads_no_http_and_no_graphql() -> None:
    services = [module_of(p) for p in (PACKAGE / "services").glob("*.py")]
    assert not tops(loaded_by(*services)) & {"httpx", "aiohttp", "strawberry", "starlette"}


def test_the_domain_and_config_load_nothing_heavy() -> None:
    loaded = tops(loaded_by("gateway.domain", "gateway.config.settings"))
    assert not loaded & {"httpx", "aiohttp", "strawberry", "starlette", "aiocache", "redis"}


def test_adapters_load_no_graphql_or_web_framework() -> None:
    adapters = [module_of(p) for p in (PACKAGE / "providers").glob("*.py")]
    assert not tops(loaded_by(*adapters)) & {"strawberry", "starlette", "uvicorn"}


def test_the_gateway_runs_where_opentelemetry_is_not_installed(tmp_path: Path) -> None:
    """An optional extra: with it made unimportable, the app is built and answers, and the
    configuration refuses `[tracing] enabled = true` with the fix."""
    code = f"""
import asyncio, importlib.abc, sys

class NoOpenTelemetry(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ImportError("not installed")
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
import httpx
from gateway.app import create_app
from gateway.config.settings import parse_settings
from gateway.errors import ConfigError
from gateway.providers.loading import spec

CONFIG = {{
    "server": {{"profile": "development"}},
    "idempotency": {{"url": "sqlite:///{tmp_path / "journal.db"}"}},
    "accounts": {{"a": {{"provider": "ourvoice", "base_url": "http://x", "api_key": "k"}}}},
}}

async def main():
    app = create_app(parse_settings(CONFIG, {{}}, providers=spec))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g") as http:
            print((await http.post("/graphql", json={{"query": "{{ __typename }}"}})).text)

asyncio.run(main())
try:
    parse_settings({{**CONFIG, "tracing": {{"enabled": True}}}}, {{}}, providers=spec)
except ConfigError as exc:
    print(exc.message)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert '{"data":{"__typename":"Query"}}' in out
    assert "tracing.enabled" in out and "pip install 'balance-gateway[otel]'" in out


def test_the_simulator_loads_none_of_the_adapters() -> None:
    simulator = [module_of(p) for p in (PACKAGE / "simulator").glob("*.py")]
    loaded = loaded_by(*simulator)
    assert not {n for n in loaded if n.startswith("gateway.providers")}


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

    fields = getattr(types, view_name).__strawberry_definition__.fields
    # A field with a resolver (Balance.history, Balance.runway) reads the value itself.
    declared = {f.python_name for f in fields if f.base_resolver is None}
    assert declared, "every view has plain fields"
    present = {f.name for f in dataclasses.fields(getattr(domain, value_name))}
    assert declared <= present, declared - present
