"""Where the gateway's CPU goes for one dashboard size: py-spy samples the real `serve`
(production profile, default log level) while wrk asks for a dashboard of N accounts over
C connections, nothing cached (or, with `--fresh-seconds 15`, the cached dashboard); prints
the time by layer and the busiest frames.

    .venv/bin/python bench/profile.py --accounts 32 --connections 1

py-spy (PyPI `py-spy`, in the dev extra) reads the process from outside, so the gateway
runs unmodified; it samples Python frames only (uvloop's C code shows as the event loop).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # the benchmark's own gateway, config and wrk helpers

# Each sample is charged to the innermost frame that one of these matches (first rule wins).
LAYERS = [
    ("event loop (uvloop, asyncio)", ("asyncio/", "uvloop/")),
    ("upstream: aiohttp client", ("aiohttp/",)),
    ("upstream: httpx request + httpx-aiohttp transport", ("httpx/", "httpx_aiohttp/")),
    ("upstream: channel (breaker, quota, retries, deadline)", ("gateway/upstream/",)),
    ("providers: JSON parse + domain values", ("gateway/providers/", "json/", "gateway/domain")),
    ("cache: read-through, codec, store", ("gateway/cache/", "aiocache/")),
    ("GraphQL: execution, completion, scalars", ("graphql/", "strawberry/", "gateway/schema/")),
    (
        "HTTP server, middleware, access log",
        ("uvicorn/", "starlette/", "gateway/server/", "gateway/log_", "logging/", "gateway/cli"),
    ),
    ("services", ("gateway/services/",)),
    ("metrics", ("prometheus_client/",)),
]


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, marks in LAYERS:
            if any(mark in frame for mark in marks):
                return name
    return "other"


def summary(raw: Path, top: int) -> list[str]:
    layers: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, n = stack.split(";"), int(count)
        total += n
        layers[layer_of(frames)] += n
        own[frames[-1]] += n
    lines = [f"{n / total:6.1%}  {name}" for name, n in layers.most_common()]
    lines += ["", f"busiest frames (own time), of {total} samples:"]
    lines += [f"{n / total:6.1%}  {frame[:110]}" for frame, n in own.most_common(top)]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=32)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--fresh-seconds",
        type=int,
        default=0,
        help="0 (the default): every request reads the upstream; 15: the cached dashboard",
    )
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw stacks in this file")
    args = parser.parse_args()
    spy = bench.BIN.parent / "py-spy"
    with bench.fake_upstream() as (_, up_url, _process), tempfile.TemporaryDirectory() as tmp:
        script = bench.post_script(Path(tmp))
        raw = Path(tmp) / "profile.txt"
        per_provider, providers = bench.accounts(args.accounts)
        config = bench.config(up_url, per_provider, args.fresh_seconds, True, providers)
        with bench.Gateway(config) as gw:
            assert gw.process is not None
            url = f"{gw.url}/graphql"
            bench.wrk(url, args.connections, 3, script)  # warm-up
            command = [str(spy), "record", "-p", str(gw.process.pid), "-f", "raw"]
            command += ["-o", str(raw), "-d", str(args.seconds), "-r", "400"]
            recording = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            before = bench.cpu_seconds(gw.process.pid)
            measured = bench.wrk(url, args.connections, args.seconds, script)
            cpu = bench.cpu_seconds(gw.process.pid) - before
            recording.wait(60)
        requests = measured["rps"] * args.seconds
        print(
            f"{args.accounts} accounts, {args.connections} connection(s): "
            f"p50 {measured['p50_ms']:.1f} ms, {cpu * 1000 / requests:.2f} ms CPU per "
            f"request ({cpu * 1000 / requests / args.accounts:.3f} per account)"
        )
        print("\n".join(summary(raw, args.top)))
        if args.raw:
            args.raw.write_text(raw.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
