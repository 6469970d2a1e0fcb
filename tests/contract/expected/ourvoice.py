from gateway.domain import AssetKind

BALANCES = {"ourvoice-sn:credit:XOF": ("50000", "50000", AssetKind.PREPAID_CREDIT)}

# The provider documents no failure body for its balance: the switch changes nothing.
DOCUMENTED_FAILURE = None
