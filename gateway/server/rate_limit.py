"""Per-client request rate limiting: a token bucket per client.

`burst` tokens, refilled at `requests_per_second`; a request takes one or is refused with
the seconds until one is back. With a shared store (Redis) one atomic script keeps a bucket
per client for every replica; otherwise — or while Redis fails — the bucket is local.
Time is the gateway's injectable clock.
"""

from __future__ import annotations

from gateway.access import Principal, RateLimit
from gateway.cache import keys
from gateway.cache.store import Store
from gateway.clock import Clock, whole_seconds

BUCKET = """
local v = redis.call('HMGET', KEYS[1], 't', 'u')
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(v[1]) or burst
local updated = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RateLimiter:
    def __init__(self, store: Store, default: RateLimit, clock: Clock) -> None:
        self.store = store
        self.default = default
        self._clock = clock
        self._local: dict[str, tuple[float, float]] = {}

    async def take(self, principal: Principal) -> int | None:
        """None if the request may go; else whole seconds until it may. The client's own
        limit (`[clients.NAME]`) wins over the default; the development profile's no-key
        caller has none."""
        if not principal.rate_limited:
            return None
        (rate, burst), now = self._limit(principal), self._clock()
        client = principal.name
        result = await self.store.script(BUCKET, keys.rate(client), rate, burst, now)
        if result is not None:
            allowed, tokens = int(result[0]), float(result[1])
        else:
            allowed, tokens = self._take_local(client, now, rate, burst)
        return None if allowed else whole_seconds((1 - tokens) / rate, at_least=1)

    def take_now(self, principal: Principal) -> bool | None:
        """`take` without awaiting: whether the request may go (a refusal takes no token);
        None, nothing taken, where the buckets are not this process's (a shared store)."""
        if self.store.shared:
            return None
        if not principal.rate_limited:
            return True
        rate, burst = self._limit(principal)
        return bool(self._take_local(principal.name, self._clock(), rate, burst)[0])

    def _limit(self, principal: Principal) -> tuple[float, int]:
        """(requests per second, burst): the client's own limit, else the default."""
        limit = principal.rate_limit or self.default
        return limit.requests_per_second, limit.burst

    def _take_local(self, client: str, now: float, rate: float, burst: int) -> tuple[int, float]:
        tokens, updated = self._local.get(client, (float(burst), now))
        tokens = min(burst, tokens + max(0.0, now - updated) * rate)
        allowed = int(tokens >= 1)
        if allowed:
            tokens -= 1
        self._local[client] = (tokens, now)
        return allowed, tokens
