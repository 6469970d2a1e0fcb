"""Each package of `gateway/` declares its public surface — `__all__` in its `__init__.py`:
the modules (and names) other packages may import — and the imports hold to it.

A module of another package imports from `gateway.<package>` only what that list names
(`from gateway.cache.store import …` needs "store" in `gateway/cache/__init__.py`'s
`__all__`; `from gateway.schema import build_schema` needs "build_schema"); a package's
own modules, and nested packages inside it, are its own business. And a list names
nothing stale: each entry is a module or subpackage of the package or a name its
`__init__` defines, and some other package imports it. Read from the source, not
imported, so a surface is what is written."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "gateway"
PACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))


def declared(package: str) -> list[str]:
    """The `__all__` of `gateway/<package>/__init__.py` ([] when it declares none)."""
    tree = ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list), f"{package}: __all__ is a list of names"
            return [str(name) for name in value]
    return []


def defined(package: str) -> set[str]:
    """What a package offers: its modules and subpackages, and the names its `__init__`
    defines."""
    folder = PACKAGE / package
    names = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in folder.glob("*/__init__.py")}
    tree = ast.parse((folder / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def package_of(path: Path) -> str:
    """The top-level package a module of gateway/ belongs to ("" for a root module)."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def reached(path: Path) -> Iterator[tuple[str, str]]:
    """(package, entry) for every import of `gateway.<package>.<entry>` or of a name
    `from gateway.<package> import <entry>`, type-only imports included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            parts = node.module.split(".")
            if len(parts) == 2 and parts[0] == "gateway":
                yield from ((parts[1], alias.name) for alias in node.names)
                continue
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if len(parts) >= 3 and parts[0] == "gateway":
                yield parts[1], parts[2]


def imports_across() -> Iterator[tuple[str, str, str]]:
    """(importer, package, entry) for every import of another package's entry."""
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = package_of(path)
        for package, entry in reached(path):
            if package != mine and package in PACKAGES:
                yield str(path.relative_to(ROOT)), package, entry


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_declares_what_it_offers(package: str) -> None:
    surface = declared(package)
    assert surface, f"gateway/{package}/__init__.py declares no __all__"
    assert set(surface) <= defined(package), f"{package}: __all__ names what is not there"


def test_other_packages_import_only_what_a_package_declares() -> None:
    outside = sorted(
        f"{importer}: gateway.{package}.{entry}"
        for importer, package, entry in imports_across()
        if entry not in declared(package)
    )
    assert outside == [], "imported past a package's __all__ (add it there, or do not reach)"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_surface_names_nothing_no_other_package_uses(package: str) -> None:
    used = {entry for _, owner, entry in imports_across() if owner == package}
    assert set(declared(package)) - used == set()


def test_an_import_past_a_surface_would_be_found(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from gateway.cache.keys import balance\nfrom gateway.schema import sdl\n"
        "import gateway.server.edge\n"
    )
    assert list(reached(module)) == [("cache", "keys"), ("schema", "sdl"), ("server", "edge")]
