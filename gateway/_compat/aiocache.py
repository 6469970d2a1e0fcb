"""aiocache internals the store touches (aiocache 0.12.x).

`eval_script()`: a Lua script on the Redis backend's own client, against a key the backend
namespaces (`build_key`, `client`) — aiocache has no script API.
"""

from __future__ import annotations

from typing import Any


async def eval_script(backend: Any, source: str, key: str, *args: str | float) -> Any:
    return await backend.client.eval(source, 1, backend.build_key(key), *args)
