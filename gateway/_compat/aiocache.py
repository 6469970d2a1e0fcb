"""aiocache internals the store touches (aiocache 0.12.x).

`eval_script()`: a Lua script on the Redis backend's own client, against a key the backend
namespaces (`build_key`, `client`) — aiocache has no script API.

`memory_reader()`: reads from the in-process backend (`SimpleMemoryCache`) straight from
its dictionary (`_cache`, a string key namespaced as `build_key` does, values as stored: the store's
string serializer keeps them as they are). aiocache wraps every call in an enabled check
that reads the environment, a timeout, plugins and a debug line — for a dictionary
look-up, most of a cached answer's store time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


async def eval_script(backend: Any, source: str, key: str, *args: str | float) -> Any:
    return await backend.client.eval(source, 1, backend.build_key(key), *args)


def memory_reader(backend: Any) -> Callable[[list[str]], list[Any]]:
    """The values of `keys` in a SimpleMemoryCache (None where absent), read at once."""
    prefix = backend.namespace or ""  # build_key(key) for a string key: namespace + key

    def read(keys: list[str]) -> list[Any]:
        table: dict[str, Any] = backend._cache  # (looked up each time: clear() replaces it)
        return [table.get(prefix + key) for key in keys]

    return read
