"""The wallet: balances and recharges (`/billing/v1`)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    billing_router,
    require_operator,
)
from accrual.billing.services.wallet import Overview, Recharged
from accrual.contract.errors import Invalid
from accrual.infra.http import Text, error_responses
from accrual.money import InvalidDecimal, format_minor

router = billing_router()


class RechargeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "amount": "100.00", "reference": "bank-transfer-2026-11-25-0042"}]})

    amount: str | int = Field(description="Decimal string in the center's currency, > 0, "
                                          "at most 2 decimal places, at most 1000000000000.00")
    reference: Text = Field(description="The transfer's reference; a repeated reference credits once",
                           max_length=128)


class OverviewOut(BaseModel):
    currency: str
    cash: str
    vouchers: str
    prepaid_cards: str
    arrears: str


@router.get("/accounts/{account_id}/overview", response_model=OverviewOut,
            tags=["billing: wallet"], responses=error_responses(401, 403, 404))
def overview(account_id: AccountDep, center: CenterDep) -> dict[str, str]:
    """Balances: cash, vouchers and prepaid cards held, and the arrears owed (all decimal strings)."""
    return overview_json(center.wallet.overview(account_id))


@router.post("/admin/accounts/{account_id}/recharges", tags=["billing: operator"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 409, 422))
def recharge(account_id: str, body: RechargeIn, center: CenterDep) -> dict[str, Any]:
    """Credit cash for an offline transfer. The same reference credits once; reusing it with
    another amount is 409 `idempotency_conflict` (a replay answers the first credit's entry,
    `created: false`, with the balances as they are now). A top-up pays arrears first, and
    paying all that is owed unlocks the account's workspaces at once. An amount past
    1000000000000.00 is 422 `invalid_amount`; a credit that would take the cash balance past
    1000000000000000.00 is 422 `balance_limit_exceeded` and credits nothing."""
    try:
        recharged = center.wallet.recharge(account_id, body.amount, body.reference)
    except InvalidDecimal as error:
        raise Invalid("invalid_amount", f"amount {error.reason}") from None
    return recharge_json(recharged)


def overview_json(overview: Overview) -> dict[str, str]:
    """Balances as the API shows them: decimal strings in the center's currency."""
    currency = overview.currency
    return {"currency": currency, "cash": format_minor(overview.cash_minor, currency),
            "vouchers": format_minor(overview.vouchers_minor, currency),
            "prepaid_cards": format_minor(overview.prepaid_cards_minor, currency),
            "arrears": format_minor(overview.arrears_minor, currency)}


def recharge_json(recharged: Recharged) -> dict[str, Any]:
    return {"entry_id": recharged.entry_id, "created": recharged.created,
            "amount": format_minor(recharged.amount_minor, recharged.balances.currency),
            "reference": recharged.reference, **overview_json(recharged.balances)}
