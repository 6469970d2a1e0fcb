"""The shared key-value store behind the cache, single-flight markers and budgets.

aiocache lives here and nowhere else (cashews could replace it behind `Store`). Values are
strings the caller serialized, so every reader gets its own copy. A store never raises:
when its backend fails (Redis down or failing mid-run) an operation returns its "nothing"
answer, a warning is logged at most once per `WARN_EVERY_SECONDS`, and the next operation
simply tries again — so recovery is automatic. Never call `clear()` on a shared Redis: it
issues FLUSHDB whatever the namespace.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import StringSerializer
from redis.asyncio import BlockingConnectionPool

from gateway._compat.aiocache import eval_script, memory_reader
from gateway.clock import whole_seconds
from gateway.observability.metrics import Metrics

log = logging.getLogger("gateway.cache.store")
WARN_EVERY_SECONDS = 30.0
OPERATION_TIMEOUT_SECONDS = 0.5
MAX_CONNECTIONS = 64  # per process, to Redis


class Store:
    def __init__(self, backend: Any, *, shared: bool, metrics: Metrics | None = None) -> None:
        self._backend = backend
        self.shared = shared  # True when other replicas see the same data
        # In-process values are read straight from the dictionary (_compat/aiocache.py).
        self._read = None if shared else memory_reader(backend)
        self._last_warning = 0.0
        self.healthy = True
        # Round trips to the backend (on Redis, each is one network exchange).
        operations = (metrics or Metrics()).store_operations
        self._count = {
            name: operations.labels(name)
            for name in ("get", "multi_get", "set", "claim", "delete", "incr", "script", "ping")
        }

    async def ping(self) -> bool:
        """Whether the backend answers now (readiness)."""
        self._count["ping"].inc()
        try:
            await self._backend.exists("ping")
        except Exception as exc:
            self._failed("ping", exc)
            return False
        self._ok()
        return True

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.healthy = False
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning(
                "cache backend failing (%s: %s); answering without it",
                operation,
                type(exc).__name__,
            )

    def _ok(self) -> None:
        if not self.healthy:
            log.warning("cache backend recovered")
            self.healthy = True

    async def get(self, key: str) -> str | None:
        self._count["get"].inc()
        if self._read is not None:
            return _text(self._read([key])[0])
        try:
            value = await self._backend.get(key)
        except Exception as exc:
            self._failed("get", exc)
            return None
        self._ok()
        return _text(value)

    async def multi_get(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        self._count["multi_get"].inc()
        if self._read is not None:
            return [_text(v) for v in self._read(keys)]
        try:
            values = await self._backend.multi_get(keys)
        except Exception as exc:
            self._failed("multi_get", exc)
            return [None] * len(keys)
        self._ok()
        return [_text(v) for v in values]

    async def set(self, key: str, value: str, ttl_seconds: float) -> None:
        self._count["set"].inc()
        try:
            await self._backend.set(key, value, ttl=whole_seconds(ttl_seconds, at_least=1))
        except Exception as exc:
            self._failed("set", exc)
        else:
            self._ok()

    async def claim(self, key: str, value: str, ttl_seconds: float) -> bool:
        """Set a marker only if absent: True when this caller should do the work. Also True
        when the backend fails, since there is then nobody to coordinate with."""
        self._count["claim"].inc()
        try:
            await self._backend.add(key, value, ttl=whole_seconds(ttl_seconds, at_least=1))
        except ValueError:
            return False  # aiocache's "key already exists"
        except Exception as exc:
            self._failed("claim", exc)
            return True
        self._ok()
        return True

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._count["delete"].inc()
            try:
                await self._backend.delete(key)
            except Exception as exc:
                self._failed("delete", exc)
                return

    async def incr(self, key: str, ttl_seconds: float) -> int | None:
        """Add one to a counter that expires `ttl_seconds` after its first increment.
        None when the backend failed (the caller decides how to count then)."""
        self._count["incr"].inc()
        try:
            value = int(await self._backend.increment(key, 1))
            if value == 1:
                self._count["incr"].inc()  # the expiry is a second round trip
                await self._backend.expire(key, whole_seconds(ttl_seconds, at_least=1))
        except Exception as exc:
            self._failed("incr", exc)
            return None
        self._ok()
        return value

    async def script(self, source: str, key: str, *args: str | float) -> Any:
        """Run a Lua script on a shared (Redis) store against one namespaced key. None on a
        store without scripts, or when the backend fails (the caller falls back)."""
        if not self.shared:
            return None
        self._count["script"].inc()
        try:
            result = await eval_script(self._backend, source, key, *args)
        except Exception as exc:
            self._failed("script", exc)
            return None
        self._ok()
        return result

    async def close(self) -> None:
        try:
            await self._backend.close()
        except Exception as exc:
            self._failed("close", exc)


def _text(value: object) -> str | None:
    """Counters come back as int from the memory backend and as text from Redis."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


def open_store(
    url: str,
    namespace: str,
    metrics: Metrics | None = None,
    *,
    timeout_seconds: float = OPERATION_TIMEOUT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> Store:
    """`memory://` or `redis://host:port/db` (password in the URL's userinfo).

    On Redis every operation, waiting for a pooled connection included, is bounded by
    `timeout_seconds`; past it the operation answers "nothing" (a miss), never raises."""
    parts = urlsplit(url)
    serializer = StringSerializer()
    if parts.scheme == "memory":
        # timeout=0: no asyncio.wait_for around in-process dictionary operations
        backend = SimpleMemoryCache(serializer=serializer, namespace=namespace, timeout=0)
        return Store(backend, shared=False, metrics=metrics)
    if parts.scheme in ("redis", "rediss"):
        # A blocking pool: past its connections an operation waits for one (within the
        # operation's timeout) instead of failing at once, which would read as "no cache"
        # under a burst of concurrent requests and send every one of them upstream.
        pool = {"timeout": timeout_seconds}
        backend = RedisCache(
            serializer=serializer,
            namespace=namespace,
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int((parts.path or "/0").lstrip("/") or 0),
            password=parts.password,
            ssl=parts.scheme == "rediss",
            timeout=timeout_seconds,
            create_connection_timeout=timeout_seconds,
            pool_max_size=max_connections,
            connection_pool_class=BlockingConnectionPool,
            connection_pool_kwargs=pool,
        )
        return Store(backend, shared=True, metrics=metrics)
    raise ValueError(f"unsupported cache URL scheme {parts.scheme!r}")
