from gateway.domain import AssetKind

BALANCES = {
    "paymob-eg:available:EGP": ("1292.25", "1292.25", AssetKind.CASH),
    "paymob-eg:commission:EGP": ("12.90", "12.90", AssetKind.COMMISSION),
}

# The provider documents no failure body for its balance: the switch changes nothing.
DOCUMENTED_FAILURE = None

# Paymob documents every field of a balance-transaction row: none is optional.
OPTIONAL_FIELDS: tuple[str, ...] = ()
