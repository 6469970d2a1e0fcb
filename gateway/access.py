"""Who is calling, as every layer sees it: a `Principal` with scopes, visible accounts and
its rate. An account a principal may not see must behave exactly like one that does not
exist. (How a principal is established from a key or a token: `server/auth.py`.)"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gateway.errors import Forbidden

SCOPES = (
    "balances:read",
    "transactions:read",
    "topup:write",
    "metrics:read",
    "balances:refresh",
    "debug",
)


@dataclass(frozen=True)
class RateLimit:
    """A client's token bucket: `burst` requests at once, refilled at `requests_per_second`."""

    requests_per_second: float = 50.0
    burst: int = 200


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    accounts: frozenset[str] | None  # None: every account ("*")
    rate_limit: RateLimit | None = None  # None: the configured default
    rate_limited: bool = True
    trusted_documents: str | None = None  # this client's mode; None: the configured one

    def can_see(self, account_id: str) -> bool:
        return self.accounts is None or account_id in self.accounts

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"This operation needs the {scope} scope.")

    @functools.cached_property
    def identity(self) -> str:
        """What the response cache keys on: scopes and visible accounts, not the name."""
        accounts = "*" if self.accounts is None else ",".join(sorted(self.accounts))
        return f"{','.join(sorted(self.scopes))}|{accounts}"


# The development profile's caller without a key. The colon keeps the name apart from
# configured clients' (`[a-z0-9_-]`), as `jwt:<sub>` is; it has no rate limit (a quick
# load test of the demo is not an attack).
DEVELOPMENT = Principal("dev:anonymous", frozenset(SCOPES), None, rate_limited=False)
