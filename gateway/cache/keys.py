"""Every key the gateway writes to its store — built here, and nowhere else.

All keys live under the store's namespace (`<[cache] namespace>:v1:`). The grammar:

    balance:<account>:<credentials>                  an account's balances
    tx:<account>:<credentials>:<filter>:<page>       one upstream page of its history
    <balance or tx key>:filling                      single-flight marker (shared store only)
    <balance key>:refreshed                          when a refresh last read it (its stamp)
    gen:<account>                                    the account's response generation
    response:<digest>                                a whole GraphQL response
    budget:<account>:minute|day:<window start>       the account's upstream call quota
    rate:<client>                                    a client's token bucket
    apq:<digest>                                     a document registered by its hash
    rates:<digest>                                   a rates provider's table ([reporting])

    <account>      a configured account id: [a-z0-9][a-z0-9_-]*
    <credentials>  20 hex digits of a hash of the provider, base URL and credentials —
                   so a rotated key never reads another key's data, and no secret is stored
    <filter>       16 hex digits of a hash of the normalised transaction filter
    <page>         the upstream page number
    <digest>       64 hex digits: SHA-256 of the caller's scopes and visible accounts, the
                   generations of those accounts, and the document, variables and operation
                   (for `apq:`, the SHA-256 of the document itself)
    (for `rates:`, the SHA-256 of the rates provider's URL)
    <client>       a configured client name, `jwt:<subject>` (from a verified token) or
                   `dev:anonymous`

One pub/sub channel, named under the namespace as a key is (`cache/changes.py`):

    changed                                          `<origin> <account>`: its balance changed

The rule this module makes auditable: a key names an account and a digest of its
credentials, never a secret, and never text a caller typed except through a digest.
`GRAMMAR` matches exactly the keys above; a test holds every key written to Redis to it.
"""

from __future__ import annotations

import hashlib
import re

from gateway.config.accounts import AccountConfig
from gateway.domain import TransactionFilter

WINDOW_NAMES = ("minute", "day")
GRAMMAR = re.compile(
    r"(?:balance:{a}:{f}|tx:{a}:{f}:{h}:\d+)(?::filling)?|balance:{a}:{f}:refreshed"
    r"|gen:{a}|(?:response|apq):[0-9a-f]{{64}}|rates:[0-9a-f]{{64}}(?::filling)?"
    r"|budget:{a}:(?:minute|day):\d+"
    r"|rate:(?:[a-z0-9][a-z0-9_-]*|jwt:[^\s]+|dev:anonymous)".format(
        a="[a-z0-9][a-z0-9_-]*", f="[0-9a-f]{20}", h="[0-9a-f]{16}"
    )
)


def balance(account: AccountConfig) -> str:
    return f"balance:{account.id}:{account.credentials_digest}"


def transactions_page(account: AccountConfig, flt: TransactionFilter, page: int) -> str:
    """The filter is caller input: only its digest names the key."""
    digest = hashlib.sha256(flt.canonical().encode()).hexdigest()[:16]
    return f"tx:{account.id}:{account.credentials_digest}:{digest}:{page}"


def filling(key: str) -> str:
    return f"{key}:filling"


def refreshed(key: str) -> str:
    return f"{key}:refreshed"


def generation(account_id: str) -> str:
    return f"gen:{account_id}"


def response(digest: str) -> str:
    return f"response:{digest}"


def persisted_query(digest: str) -> str:
    """A document registered as an automatic persisted query (its SHA-256, hex)."""
    return f"apq:{digest}"


def rates(digest: str) -> str:
    """A rates provider's table: its URL only through a digest."""
    return f"rates:{digest}"


def quota_window(account_id: str, window: str, start: int) -> str:
    return f"budget:{account_id}:{window}:{start}"


def rate(client: str) -> str:
    return f"rate:{client}"


CHANGED = "changed"  # the channel: an account's balance changed on some replica
