"""A configured provider account, as adapters see it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

from gateway.config.secret import Secret
from gateway.domain import AccountInfo, Capability, ProviderKind, ThresholdRule


@dataclass(frozen=True)
class AccountConfig:
    id: str
    provider: ProviderKind
    base_url: str
    label: str
    capabilities: tuple[Capability, ...]
    credentials: dict[str, Secret] = field(default_factory=dict)
    currency: str | None = None
    country: str | None = None
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    timeout_seconds: float = 10.0
    fresh_seconds: float = 15.0
    stale_seconds: float = 300.0
    calls_per_minute: int | None = None
    calls_per_day: int | None = None
    topup_status: str = "completed"  # Our Voice: the collected payment's status
    topup_max_amount: Decimal = Decimal("10000000")
    # Histories read by date range (Magma): the range asked for when the client gives none
    # (the provider would answer today only), and the longest range asked for at once.
    history_days: int = 7
    history_window_days: int = 31
    thresholds: tuple[ThresholdRule, ...] = ()  # low-balance levels ([[…thresholds]])

    @cached_property
    def info(self) -> AccountInfo:
        """Built once: asked for on every request, for every account."""
        return AccountInfo(self.id, self.provider, self.label, self.capabilities)

    @cached_property
    def fingerprint(self) -> str:
        """Names this connection (provider, URL, credentials) in cache keys without
        revealing any secret: two accounts differ here whenever their data may differ.
        Built once (settings are immutable); every request's cache keys use it."""
        digest = hashlib.sha256(f"{self.provider.value}\n{self.base_url}".encode())
        for name in sorted(self.credentials):
            digest.update(f"\n{name}={self.credentials[name].fingerprint()}".encode())
        return digest.hexdigest()[:20]

    def secret(self, name: str) -> str:
        return self.credentials[name].reveal()

    def optional_secret(self, name: str) -> str | None:
        secret = self.credentials.get(name)
        return secret.reveal() if secret else None
