from gateway.domain import AssetKind
from gateway.simulator.magma_onepay import MAGMA

BALANCES = {
    f"magma:{'CD' if c['code'] == 'RDC' else c['code']}:{c['currency']}": (
        str(c["balance"]),
        str(c["balance_available"]),
        AssetKind.CASH,
    )
    for c in MAGMA[0].corridors
}

# The provider documents no failure body for its balance: the switch changes nothing.
DOCUMENTED_FAILURE = None

# The row fields its fake leaves out of every 10th row, as they come out of the adapter.
OPTIONAL_FIELDS = (
    "reference",
    "recipient",
    "counterparty",
    "counterparty_name",
    "channel",
    "country",
    "completed_at",
)
