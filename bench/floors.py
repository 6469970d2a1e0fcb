"""The two floors every gateway figure is divided by, measured in the same run.

- **HTTP floor** (`app`): a bare Starlette endpoint answering `POST /graphql` with fixed
  bytes (the gateway's own cached dashboard answer), under the same uvicorn (uvloop,
  httptools, one worker, no access log). What any Python ASGI service pays per request.
- **Upstream floor** (`python bench/floors.py upstream …`): a raw aiohttp client making the
  calls a dashboard makes — N concurrent GETs per "request", C requests in flight — against
  the same fake upstream, pinned to the gateway's CPU. Prints its CPU per call: what any
  Python service pays per upstream call. With `--via httpx`, the same calls as an
  `httpx.Request` through httpx-aiohttp's transport: what the gateway's required stack
  pays per call before any of its own code (bench/README.md, "Where the time goes").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = Path(os.environ.get("FLOOR_BODY", "/dev/null")).read_bytes()


async def answer(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/graphql", answer, methods=["POST"])])

# The calls, as the gateway's adapters make them (Paymob's per-call signatures aside: its
# fake answers the same way).
CALLS = [
    ("/ourvoice/v1/current/balance", "Bearer demo-ourvoice-sn-key"),
    ("/magma/v1/misc/balance", "Bearer demo-magma-private-key"),
    ("/muda/v1/payment/balance", "Bearer {muda}"),
]


async def upstream_floor(
    base: str, per_request: int, connections: int, seconds: float, via: str = "aiohttp"
) -> dict[str, float]:
    """`via` "aiohttp": the raw client; "httpx": the same calls as the gateway's stack must
    make them — an `httpx.Request` sent through httpx-aiohttp's transport (its own aiohttp
    session), read and closed — with nothing of the gateway around them."""
    import aiohttp
    import httpx
    from httpx_aiohttp import AiohttpTransport

    transport = AiohttpTransport()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        token_url = f"{base}/muda/v1/clients/oauth/token"
        credentials = {"api_key": "demo-muda-api-key", "secret_key": "demo-muda-secret-key"}
        async with session.post(token_url, json=credentials) as r:
            muda = (await r.json())["data"]["access_token"]
        calls = [(f"{base}{path}", auth.format(muda=muda)) for path, auth in CALLS]

        async def call(i: int) -> None:
            url, auth = calls[i % len(calls)]
            if via == "httpx":
                request = httpx.Request("GET", url, headers={"Authorization": auth})
                response = await transport.handle_async_request(request)
                try:
                    await response.aread()
                    assert response.status_code == 200, response.status_code
                finally:
                    await response.aclose()
                return
            async with session.get(url, headers={"Authorization": auth}) as r:
                await r.read()
                assert r.status == 200, r.status

        async def dashboard() -> None:
            await asyncio.gather(*(call(i) for i in range(per_request)))

        await asyncio.gather(*(dashboard() for _ in range(connections)))  # warm-up
        stop = time.monotonic() + seconds
        latencies: list[float] = []
        before = os.times()

        async def loop() -> None:
            while time.monotonic() < stop:
                started = time.monotonic()
                await dashboard()
                latencies.append(time.monotonic() - started)

        await asyncio.gather(*(loop() for _ in range(connections)))
        after = os.times()
    await transport.aclose()
    cpu = (after.user + after.system) - (before.user + before.system)
    done = len(latencies) * per_request
    return {
        "calls": done,
        "cpu_ms_per_call": cpu * 1000 / done,
        "p50_ms": statistics.median(latencies) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["upstream"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--per-request", type=int, default=4)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--via",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="the raw aiohttp client (the floor), or an httpx.Request through httpx-aiohttp's "
        "transport (what the required stack costs before any of the gateway's own code)",
    )
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(
        upstream_floor(args.url, args.per_request, args.connections, args.seconds, args.via)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
