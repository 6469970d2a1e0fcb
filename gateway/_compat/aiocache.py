"""aiocache internals the store touches (aiocache 0.12.x).

`eval_script()`: a Lua script on the Redis backend's own client, against a key the backend
namespaces (`build_key`, `client`) — aiocache has no script API.

`publish()` and `pubsub()`: Redis pub/sub on the same client (its pool, credentials and
TLS), on a channel named under the backend's namespace as a key is (`build_key`) —
aiocache has no pub/sub API either.

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


async def publish(backend: Any, channel: str, message: str) -> Any:
    return await backend.client.publish(backend.build_key(channel), message)


def pubsub(backend: Any, channel: str) -> tuple[Any, str]:
    """A pub/sub object of the backend's client (it takes a pooled connection of its own
    at its first SUBSCRIBE), and the channel's full name."""
    return backend.client.pubsub(), backend.build_key(channel)


def memory_reader(backend: Any) -> Callable[[list[str]], list[Any]]:
    """The values of `keys` in a SimpleMemoryCache (None where absent), read at once."""
    prefix = backend.namespace or ""  # build_key(key) for a string key: namespace + key

    def read(keys: list[str]) -> list[Any]:
        table: dict[str, Any] = backend._cache  # (looked up each time: clear() replaces it)
        return [table.get(prefix + key) for key in keys]

    return read
