"""Per-request GraphQL state: the service, a balance DataLoader, and deferred errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from graphql import GraphQLError
from starlette.requests import Request
from strawberry.dataloader import DataLoader

from gateway.domain import AccountBalanceResult
from gateway.service import BalanceService


@dataclass
class Context:
    request: Request | None
    service: BalanceService
    balance_loader: DataLoader[str, AccountBalanceResult] = field(init=False)
    errors: list[GraphQLError] = field(default_factory=list)

    def __post_init__(self) -> None:
        # One fetch per account per request, however many fields ask for it.
        async def load(ids: Sequence[str]) -> list[AccountBalanceResult]:
            return await self.service.balances(ids)

        self.balance_loader = DataLoader(load_fn=load)
