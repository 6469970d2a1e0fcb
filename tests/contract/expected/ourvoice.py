from gateway.domain import AssetKind

BALANCES = {"ourvoice-sn:credit:XOF": ("50000", "50000", AssetKind.PREPAID_CREDIT)}
