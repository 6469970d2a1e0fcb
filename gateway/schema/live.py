"""Root subscription: live balances (served over Server-Sent Events, `server/events.py`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from gateway.errors import ClientError, NotFound
from gateway.schema.context import Context
from gateway.schema.types import AccountBalanceResult, result_of
from gateway.services.live import Closing, SlowConsumer


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Each account's balance result when the subscription starts (the "
        "snapshot), then again whenever it changes: another amount, or the account "
        "starting or stopping failing (a stale answer counts as failing). Each account is "
        "read through the gateway's cache at most once per its fresh window, however many "
        "subscribers; a top-up's success is pushed at once. Default: every visible account."
    )
    async def balance_updates(
        self, info: strawberry.Info[Context, None], account_ids: list[strawberry.ID] | None = None
    ) -> AsyncGenerator[AccountBalanceResult, None]:
        context = info.context
        context.principal.require("balances:read")
        ids = context.asked_ids(account_ids)
        missing = [i for i in ids if context.visible(i) is None]
        if missing:
            raise NotFound(f"No account {missing[0]!r}.")
        if context.live is None:
            raise ClientError("Live balances are served over Server-Sent Events only.")
        async with context.live.subscribe(context.principal.name, ids) as results:
            try:
                async for result in results:
                    yield result_of(result)
            except (Closing, SlowConsumer) as ended:  # the transport says so to the client
                context.stream_end = ended
