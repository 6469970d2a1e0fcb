"""The HTTP side of webhook notifications (`services/notifications.py` decides what to
send and when): one POST, its status, or an exception when no answer came back."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

TIMEOUT_SECONDS = 10.0


class WebhookClient:
    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(
            transport=transport, timeout=TIMEOUT_SECONDS, follow_redirects=False
        )

    async def post(self, url: str, body: str, headers: Mapping[str, str]) -> int:
        response = await self._http.post(url, content=body.encode(), headers=dict(headers))
        return response.status_code

    async def aclose(self) -> None:
        await self._http.aclose()
