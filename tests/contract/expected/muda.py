from gateway.domain import AssetKind
from gateway.errors import ErrorCode

BALANCES = {
    "muda-ug:UGX:issuer_ugx": ("4621.0000000", "4621.0000000", AssetKind.CASH),
    "muda-ug:KES:issuer_kes": ("1520.5000000", "1520.5000000", AssetKind.CASH),
    "muda-ug:TZS:issuer_tzs": ("0", "0", AssetKind.CASH),
    "muda-ug:cUGX:issuer_ugx": ("650.0000000", "650.0000000", AssetKind.COLLATERAL),
    "muda-ug:cKES:issuer_kes": ("0", "0", AssetKind.COLLATERAL),
    "muda-ug:cTZS:issuer_tzs": ("12.2500000", "12.2500000", AssetKind.COLLATERAL),
}

# `{"status": 400, "message": "Failed to fetch balances", "data": null}`: the provider's
# trouble, not the caller's, whatever the HTTP status.
DOCUMENTED_FAILURE = ErrorCode.UPSTREAM_UNAVAILABLE

# The row fields its fake leaves out of every 10th row, as they come out of the adapter.
OPTIONAL_FIELDS = ("reference", "initiator", "recipient", "counterparty", "fee", "channel")
