"""What `GET /metrics` answers, wherever it is asked: on the main port (behind the
`metrics:read` scope, `edge.py`) and on the `[metrics] listen` listener
(`metrics_listener.py`) — one object, so both ports always say the same thing.

The registry is rendered as it is, except the one figure read at scrape time rather than
kept up to date: the top-ups whose outcome is unknown, counted from the journal (a stuck
top-up must show even when nothing else happens in the process).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from gateway.clock import Clock
from gateway.observability.metrics import Metrics
from gateway.services.journal import Journal

log = logging.getLogger("gateway.edge")


class Exposition:
    """`await exposition()` → the Prometheus text of this process. `state` is the app's
    (`app.state`): the journal appears there once the lifespan has opened it."""

    def __init__(self, metrics: Metrics, state: Any, clock: Clock) -> None:
        self.metrics = metrics
        self.state = state
        self.clock = clock

    async def __call__(self) -> bytes:
        journal: Journal | None = getattr(self.state, "journal", None)
        if journal is not None:
            try:
                self.metrics.journal_pending.set(await journal.pending_count(self.clock()))
            except Exception as exc:  # the scrape still answers; the gauge keeps its value
                log.warning("metrics: cannot count pending top-ups (%s)", exc)
        return self.metrics.render()


def metrics_response(body: bytes) -> Response:
    """The Prometheus text, never cached on the way."""
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
