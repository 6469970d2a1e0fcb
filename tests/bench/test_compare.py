"""`bench/compare.py`, the regression guard a reviewer reads: every figure two result files
share, side by side, with its ratio and which way it moved."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.helpers import ROOT

SCRIPT = ROOT / "bench" / "compare.py"


def compare_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_result_files_compared_figure_by_figure(tmp_path: Path) -> None:
    before = {"cached": {"text": {"rps": 5000, "p50_ms": 3.0}}, "runs": 3, "gone": 1}
    after = {"cached": {"text": {"rps": 6000, "p50_ms": 3.3}}, "runs": 3, "new": 2}
    (tmp_path / "a.json").write_text(json.dumps(before))
    (tmp_path / "b.json").write_text(json.dumps(after))
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "a.json"), str(tmp_path / "b.json")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:-1]}
    assert rows["cached.text.rps"] == ["5000", "6000", "1.200", "better"]  # more req/s
    assert rows["cached.text.p50_ms"] == ["3", "3.3", "1.100", "worse"]  # slower
    assert rows["runs"] == ["3", "3", "1.000", "same"]
    assert out.splitlines()[-1] == "in one file only: gone, new"


def test_only_numbers_are_figures() -> None:
    figures = compare_module().figures({"a": {"b": 1.5, "c": "text", "d": True}, "e": [1]})
    assert figures == {"a.b": 1.5}
