"""Every touch of a third-party library's internals — one module per library, each touch
guarded by `tests/compat/test_compat.py`, which fails loudly (naming the hook) when a library
release moves it. Nothing else in the gateway reaches past a library's public API."""

__all__ = [
    "aiocache",
    "asyncio",
    "graphql",
    "httpx_aiohttp",
    "libc",
    "mcp",
    "starlette",
    "strawberry",
    "uvicorn",
]
