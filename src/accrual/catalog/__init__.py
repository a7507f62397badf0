"""Billing items, their counting rules and the price book: pure data and rules.

Collectors may import this package to compute billable units themselves.
"""

from accrual.catalog.items import ITEMS, BillingItem, DailyRule, item_for
from accrual.catalog.pricebook import (
    InvalidPriceBook,
    NoPrice,
    PriceBook,
    PriceRow,
    load_default_price_book,
    load_price_book,
)

__all__ = [
    "ITEMS",
    "BillingItem",
    "DailyRule",
    "InvalidPriceBook",
    "NoPrice",
    "PriceBook",
    "PriceRow",
    "item_for",
    "load_default_price_book",
    "load_price_book",
]
