"""The price book as data: (currency, site group, item, tier, effective from) → unit price."""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path

from accrual.catalog.items import ITEMS
from accrual.money import to_decimal

# The four price columns of the reference (currency × site group).
COLUMNS = (("CNY", "cn"), ("CNY", "intl"), ("USD", "cn"), ("USD", "intl"))
# From this day on a price book must price every current item completely.
CURRENT_BOOK_FROM = date(2023, 11, 2)


class NoPrice(LookupError):
    def __init__(self, currency: str, site_group: str, item: str, tier: int, day: date) -> None:
        super().__init__(
            f"no price for {item} (tier {tier}) in {currency}/{site_group} on {day.isoformat()}"
        )
        self.currency, self.site_group, self.item, self.tier, self.day = (
            currency, site_group, item, tier, day)


class InvalidPriceBook(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PriceRow:
    book: str
    effective_from: date
    currency: str
    site_group: str
    item: str
    retention_days: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class Price:
    unit_price: Decimal
    version: str  # "<book>@<effective_from>", carried on every billing detail


class PriceBook:
    def __init__(self, rows: Iterable[PriceRow]) -> None:
        self.rows = sorted(rows, key=lambda r: (r.currency, r.site_group, r.item,
                                                r.retention_days, r.effective_from))
        self._index: dict[tuple[str, str, str, int], tuple[list[date], list[PriceRow]]] = {}
        for row in self.rows:
            if row.item not in ITEMS:
                raise InvalidPriceBook(f"unknown item {row.item!r}")
            if row.unit_price < 0:
                raise InvalidPriceBook(f"negative price for {row.item}")
            dates, entries = self._index.setdefault(
                (row.currency, row.site_group, row.item, row.retention_days), ([], []))
            if dates and dates[-1] == row.effective_from:
                raise InvalidPriceBook(
                    f"two prices for {row.item} tier {row.retention_days} in "
                    f"{row.currency}/{row.site_group} from {row.effective_from}")
            dates.append(row.effective_from)
            entries.append(row)

    def price(self, currency: str, site_group: str, item: str, tier: int, day: date) -> Price:
        found = self._index.get((currency, site_group, item, tier))
        if found is not None and ITEMS[item].billed_on(day):
            dates, entries = found
            position = bisect_right(dates, day)
            if position:
                row = entries[position - 1]
                return Price(row.unit_price, f"{row.book}@{row.effective_from.isoformat()}")
        raise NoPrice(currency, site_group, item, tier, day)

    def versions(self) -> list[date]:
        return sorted({row.effective_from for row in self.rows})

    def validate(self, complete_from: date = CURRENT_BOOK_FROM) -> None:
        """Refuse a book with holes: from ``complete_from`` on, on every day a price
        changes, every current item is priced for every tier it offers in every
        column it is sold in, and nothing is priced where it is not sold."""
        problems = []
        for row in self.rows:
            item = ITEMS[row.item]
            if not item.offered(row.site_group, row.currency):
                problems.append(f"{row.item} is not sold in {row.currency}/{row.site_group}")
            elif row.retention_days not in item.price_tiers():
                problems.append(f"{row.item} has no retention tier {row.retention_days}")
        days = [d for d in self.versions() if d >= complete_from] or [complete_from]
        if complete_from not in days:
            days.insert(0, complete_from)
        for day in days:
            for currency, site_group in COLUMNS:
                for item in ITEMS.values():
                    if item.legacy or not item.billed_on(day) \
                            or not item.offered(site_group, currency):
                        continue
                    for tier in item.price_tiers():
                        try:
                            self.price(currency, site_group, item.code, tier, day)
                        except NoPrice as missing:
                            problems.append(str(missing))
        if problems:
            shown = "; ".join(sorted(set(problems))[:10])
            raise InvalidPriceBook(f"{len(set(problems))} problem(s): {shown}")

    @classmethod
    def from_csv(cls, path: Path | str, *, validate: bool = True) -> PriceBook:
        with open(path, newline="", encoding="utf-8") as handle:
            book = cls(_parse(csv.DictReader(handle)))
        if validate:
            book.validate()
        return book


def _parse(reader: Iterable[dict[str, str]]) -> list[PriceRow]:
    rows = []
    for line, raw in enumerate(reader, start=2):
        try:
            rows.append(PriceRow(
                book=raw["book"].strip(),
                effective_from=date.fromisoformat(raw["effective_from"].strip()),
                currency=raw["currency"].strip(),
                site_group=raw["site_group"].strip(),
                item=raw["item"].strip(),
                retention_days=int(raw["retention_days"]),
                unit_price=to_decimal(raw["unit_price"].strip()),
            ))
        except (KeyError, ValueError, AttributeError, TypeError) as error:
            # A short line leaves columns as None (AttributeError on .strip()).
            raise InvalidPriceBook(f"line {line}: missing or malformed column ({error})") from error
    return rows


def load_price_book(path: Path | str | None = None) -> PriceBook:
    """The deployment's book if a path is given, else the one shipped with Accrual."""
    return PriceBook.from_csv(path) if path else load_default_price_book()


def load_default_price_book() -> PriceBook:
    data = resources.files("accrual.catalog").joinpath("data/prices.csv")
    with resources.as_file(data) as path:
        return PriceBook.from_csv(path)
