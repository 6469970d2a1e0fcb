"""The shared key-value store behind the cache, single-flight markers and budgets.

aiocache lives here and nowhere else (cashews could replace it behind `Store`). Values are
strings the caller serialized, so every reader gets its own copy. A store never raises:
when its backend fails (Redis down or failing mid-run) an operation returns its "nothing"
answer, a warning is logged at most once per `WARN_EVERY_SECONDS`, and the next operation
simply tries again — so recovery is automatic. Never call `clear()` on a shared Redis: it
issues FLUSHDB whatever the namespace. The one exception is a subscription (Redis pub/sub,
`subscription()`): it raises when Redis fails, and its caller subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import StringSerializer
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway._compat.aiocache import eval_script, memory_reader, publish, pubsub
from gateway.clock import whole_seconds
from gateway.observability.metrics import Metrics

log = logging.getLogger("gateway.cache.store")
WARN_EVERY_SECONDS = 30.0
OPERATION_TIMEOUT_SECONDS = 0.5
MAX_CONNECTIONS = 64  # per process, to Redis
Reach = Literal["ok", "unreachable", "refused"]
# Readiness tries every command on keys of these names under the gateway's prefix.
PROBE, PROBE_CLAIM, PROBE_COUNT, PROBE_BUCKET = (
    "probe",
    "probe:claim",
    "probe:count",
    "probe:bucket",
)
PROBE_SECONDS = 60
# What the rate-limit script calls (server/rate_limit.py), on the probe's own bucket.
PROBE_SCRIPT = """
redis.call('HMGET', KEYS[1], 't', 'u')
redis.call('HSET', KEYS[1], 't', '1', 'u', '1')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class Store:
    def __init__(
        self,
        backend: Any,
        *,
        shared: bool,
        metrics: Metrics | None = None,
        timeout_seconds: float = OPERATION_TIMEOUT_SECONDS,
    ) -> None:
        self._backend = backend
        self.shared = shared  # True when other replicas see the same data
        self.timeout_seconds = timeout_seconds  # (aiocache bounds its own operations)
        # In-process values are read straight from the dictionary (_compat/aiocache.py).
        self._read = None if shared else memory_reader(backend)
        self._last_warning = 0.0
        self.healthy = True
        self.quiet = False  # no warnings (a check before serving says it in its own words)
        # Round trips to the backend (on Redis, each is one network exchange).
        operations = (metrics or Metrics()).store_operations
        self._count = {
            name: operations.labels(name)
            for name in (
                "get",
                "multi_get",
                "set",
                "claim",
                "delete",
                "incr",
                "script",
                "ping",
                "publish",
                "subscribe",
            )
        }

    async def reach(self) -> tuple[Reach, str]:
        """Whether the backend serves the gateway now (readiness), and if not, why:
        `refused` when it answers but will not do what the gateway needs — its credentials
        refused or revoked, a command or the key prefix outside its ACL, a TLS certificate
        that does not verify: a configuration no retry fixes — else `unreachable`. Every
        command the gateway sends is tried on probe keys under its own prefix, so an ACL
        that lost one is found here, not only by the requests it fails (which, once a
        replica is out of rotation, would never come). With the reason, for a log line."""
        if not self.shared:
            return "ok", ""
        for attempt in range(2):
            self._count["ping"].inc()
            try:
                await self._backend.exists(PROBE)
            except Exception as exc:
                if refusal(exc) is None and attempt == 0 and isinstance(exc, RedisConnectionError):
                    continue  # a pooled connection the server closed: ask on a new one
                return self._unanswered("ping", exc)
            break
        for command, probe in self._probes():
            self._count["ping"].inc()
            try:
                await probe()
            except ValueError:
                pass  # SET NX on a key another replica's probe holds: allowed all the same
            except Exception as exc:
                return self._unanswered(command, exc)
        self._ok("ping")
        return "ok", ""

    def _probes(self) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
        """Each command the store sends, on keys of the gateway's own prefix."""
        backend = self._backend
        return [
            ("SETEX", lambda: backend.set(PROBE, "1", ttl=PROBE_SECONDS)),
            ("GET", lambda: backend.get(PROBE)),
            ("MGET", lambda: backend.multi_get([PROBE, PROBE_COUNT])),
            ("SET NX", lambda: backend.add(PROBE_CLAIM, "1", ttl=PROBE_SECONDS)),
            ("INCRBY", lambda: backend.increment(PROBE_COUNT, 1)),
            ("EXPIRE", lambda: backend.expire(PROBE_COUNT, PROBE_SECONDS)),
            ("DEL", lambda: backend.delete(PROBE_CLAIM)),
            ("EVAL", lambda: eval_script(backend, PROBE_SCRIPT, PROBE_BUCKET, PROBE_SECONDS)),
            ("PUBLISH", lambda: publish(backend, PROBE, "")),  # on the probe's own channel
        ]

    def _unanswered(self, operation: str, exc: BaseException) -> tuple[Reach, str]:
        reason = self._failed(operation, exc)
        if reason is not None:  # naming the command when it is not the first
            return "refused", reason if operation == "ping" else f"{operation}: {reason}"
        return "unreachable", type(exc).__name__

    def _failed(self, operation: str, exc: BaseException) -> str | None:
        """A failed operation: an outage (the backend is unhealthy until one succeeds), or a
        refusal (a configuration: logged with Redis's words, which name the command), whose
        reason is returned."""
        reason = refusal(exc)
        if reason is None:
            self.healthy = False
        now = time.monotonic()
        if not self.quiet and now - self._last_warning >= WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning(
                "cache backend failing (%s: %s); answering without it",
                operation,
                reason or type(exc).__name__,
            )
        return reason

    def _ok(self, operation: str) -> None:
        if not self.healthy:
            log.warning("cache backend recovered (%s answered)", operation)
            self.healthy = True

    @property
    def in_process(self) -> bool:
        """Whether values are read without I/O (`get_now`, `multi_get_now`)."""
        return self._read is not None

    def get_now(self, key: str, *, counted: bool = True) -> str | None:
        """`get` on an in-process store, without awaiting (`in_process` only)."""
        return self.multi_get_now([key], "get", counted=counted)[0]

    def multi_get_now(
        self, keys: list[str], operation: str = "multi_get", *, counted: bool = True
    ) -> list[str | None]:
        """`multi_get` on an in-process store, without awaiting (`in_process` only);
        `counted=False`: a look the caller counts (`count`) only if it acts on it."""
        assert self._read is not None, "an in-process store's method"
        if counted:
            self._count[operation].inc()
        return [_text(v) for v in self._read(keys)]

    def count(self, operation: str) -> None:
        """One `operation` (get, multi_get, …) counted, for a look made uncounted."""
        self._count[operation].inc()

    async def get(self, key: str) -> str | None:
        if self._read is not None:
            return self.get_now(key)
        self._count["get"].inc()
        try:
            value = await self._backend.get(key)
        except Exception as exc:
            self._failed("get", exc)
            return None
        self._ok("get")
        return _text(value)

    async def multi_get(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        if self._read is not None:
            return self.multi_get_now(keys)
        self._count["multi_get"].inc()
        try:
            values = await self._backend.multi_get(keys)
        except Exception as exc:
            self._failed("multi_get", exc)
            return [None] * len(keys)
        self._ok("multi_get")
        return [_text(v) for v in values]

    async def set(self, key: str, value: str, ttl_seconds: float) -> None:
        self._count["set"].inc()
        try:
            await self._backend.set(key, value, ttl=whole_seconds(ttl_seconds, at_least=1))
        except Exception as exc:
            self._failed("set", exc)
        else:
            self._ok("set")

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
        self._ok("claim")
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
        self._ok("incr")
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
        self._ok("script")
        return result

    async def publish(self, channel: str, message: str) -> None:
        """Hand `message` to every replica subscribed to `channel` (under the namespace, as
        a key is) — nobody's when none listens. Nothing on an in-process store."""
        if not self.shared:
            return
        self._count["publish"].inc()
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await publish(self._backend, channel, message)
        except Exception as exc:
            self._failed("publish", exc)
        else:
            self._ok("publish")

    @contextlib.asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        """The messages published on `channel` from now on, as they come, once Redis has
        confirmed the subscription (within the operation's timeout). Unlike every other
        operation this one raises — when Redis cannot be reached, refuses (`refusal()`
        says why) or drops the connection — and the caller subscribes again. It holds one
        of the pool's connections while the block runs. A shared store only."""
        if not self.shared:
            raise ValueError("an in-process store has no subscriptions")
        self._count["subscribe"].inc()
        client, name = pubsub(self._backend, channel)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await client.subscribe(name)
                await client.get_message(timeout=None)  # its confirmation, or Redis's refusal
            yield _messages(client)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def close(self) -> None:
        try:
            await self._backend.close()
        except Exception as exc:
            self._failed("close", exc)


def refusal(exc: BaseException) -> str | None:
    """Why Redis refused this gateway, if it did (None: it could not be reached). The
    refusal may be wrapped: aiocache turns a refused INCRBY into a TypeError, redis-py
    wraps a TLS handshake's error in its ConnectionError."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, AuthenticationError | AuthenticationWrongNumberOfArgsError):
            return f"the credentials were refused ({seen})"
        if isinstance(seen, NoPermissionError) or (
            isinstance(seen, ResponseError) and SCRIPT_REFUSED in str(seen)
        ):
            return f"the ACL user may not do this ({seen})"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed ({getattr(seen, 'reason', None) or seen})"
        seen = seen.__cause__ or seen.__context__
    return None


# What Redis answers when a script calls a command the ACL user may not run (a plain
# ResponseError: redis-py maps only NOPERM to NoPermissionError).
SCRIPT_REFUSED = "The user executing the script can't run this command"


async def _messages(client: Any) -> AsyncIterator[str]:
    """A subscription's messages, as text (Redis's own notices left out)."""
    while True:
        message = await client.get_message(ignore_subscribe_messages=True, timeout=None)
        if message is not None and message.get("type") == "message":
            data = message.get("data")
            yield data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def _text(value: object) -> str | None:
    """Counters come back as int from the memory backend and as text from Redis."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RedisAccess:
    """Who the gateway is to Redis, and how it trusts it: an ACL user (None: `default`)
    and password, and for `rediss://` the CA file (None: the system's) and an optional
    client certificate. The server's host name is always checked against its certificate."""

    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def connection(self, tls: bool) -> dict[str, Any]:
        """redis-py's connection arguments."""
        found: dict[str, Any] = {"username": self.username}
        if tls:
            found |= {
                "ssl_ca_certs": self.ca_file,
                "ssl_certfile": self.cert_file,
                "ssl_keyfile": self.key_file,
                "ssl_check_hostname": True,
            }
        # No CLIENT SETINFO on connecting (Redis before 7.2 has none): the ACL user then
        # needs no CLIENT command at all (docs/security.md gives its line).
        return {k: v for k, v in found.items() if v is not None} | {"driver_info": None}


def open_store(
    url: str,
    namespace: str,
    metrics: Metrics | None = None,
    *,
    access: RedisAccess | None = None,
    timeout_seconds: float = OPERATION_TIMEOUT_SECONDS,
    max_connections: int = MAX_CONNECTIONS,
) -> Store:
    """`memory://`, or `redis://host:port/db` / `rediss://…` with `access`.

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
        access = access or RedisAccess()
        tls = parts.scheme == "rediss"
        pool = {"timeout": timeout_seconds, **access.connection(tls)}
        backend = RedisCache(
            serializer=serializer,
            namespace=namespace,
            endpoint=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int((parts.path or "/0").lstrip("/") or 0),
            password=access.password,
            ssl=tls,
            timeout=timeout_seconds,
            create_connection_timeout=timeout_seconds,
            pool_max_size=max_connections,
            connection_pool_class=BlockingConnectionPool,
            connection_pool_kwargs=pool,
        )
        return Store(backend, shared=True, metrics=metrics, timeout_seconds=timeout_seconds)
    raise ValueError(f"unsupported cache URL scheme {parts.scheme!r}")
