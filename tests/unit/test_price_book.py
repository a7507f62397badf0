"""The default price book against reference-billing.md §2.2, and PriceBook's rules.

Every expected price below is a literal copied from the reference's tables;
none is computed from the catalog or the CSV under test.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from accrual.catalog import ITEMS, NoPrice, PriceBook, PriceRow, load_default_price_book
from accrual.catalog.pricebook import InvalidPriceBook

DAY = date(2026, 11, 25)
COLUMNS = (("CNY", "cn"), ("CNY", "intl"), ("USD", "cn"), ("USD", "intl"))

# item -> retention tier (0 = untiered) -> (RMB CN, RMB Intl, USD CN, USD Intl)
CURRENT: dict[str, dict[int, tuple[str, str, str, str]]] = {
    # §2.2.2 Timeseries, per 1,000 daily active timelines
    "timeseries": {
        3: ("0.6", "1.6", "0.09", "0.23"),
        7: ("0.7", "1.8", "0.1", "0.26"),
        14: ("0.8", "2.2", "0.12", "0.32"),
        30: ("1", "2.4", "0.14", "0.35"),
        180: ("4", "8", "0.58", "1.2"),
        360: ("7", "14", "1", "2"),
    },
    # §2.2.2 Logs (record count), per 1,000,000 records
    "logs": {
        3: ("1", "2", "0.15", "0.3"),
        7: ("1.2", "2.4", "0.17", "0.4"),
        14: ("1.5", "3", "0.22", "0.5"),
        30: ("2", "4", "0.28", "0.6"),
        60: ("2.5", "5", "0.36", "0.8"),
    },
    # §2.2.2 APM Trace (current prices), per 1,000,000 traces
    "trace": {
        3: ("2", "6", "0.29", "0.9"),
        7: ("3", "10", "0.43", "1.4"),
        14: ("6", "20", "0.86", "2.8"),
        30: ("10.8", "36", "1.54", "5.14"),
        60: ("19.44", "64.8", "2.78", "9.26"),
    },
    # §2.2.2 APM Profile, per 10,000 profiles
    "profile": {
        3: ("0.2", "0.4", "0.03", "0.06"),
        7: ("0.3", "0.6", "0.04", "0.09"),
        14: ("0.5", "1", "0.07", "0.14"),
    },
    # §2.2.2 RUM PV (current prices), per 10,000 PV
    "rum_pv": {
        3: ("0.7", "2", "0.1", "0.29"),
        7: ("1", "3", "0.14", "0.43"),
        14: ("2", "5", "0.29", "0.71"),
        30: ("3.6", "9", "0.51", "1.29"),
        60: ("6.48", "16.2", "0.93", "2.31"),
    },
    # §2.2.1 Basic items
    "sensitive_scan": {0: ("0.1", "0.2", "0.014", "0.028")},
    "scheduled_report": {0: ("1", "2", "0.14", "0.28")},
    "forward_external": {0: ("0.35", "0.7", "0.05", "0.1")},
    # Internal storage: one price whatever the backup retention (decisions.md vocabulary).
    "forward_internal": {
        180: ("0.007", "0.014", "0.001", "0.002"),
        360: ("0.007", "0.014", "0.001", "0.002"),
        720: ("0.007", "0.014", "0.001", "0.002"),
    },
    "network_host": {0: ("2", "4", "0.29", "0.6")},
    "session_replay": {0: ("2.5", "2.5", "0.35", "0.35")},  # current
    "synthetic_test": {0: ("1", "10", "0.143", "1.43")},
    "trigger": {0: ("1", "2", "0.14", "0.3")},
    "central_pipeline": {0: ("0.1", "0.2", "0.014", "0.028")},
}
SMS_CNY_CN = "1"  # §2.2.1: SMS per 10 messages, RMB CN only; n/a elsewhere


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return load_default_price_book()


CASES = [
    pytest.param(item, tier, currency, group, prices[column], id=f"{item}-{tier}-{currency}-{group}")
    for item, tiers in CURRENT.items()
    for tier, prices in tiers.items()
    for column, (currency, group) in enumerate(COLUMNS)
]


@pytest.mark.parametrize("item, tier, currency, group, expected", CASES)
def test_current_price_matches_the_reference(book: PriceBook, item: str, tier: int, currency: str,
                                             group: str, expected: str) -> None:
    price = book.price(currency, group, item, tier, DAY)
    assert price.unit_price == Decimal(expected)
    assert price.version.startswith("current@")


def test_the_table_covers_every_current_item_and_tier() -> None:
    """So that a new item or tier in the catalog cannot slip past the table above."""
    current = {code for code, item in ITEMS.items() if not item.legacy}
    assert set(CURRENT) | {"sms"} == current
    for code, tiers in CURRENT.items():
        assert tuple(tiers) == (ITEMS[code].tiers or (0,)), code


def test_sms_is_priced_only_in_cny_on_china_sites(book: PriceBook) -> None:
    assert book.price("CNY", "cn", "sms", 0, DAY).unit_price == Decimal(SMS_CNY_CN)
    for currency, group in COLUMNS[1:]:
        with pytest.raises(NoPrice):
            book.price(currency, group, "sms", 0, DAY)


def test_the_price_book_version_names_the_row_in_force(book: PriceBook) -> None:
    assert book.price("CNY", "cn", "timeseries", 3, DAY).version == "current@2023-11-02"
    assert book.price("USD", "intl", "central_pipeline", 0, DAY).version == "current@2024-06-26"


@pytest.mark.parametrize("item, tier", [
    ("timeseries", 60), ("logs", 180), ("profile", 30), ("trigger", 7), ("logs", 0),
    ("forward_internal", 0), ("nonexistent", 0),
])
def test_no_price_for_tiers_an_item_does_not_offer(book: PriceBook, item: str, tier: int) -> None:
    with pytest.raises(NoPrice):
        book.price("CNY", "cn", item, tier, DAY)


def test_no_price_for_unknown_currency_or_site_group(book: PriceBook) -> None:
    with pytest.raises(NoPrice):
        book.price("EUR", "cn", "logs", 7, DAY)
    with pytest.raises(NoPrice):
        book.price("CNY", "eu", "logs", 7, DAY)


def test_no_price_before_the_book(book: PriceBook) -> None:
    with pytest.raises(NoPrice) as caught:
        book.price("CNY", "cn", "logs", 7, date(1999, 12, 31))
    error = caught.value
    assert (error.currency, error.site_group, error.item, error.tier, error.day) == (
        "CNY", "cn", "logs", 7, date(1999, 12, 31))
    assert "logs" in str(error) and "1999-12-31" in str(error)


def test_central_pipeline_is_priced_from_2024_06_26(book: PriceBook) -> None:
    with pytest.raises(NoPrice):
        book.price("CNY", "cn", "central_pipeline", 0, date(2024, 6, 25))
    assert book.price("CNY", "cn", "central_pipeline", 0, date(2024, 6, 26)).unit_price == Decimal("0.1")


def test_current_prices_apply_from_2023_11_02(book: PriceBook) -> None:
    price = book.price("CNY", "cn", "trigger", 0, date(2023, 11, 2))
    assert (price.unit_price, price.version) == (Decimal("1"), "current@2023-11-02")


# decisions.md 8: "The default book ships both the current prices (effective
# 2023-11-02) and the legacy ones before that, so that historical days are
# priced as they were." Legacy values are the bracketed ones of §2.2 and the
# legacy Session Replay row (from 2023-04-20); the 30/60-day Trace and PV tiers
# exist since 2023-08-24, so 2023-10-01 is a legacy day for all of them.
LEGACY_DAY = date(2023, 10, 1)
LEGACY: dict[tuple[str, int], tuple[str, str, str, str]] = {
    ("session_replay", 0): ("10", "15.4", "1.43", "2.2"),
    ("trace", 30): ("18", "60", "2.58", "8.4"),
    ("trace", 60): ("60", "200", "8.58", "28"),
    ("rum_pv", 30): ("6", "15", "0.87", "2.13"),
    ("rum_pv", 60): ("20", "50", "2.9", "7.1"),
}


def test_default_book_prices_legacy_days_as_they_were(book: PriceBook) -> None:
    wrong = {}
    for (item, tier), prices in LEGACY.items():
        for (currency, group), expected in zip(COLUMNS, prices, strict=True):
            try:
                got: object = book.price(currency, group, item, tier, LEGACY_DAY).unit_price
            except NoPrice:
                got = "no price"
            if got != Decimal(expected):
                wrong[(item, tier, currency, group)] = (got, expected)
    # §2.2.3: DataKit, 3 CNY per host per day, retired 2023-04-20.
    try:
        datakit: object = book.price("CNY", "cn", "datakit", 0, date(2023, 3, 1)).unit_price
    except NoPrice:
        datakit = "no price"
    if datakit != Decimal("3"):
        wrong[("datakit", 0, "CNY", "cn")] = (datakit, "3")
    assert wrong == {}


# -- PriceBook rules on hand-made rows ----------------------------------------------


def row(item: str = "logs", tier: int = 7, effective: date = date(2024, 1, 1), price: str = "1.2",
        currency: str = "CNY", group: str = "cn", name: str = "test") -> PriceRow:
    return PriceRow(name, effective, currency, group, item, tier, Decimal(price))


def test_duplicate_rows_are_refused() -> None:
    with pytest.raises(InvalidPriceBook):
        PriceBook([row(), row(price="1.3")])
    with pytest.raises(InvalidPriceBook):
        PriceBook([row(), row()])


def test_unknown_items_are_refused() -> None:
    with pytest.raises(InvalidPriceBook, match="unknown item"):
        PriceBook([row(item="lgos")])


def test_negative_prices_are_refused() -> None:
    with pytest.raises(InvalidPriceBook):
        PriceBook([row(price="-0.01")])


def test_the_same_key_in_other_columns_or_dates_is_no_duplicate() -> None:
    book = PriceBook([row(), row(group="intl", price="2.4"), row(currency="USD", price="0.17"),
                      row(tier=3, price="1"), row(effective=date(2025, 1, 1), price="1.1")])
    assert book.price("CNY", "intl", "logs", 7, DAY).unit_price == Decimal("2.4")
    assert book.price("USD", "cn", "logs", 7, DAY).unit_price == Decimal("0.17")
    assert book.price("CNY", "cn", "logs", 3, DAY).unit_price == Decimal("1")


def test_the_row_in_force_on_a_day_is_the_latest_one_effective_by_then() -> None:
    rows = [row(effective=date(2025, 1, 1), price="1.1", name="new"),
            row(effective=date(2024, 1, 1), price="1.2", name="old"),
            row(effective=date(2026, 1, 1), price="1.0", name="newest")]
    book = PriceBook(rows)  # given out of order on purpose
    expectations = [
        (date(2024, 1, 1), "1.2", "old@2024-01-01"),
        (date(2024, 12, 31), "1.2", "old@2024-01-01"),
        (date(2025, 1, 1), "1.1", "new@2025-01-01"),
        (date(2025, 12, 31), "1.1", "new@2025-01-01"),
        (date(2026, 1, 1), "1.0", "newest@2026-01-01"),
        (date(2030, 1, 1), "1.0", "newest@2026-01-01"),
    ]
    for day, price, version in expectations:
        found = book.price("CNY", "cn", "logs", 7, day)
        assert (found.unit_price, found.version) == (Decimal(price), version), day
    with pytest.raises(NoPrice):
        book.price("CNY", "cn", "logs", 7, date(2023, 12, 31))


HEADER = "book,effective_from,currency,site_group,item,retention_days,unit_price\n"


def default_csv() -> str:
    return resources.files("accrual.catalog").joinpath("data/prices.csv").read_text("utf-8")


def test_from_csv_reads_a_book_and_its_later_versions(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(default_csv().rstrip("\n")
                    + "\nnext, 2027-01-01 ,CNY,cn,logs,7, 1.3 \nnext,2027-01-01,CNY,cn,trigger,0,0.9\n")
    book = PriceBook.from_csv(path)
    assert book.price("CNY", "cn", "logs", 7, DAY).unit_price == Decimal("1.2")
    later = book.price("CNY", "cn", "logs", 7, date(2027, 1, 1))
    assert (later.unit_price, later.version) == (Decimal("1.3"), "next@2027-01-01")
    assert book.price("CNY", "cn", "trigger", 0, date(2027, 6, 1)).unit_price == Decimal("0.9")
    assert book.price("CNY", "intl", "logs", 7, date(2027, 6, 1)).unit_price == Decimal("2.4")


@pytest.mark.parametrize("line", [
    "b,2024-13-01,CNY,cn,logs,7,1.2",       # bad date
    "b,2024-01-01,CNY,cn,logs,seven,1.2",   # bad tier
    "b,2024-01-01,CNY,cn,logs,7,abc",       # bad price
    "b,2024-01-01,CNY,cn,logs,7,NaN",       # not a number
    "b,2024-01-01,CNY,cn,logs,7",           # missing column
])
def test_from_csv_refuses_bad_lines_naming_the_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "b,2024-01-01,CNY,cn,trigger,0,1\n" + line + "\n")
    with pytest.raises(InvalidPriceBook, match="line 3"):
        PriceBook.from_csv(path)


def test_from_csv_refuses_duplicates_and_unknown_items(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "b,2024-01-01,CNY,cn,logs,7,1.2\nc,2024-01-01,CNY,cn,logs,7,1.3\n")
    with pytest.raises(InvalidPriceBook):
        PriceBook.from_csv(path)
    path.write_text(HEADER + "b,2024-01-01,CNY,cn,mystery,0,1\n")
    with pytest.raises(InvalidPriceBook):
        PriceBook.from_csv(path)
