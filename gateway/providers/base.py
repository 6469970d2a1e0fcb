"""What every provider adapter shares: its upstream context, one GET, URL joining.

An adapter is built per account with that account's `Channel` (the shared HTTP client
behind its own bulkhead, breaker, budget and retries) and the gateway's clock. It keeps
pure parse functions (body → domain values) apart from its one I/O step, and raises only
`UpstreamError`s. What it offers the services: `protocols.py`; its plain-data `SPEC`:
`spec.py`.
"""

from __future__ import annotations

from gateway.clock import Clock
from gateway.config.accounts import AccountConfig
from gateway.errors import UpstreamContext
from gateway.upstream.channel import Channel, Headers


class Adapter:
    """What every adapter holds, built once per account: the account, its channel (the
    shared HTTP client behind the account's bulkhead, breaker, quota and retries), the
    gateway's clock, and the context its errors carry."""

    def __init__(self, account: AccountConfig, channel: Channel, clock: Clock) -> None:
        self.account = account
        self.channel = channel
        self.clock = clock
        self.context = upstream_context(account)

    def url(self, path: str) -> str:
        return join_url(self.account.base_url, path)


def upstream_context(account: AccountConfig) -> UpstreamContext:
    return UpstreamContext(provider=account.provider.value, account=account.id)


async def get_ok(channel: Channel, url: str, headers: Headers) -> bytes:
    """One GET (retried as reads are); the body of a 2xx, a typed error otherwise."""
    response = await channel.send("GET", url, headers=headers)
    channel.raise_for_status(response)
    return response.body


def join_url(base_url: str, path: str) -> str:
    """Base URL + absolute path, without doubling a version segment both carry (`/v1`)."""
    base = base_url.rstrip("/")
    first = "/" + path.lstrip("/").split("/", 1)[0]
    if first != "/" and base.endswith(first):
        base = base[: -len(first)]
    return base + path
