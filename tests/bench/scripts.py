"""A `bench/` script loaded as a module for its tests (it is not a package: the scripts
import `run.py`'s helpers as `run`, found on `bench/` itself)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.helpers import ROOT


def bench_script(name: str) -> ModuleType:
    """`bench/<name>.py`, loaded with `bench/` on the path while it imports."""
    folder = str(ROOT / "bench")
    sys.path.insert(0, folder)
    try:
        spec = importlib.util.spec_from_file_location(
            f"bench_{name}", ROOT / "bench" / f"{name}.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module
