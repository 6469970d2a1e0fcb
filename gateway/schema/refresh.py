"""`Mutation.refreshBalances`: re-read accounts now, once for the whole fleet."""

from __future__ import annotations

import strawberry

from gateway.schema.context import Context
from gateway.schema.query import report_of
from gateway.schema.types import BalanceReport


async def refresh_balances(
    info: strawberry.Info[Context, None], account_ids: list[strawberry.ID] | None = None
) -> BalanceReport:
    """Needs `balances:refresh` (and `balances:read`, for what it answers). The reads start
    before any field of the report is asked for, and are shared by all of them."""
    context = info.context
    context.cacheable = False
    context.principal.require("balances:refresh")
    context.principal.require("balances:read")
    report = report_of(info, account_ids, None, refresh=True)
    await context.balances(report.account_ids, refresh=True)
    return report
