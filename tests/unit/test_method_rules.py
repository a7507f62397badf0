"""Settlement method rules, without a database: what is offered, and the once-a-month change."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accrual.billing.domain import methods as rules
from accrual.billing.domain.methods import Binding
from accrual.contract.errors import Conflict, Invalid, NotFound

TODAY = date(2026, 11, 26)
MINE = Binding("ba_1", "billing_center")


def change(method: str = "aws", *, current: Binding | None = MINE, upcoming: Binding = MINE,
           linked: bool = True, changed: bool = False) -> None:
    rules.check_change(account_id="ba_1", workspace_id="ws_1", method=method, today=TODAY,
                       current=current, upcoming=upcoming, cloud_account_linked=linked,
                       changed_this_month=changed)


def test_azure_only_in_usd() -> None:
    assert "azure" not in rules.available("CNY")
    assert "azure" in rules.available("USD")
    assert rules.check_method("aws", "CNY") == "aws"
    with pytest.raises(Invalid) as refused:
        rules.check_method("azure", "CNY")
    assert refused.value.code == "method_not_available"
    for bad in ("paypal", None, 3):
        with pytest.raises(Invalid) as refused:
            rules.check_method(bad, "CNY")
        assert refused.value.code == "invalid_settlement_method"
    with pytest.raises(Invalid, match=r"one of aws, aliyun, huawei$"):
        rules.check_vendor("billing_center", "CNY")
    assert rules.check_vendor("azure", "USD") == "azure"


def test_cloud_account_ids() -> None:
    assert rules.check_cloud_account_id("  hw-0042 ") == "hw-0042"
    for bad in ("   ", "x" * 129, None):
        with pytest.raises(Invalid) as refused:
            rules.check_cloud_account_id(bad)
        assert refused.value.code == "invalid_cloud_account"


def test_a_change_allowed() -> None:
    change()
    change("billing_center", upcoming=Binding("ba_1", "aws"), linked=False)


@pytest.mark.parametrize(("kwargs", "kind", "code"), [
    ({"current": None}, NotFound, "workspace_not_found"),
    ({"current": Binding("ba_2", "aws")}, NotFound, "workspace_not_found"),
    ({"upcoming": Binding("ba_2", "billing_center")}, Conflict, "binding_changing"),
    ({"upcoming": Binding("ba_1", "aws")}, Conflict, "settlement_unchanged"),
    ({"linked": False}, Conflict, "cloud_account_required"),
    ({"changed": True}, Conflict, "settlement_change_limit"),
])
def test_a_change_refused(kwargs: dict[str, object], kind: type[Exception], code: str) -> None:
    with pytest.raises(kind) as refused:
        change(**kwargs)  # type: ignore[arg-type]  # each case sets one keyword
    assert getattr(refused.value, "code", None) == code


def test_the_limit_names_the_next_month() -> None:
    with pytest.raises(Conflict, match="next possible on 2026-12-01"):
        change(changed=True)


@given(st.dates(date(2000, 1, 1), date(2099, 12, 31)))
def test_month_of_and_effective_day(day: date) -> None:
    start, following = rules.month_of(day)
    assert start.day == 1 and following.day == 1 and start <= day < following
    assert (following.year * 12 + following.month) - (start.year * 12 + start.month) == 1
    assert (rules.effective_from(day) - day).days == 1
