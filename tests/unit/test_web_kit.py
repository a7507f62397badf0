"""The pages' shared kit: languages, money per locale, tables, redirect targets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from accrual.contract.errors import ServiceError
from accrual.web import i18n, refusals
from accrual.web.paging import table
from accrual.web.security import local_path


@pytest.mark.parametrize(("header", "expected"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en-US,en;q=0.9", "en"), ("fr-FR, zh;q=0.5", "zh"),
    ("de, fr", "en"), ("", "en"), (None, "en"), ("en;q=0.2, zh-Hans;q=0.9", "zh"),
    ("zh;q=0, en;q=0.1", "en"), ("zh;q=abc, en", "en")])
def test_the_browser_language_is_the_first_supported_by_weight(header: str | None, expected: str) -> None:
    assert i18n.best_accepted(header) == expected


def test_money_is_written_with_the_currency_symbol_of_the_language() -> None:
    assert i18n.money(Decimal("1234.5"), "CNY", "zh") == "¥1,234.50"
    assert i18n.money("1234.50", "CNY", "en") == "CN¥1,234.50"
    assert i18n.money(Decimal("-3.4"), "USD", "en") == "-$3.40"
    assert i18n.money("0.01", "USD", "zh") == "US$0.01"
    # Exact beyond a float's precision.
    assert i18n.money("12345678901234.56", "CNY", "zh") == "¥12,345,678,901,234.56"


def test_a_table_sorts_on_known_keys_only_and_clamps_the_page() -> None:
    rows = [{"n": n, "name": f"r{n:02d}"} for n in range(45)]
    keys = {"n": lambda r: r["n"], "name": lambda r: r["name"]}
    first = table(rows, {"sort": "n", "order": "desc", "page": "1", "month": "2026-11"}, keys,
                  default_sort="name")
    assert [r["n"] for r in first.rows[:3]] == [44, 43, 42]
    assert (first.pages, first.total, len(first.rows)) == (3, 45, 20)
    assert "month=2026-11" in first.link(page=2) and "page=2" in first.link(page=2)
    last = table(rows, {"sort": "__class__", "page": "99999999"}, keys, default_sort="name")
    assert last.sort == "name" and last.page == 3 and len(last.rows) == 5
    assert table(rows, {"page": "-1"}, keys, default_sort="n").page == 1
    assert table([], {}, keys, default_sort="n").pages == 1


@pytest.mark.parametrize(("target", "expected"), [
    ("/console/workspaces/x/", "/console/workspaces/x/"), ("//evil.example/", "/"),
    ("https://evil.example/", "/"), ("/\\evil", "/"), ("javascript:alert(1)", "/"), (None, "/"),
    ("/a\nb", "/")])
def test_redirects_stay_on_the_site(target: object, expected: str) -> None:
    assert local_path(target, "/") == expected


def test_a_refusal_is_shown_in_the_pages_language_by_its_code() -> None:
    zh = i18n.translations("zh", Path(refusals.__file__).parent / "locale").gettext
    wrong = ServiceError("invalid_credentials", "email or password is wrong")
    assert refusals.in_language(wrong, "en", zh) == "email or password is wrong"
    assert refusals.in_language(wrong, "zh", zh) == "账号或密码错误。"
    # A code without a text keeps the service's words.
    odd = ServiceError("some_new_code", "a new refusal")
    assert refusals.in_language(odd, "zh", zh) == "a new refusal"


def test_every_refusal_text_is_for_a_code_the_services_raise() -> None:
    """A stale entry (a code renamed in a service) would silently stop translating."""
    source = "\n".join(path.read_text() for path in Path(refusals.__file__).parents[1].rglob("*.py")
                       if path.name != "refusals.py")
    unused = [code for code in refusals.TEXTS if f'"{code}"' not in source]
    assert unused == []
