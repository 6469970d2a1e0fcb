"""Two commits side by side: the same dashboard against each, started alternately, so a
change's effect is told from the machine's drift (on this VM the same commit's p50 moves
by several milliseconds within an hour; `compare.py` of two runs an hour apart cannot
tell a 3 ms change from that).

    .venv/bin/python bench/ab.py f166a6c HEAD --accounts 4 --connections 16,1 --rounds 3

Each commit is checked out into a temporary worktree (the repository's own git, the
current `.venv`), and its gateway runs from there (`PYTHONPATH`) — production profile,
access log on, nothing cached, the bench's fake upstream at 50 ms, as `run.py`'s scale
case (`--fresh-seconds 15`: answered from the response cache, as its cached case). Each
round runs A then B, or B then A (alternately), each a fresh gateway: a warm-up,
then `--runs` wrk runs of `--seconds`. Prints every run and, per commit and connection
count, the medians of the rounds' p50, p99 and gateway CPU per request, and B − A.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the benchmark's own gateway, config and wrk helpers

FIGURES = ("rps", "p50_ms", "p99_ms", "gw_cpu_ms")


def order(rounds: int) -> list[tuple[str, str]]:
    """Which commit goes first in each round: A B, B A, A B, …"""
    return [("A", "B") if r % 2 == 0 else ("B", "A") for r in range(rounds)]


def medians(rows: list[dict[str, float | str]]) -> dict[tuple[str, int], dict[str, float]]:
    """Per (side, connections): the median of each figure over the rounds."""
    grouped: dict[tuple[str, int], list[dict[str, float | str]]] = {}
    for row in rows:
        grouped.setdefault((str(row["side"]), int(row["connections"])), []).append(row)
    return {
        key: {f: statistics.median(float(r[f]) for r in group) for f in FIGURES}
        for key, group in grouped.items()
    }


@contextmanager
def checked_out(revision: str) -> Iterator[Path]:
    """`revision` in a temporary detached worktree that uses this checkout's `.venv`."""
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(bench.ROOT)]
        subprocess.run([*git, "worktree", "add", "-q", "--detach", str(tree), revision], check=True)
        try:
            (tree / ".venv").symlink_to(bench.ROOT / ".venv")
            yield tree
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a", help="the commit before (A)")
    parser.add_argument("b", help="the commit after (B)")
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--connections", default="16,1", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument(
        "--fresh-seconds",
        type=int,
        default=0,
        help="the accounts' freshness: 0 (the default) reads the upstream for every request; "
        "15 (the gateway's default) answers nearly every request from the response cache, as "
        "run.py's cached case",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="both gateways up at once, started once, and each round one wrk run of "
        "`--seconds` on each in turn: finer-grained than a fresh pair per round, for a "
        "change of a few per cent that this machine's drift would hide",
    )
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    if args.together:
        return together(args, connections)
    rows: list[dict[str, float | str]] = []
    with side_by_side(args) as (trees, script, config):
        for first, second in order(args.rounds):
            for side in (first, second):
                os.environ["PYTHONPATH"] = str(trees[side])  # the gateway's own code
                with bench.Gateway(config) as gw:
                    assert gw.process is not None
                    for c in connections:
                        r = bench.measure(
                            f"{gw.url}/graphql",
                            c,
                            args.seconds,
                            args.runs,
                            script,
                            cpu_of={"gw": gw.process.pid},
                        )
                        ran(rows, side, args.accounts, c, r)
    report(args, connections, rows)
    return 0


def together(args: argparse.Namespace, connections: list[int]) -> int:
    """Both gateways up at once; each round, one run on each in turn (A B, B A, …)."""
    rows: list[dict[str, float | str]] = []
    with side_by_side(args) as (trees, script, config), contextlib.ExitStack() as stack:
        gateways = {}
        for side, tree in trees.items():
            os.environ["PYTHONPATH"] = str(tree)  # the gateway's own code
            gateways[side] = stack.enter_context(bench.Gateway(config))
        for gw in gateways.values():
            for c in connections:
                bench.wrk(f"{gw.url}/graphql", c, 3, script)  # warm-up
        for first, second in order(args.rounds):
            for side in (first, second):
                gw = gateways[side]
                assert gw.process is not None
                for c in connections:
                    before = bench.cpu_ms(gw.process.pid)
                    r: dict[str, float] = bench.wrk(f"{gw.url}/graphql", c, args.seconds, script)
                    r["gw_cpu_ms"] = (bench.cpu_ms(gw.process.pid) - before) / (
                        r["rps"] * args.seconds
                    )
                    ran(rows, side, args.accounts, c, r)
    report(args, connections, rows)
    return 0


@contextmanager
def side_by_side(args: argparse.Namespace) -> Iterator[tuple[dict[str, Path], str, str]]:
    """The fake upstream running, both commits checked out ("A", "B"), the wrk script and
    the gateways' configuration."""
    with (
        bench.fake_upstream() as (_, up_url, _process),
        checked_out(args.a) as tree_a,
        checked_out(args.b) as tree_b,
        tempfile.TemporaryDirectory() as tmp,
    ):
        per_provider, providers = bench.accounts(args.accounts)
        config = bench.config(up_url, per_provider, args.fresh_seconds, True, providers)
        yield {"A": tree_a, "B": tree_b}, bench.post_script(Path(tmp)), config


def ran(
    rows: list[dict[str, float | str]], side: str, accounts: int, c: int, r: dict[str, float]
) -> None:
    rows.append({"side": side, "connections": c, **r})
    print(
        f"{side} {accounts} accounts × {c:>2}: {r['rps']:.0f} req/s, p50 "
        f"{r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, {r['gw_cpu_ms']:.2f} ms CPU/request",
        flush=True,
    )


def report(
    args: argparse.Namespace, connections: list[int], rows: list[dict[str, float | str]]
) -> None:
    table = medians(rows)
    print(f"\nmedians of {args.rounds} rounds; A = {args.a}, B = {args.b}")
    for c in connections:
        a, b = table["A", c], table["B", c]
        print(
            f"{args.accounts} × {c:>2}: "
            + ", ".join(f"{f} {a[f]:.3f} → {b[f]:.3f} ({b[f] - a[f]:+.3f})" for f in FIGURES)
        )


if __name__ == "__main__":
    raise SystemExit(main())
