"""Marketplace adapters, one per vendor, behind ``billing.domain.marketplace.Marketplace``.

Which vendors a billing center settles through, and with which listing, is
configuration (one center per currency; Azure only in USD, decisions.md 14).
"""

from __future__ import annotations

from collections.abc import Iterable

from accrual.billing.domain.marketplace import Marketplace
from accrual.contract.errors import Unavailable


class Marketplaces:
    """The configured adapters, by vendor."""

    def __init__(self, adapters: Iterable[Marketplace] = ()) -> None:
        self.by_vendor: dict[str, Marketplace] = {a.vendor: a for a in adapters}

    def get(self, vendor: str) -> Marketplace:
        adapter = self.by_vendor.get(vendor)
        if adapter is None:
            raise Unavailable("marketplace_not_configured",
                              f"this billing center has no {vendor} marketplace configured")
        return adapter

    def __contains__(self, vendor: object) -> bool:
        return vendor in self.by_vendor
