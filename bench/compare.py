"""Compare two benchmark result files: every figure both hold, side by side, with its ratio.

    .venv/bin/python bench/compare.py before.json bench/results.json

A guard against regressions that is not a timed test: a reviewer reads what a change did
to each figure (and to each ratio over the floors, which are measured in the same run and
so survive a noisy machine) instead of trusting one number. Lower is better for times and
CPU, higher for req/s; the last column says which way each figure moved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HIGHER_IS_BETTER = ("rps", "accepted_rps", "share_of_sustainable", "topups_accepted")


def figures(results: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a results file, by its dotted path."""
    found: dict[str, float] = {}
    if isinstance(results, dict):
        for key, value in results.items():
            found.update(figures(value, f"{prefix}{key}."))
    elif isinstance(results, int | float) and not isinstance(results, bool):
        found[prefix.rstrip(".")] = float(results)
    return found


def verdict(name: str, before: float, after: float) -> str:
    if before == after:
        return "same"
    better = after > before if name.rsplit(".", 1)[-1] in HIGHER_IS_BETTER else after < before
    return "better" if better else "worse"


def compare(before: dict[str, float], after: dict[str, float]) -> list[str]:
    width = max((len(name) for name in before.keys() & after.keys()), default=10)
    lines = [f"{'figure'.ljust(width)}  {'before':>12}  {'after':>12}  {'after/before':>12}"]
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        ratio = f"{new / old:.3f}" if old else "—"
        lines.append(
            f"{name.ljust(width)}  {old:12.4g}  {new:12.4g}  {ratio:>12}  {verdict(name, old, new)}"
        )
    only = sorted(before.keys() ^ after.keys())
    if only:
        lines.append(f"in one file only: {', '.join(only)}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = (figures(json.loads(Path(p).read_text())) for p in argv)
    print("\n".join(compare(before, after)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
