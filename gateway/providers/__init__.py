"""The provider registry: plain data, one line per provider kind."""

from gateway.domain import ProviderKind
from gateway.providers import magma_onepay, muda, ourvoice, paymob_bills
from gateway.providers.base import BalanceProvider, ProviderSpec, TransactionSource

PROVIDERS: dict[ProviderKind, ProviderSpec] = {
    ProviderKind.OURVOICE: ourvoice.SPEC,
    ProviderKind.MAGMA_ONEPAY: magma_onepay.SPEC,
    ProviderKind.MUDA: muda.SPEC,
    ProviderKind.PAYMOB_BILLS: paymob_bills.SPEC,
}

__all__ = ["PROVIDERS", "BalanceProvider", "ProviderSpec", "TransactionSource"]
