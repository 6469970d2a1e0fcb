"""What each provider's first seed tenant looks like once normalised: one module per
provider kind, named as in `gateway.registry`, each defining `BALANCES`
(balance id → (total, available, asset kind))."""
