"""A webhook endpoint for tests, verifying every delivery the way a receiver would: with the
`standardwebhooks` library from PyPI, never with the gateway's own code."""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


class Receiver:
    """Answers each request with the next of `statuses` (then 200); keeps every request
    and refuses (400) one whose signature does not verify (`unverified`) or whose timestamp
    is too far from its clock (`late`).

    With the real clock the library's `verify` checks everything, the timestamp's
    five-minute tolerance included. Under a test's injected `clock` (days away from the
    machine's), the timestamp must be that clock's and the signature the library's own
    `sign` of it."""

    def __init__(self, secret: str = SECRET, clock: Callable[[], float] | None = None) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.unverified: list[bytes] = []  # a signature that does not verify
        self.late: list[bytes] = []  # signed right, but outside the timestamp tolerance
        self.webhook = Webhook(secret)
        self.clock = clock
        self.app = Starlette(routes=[Route("/hooks", self.hook, methods=["POST"])])

    def verifies(self, headers: dict[str, str], body: bytes) -> bool:
        if self.clock is None:
            try:
                self.webhook.verify(body, headers)
            except Exception:
                return False
            return True
        stamp = int(headers.get("webhook-timestamp", "0"))
        at = datetime.fromtimestamp(stamp, UTC)
        expected = self.webhook.sign(headers.get("webhook-id", ""), at, body).encode()
        offered = headers.get("webhook-signature", "").split(" ")
        return any(hmac.compare_digest(expected, sig.encode()) for sig in offered)

    def timely(self, headers: dict[str, str]) -> bool:
        """Within the five minutes Standard Webhooks allows (the library's own check with
        the real clock; against the test's clock under an injected one)."""
        if self.clock is None:
            return True  # verify() checked it
        return abs(int(headers.get("webhook-timestamp", "0")) - self.clock()) <= 300

    async def hook(self, request: Request) -> Response:
        headers, body = dict(request.headers), await request.body()
        self.got.append((headers, body))
        if not self.verifies(headers, body):
            self.unverified.append(body)
            return Response(status_code=400)
        if not self.timely(headers):
            self.late.append(body)  # refused as a receiver would; the gateway retries
            return Response(status_code=400)
        return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

    def events(self) -> list[dict[str, Any]]:
        """Each event once (by its id), in the order first received."""
        seen: dict[str, dict[str, Any]] = {}
        for _, body in self.got:
            event = json.loads(body)
            seen.setdefault(event["id"], event)
        return list(seen.values())
