"""Prepaid cards and vouchers (`/billing/v1`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from accrual.billing.api.deps import (
    AccountDep,
    CenterDep,
    billing_router,
    idempotency_key_header,
    require_operator,
)
from accrual.billing.services.instruments import (
    CARD,
    Card,
    CardIssued,
    Voucher,
    VoucherCodes,
    VoucherIssued,
)
from accrual.billing.services.voucher_batches import MAX_BATCHES
from accrual.contract.errors import Invalid
from accrual.infra.http import Text, error_responses
from accrual.money import InvalidDecimal, format_minor

router = billing_router()
T = TypeVar("T")

_AMOUNT = ("Decimal string in the center's currency, > 0, at most 2 decimal places, at most "
           "1000000000000.00")

_CARD_EXAMPLE: dict[str, Any] = {
    "number": "PC40918273645501", "kind": "card", "source": "purchase", "face_value": "10000.00",
    "balance": "9876.54", "currency": "CNY", "status": "active",
    "valid_from": "2026-11-26T02:00:00+00:00", "expires_at": "2027-11-26T02:00:00+00:00",
    "expired_at": None, "note": None, "purchased_at": "2026-11-26T02:00:00+00:00",
    "paid_with_cash": "10000.00", "bonus_voucher": "VC11223344556677", "created": True}
_VOUCHER_EXAMPLE: dict[str, Any] = {
    "number": "VC11223344556677", "kind": "voucher_discount", "source": "bonus",
    "face_value": "1000.00", "balance": "1000.00", "currency": "CNY", "status": "active",
    "valid_from": "2026-11-26T02:00:00+00:00", "expires_at": "2027-02-24T02:00:00+00:00",
    "expired_at": None, "note": "bonus for card PC40918273645501",
    "activated_at": "2026-11-26T02:00:00+00:00", "origin": "PC40918273645501"}


class InstrumentOut(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_CARD_EXAMPLE,
                                                                              _VOUCHER_EXAMPLE]})

    number: str = Field(description="The card or voucher number")
    kind: Literal["card", "voucher_standard", "voucher_discount"]
    source: Literal["purchase", "partner", "operator", "bonus", "code"] = Field(
        description="bought from cash; a partner's card; given by the operator; the discount "
                    "voucher of a big card purchase; activated with a code")
    face_value: str
    balance: str = Field(description="What is left on it")
    currency: str
    status: Literal["active", "used_up", "expired"]
    valid_from: str
    expires_at: str
    expired_at: str | None = Field(description="When the rest was written off")
    note: str | None


class CardPurchaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"face_value": "10000.00"}]})

    face_value: str | int = Field(description=_AMOUNT + "; a multiple of 100, at least 100")


class CardGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "face_value": "5000.00", "reference": "partner-order-2026-1126-07", "validity_days": 365,
        "note": "bought through a partner"}]})

    face_value: str | int = Field(description=_AMOUNT + "; a multiple of 100, at least 100")
    reference: Text = Field(max_length=128, description="The sale's reference; one card per "
                                                        "reference")
    validity_days: int | None = Field(None, description="1 to 3650; default 365")
    note: Text | None = Field(None, max_length=200)


class VoucherIssueIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "kind": "voucher_standard", "amount": "200.00", "reference": "welcome-2026-11",
        "validity_days": 90, "note": "welcome credit"}]})

    kind: Literal["voucher_standard", "voucher_discount"]
    amount: str | int = Field(description=_AMOUNT)
    reference: Text = Field(max_length=128, description="One voucher per account and reference")
    validity_days: int | None = Field(None, description="1 to 3650; default 90")
    note: Text | None = Field(None, max_length=200)


class CodesIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "kind": "voucher_standard", "amount": "50.00", "count": 3, "validity_days": 90,
        "redeem_within_days": 30, "note": "conference 2026"}]})

    kind: Literal["voucher_standard", "voucher_discount"]
    amount: str | int = Field(description=_AMOUNT)
    count: int = Field(description="1 to 1000 codes")
    validity_days: int | None = Field(None, description="The voucher's validity from "
                                                        "activation, 1 to 3650; default 90")
    redeem_within_days: int = Field(90, description="How long the codes can be activated")
    note: Text | None = Field(None, max_length=200)


class CodesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "kind": "voucher_standard", "amount": "50.00", "validity_days": 90,
        "redeem_by": "2026-12-26T02:00:00+00:00",
        "codes": ["7K3D-QX9A-M2PT-4VZC", "1HB8-NW0R-Y6EF-JS5G", "C4TP-8M1X-ZQ7K-2DAV"]}]})

    kind: str
    amount: str
    validity_days: int
    redeem_by: str
    codes: list[str] = Field(description="Shown only here: only their hashes are kept")


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"code": "7K3D-QX9A-M2PT-4VZC"}]})

    code: Text = Field(max_length=64, description="16 letters and digits; dashes and spaces "
                                                  "are ignored")


def _amounts(call: Callable[[], T]) -> T:
    try:
        return call()
    except InvalidDecimal as error:
        raise Invalid("invalid_amount", f"amount {error.reason}") from None


def card_json(card: Card) -> dict[str, Any]:
    """A card as the API shows it: amounts as decimal strings, times in ISO 8601."""
    currency = card.currency
    return {"number": card.number, "kind": CARD, "source": card.source.value,
            "face_value": format_minor(card.face_minor, currency),
            "balance": format_minor(card.balance_minor, currency), "currency": currency,
            "status": card.status.value, "valid_from": card.valid_from.isoformat(),
            "expires_at": card.expires_at.isoformat(),
            "expired_at": card.expired_at.isoformat() if card.expired_at else None,
            "note": card.note, "purchased_at": card.purchased_at.isoformat(),
            "paid_with_cash": format_minor(card.paid_cash_minor, currency),
            "bonus_voucher": card.bonus_voucher}


def voucher_json(voucher: Voucher) -> dict[str, Any]:
    """A voucher as the API shows it: amounts as decimal strings, times in ISO 8601."""
    currency = voucher.currency
    return {"number": voucher.number, "kind": voucher.kind, "source": voucher.source.value,
            "face_value": format_minor(voucher.face_minor, currency),
            "balance": format_minor(voucher.balance_minor, currency), "currency": currency,
            "status": voucher.status.value, "valid_from": voucher.valid_from.isoformat(),
            "expires_at": voucher.expires_at.isoformat(),
            "expired_at": voucher.expired_at.isoformat() if voucher.expired_at else None,
            "note": voucher.note, "activated_at": voucher.activated_at.isoformat(),
            "origin": voucher.origin}


def card_issued_json(issued: CardIssued) -> dict[str, Any]:
    return {**card_json(issued.card), "created": issued.created}


def voucher_issued_json(issued: VoucherIssued) -> dict[str, Any]:
    return {**voucher_json(issued.voucher), "created": issued.created}


def codes_json(made: VoucherCodes) -> dict[str, Any]:
    return {"kind": made.kind, "amount": format_minor(made.face_minor, made.currency),
            "validity_days": made.validity_days, "redeem_by": made.redeem_by.isoformat(),
            "codes": list(made.codes)}


def _replayed(shown: dict[str, Any], response: Response) -> dict[str, Any]:
    """A card or voucher answered again for its key or reference says so in a header."""
    if not shown["created"]:
        response.headers["Idempotent-Replayed"] = "true"
    return shown


@router.post("/accounts/{account_id}/cards", status_code=201, response_model=InstrumentOut,
             tags=["billing: cards and vouchers"], responses=error_responses(401, 403, 404, 409, 422))
def buy_card(account_id: AccountDep, body: CardPurchaseIn, center: CenterDep, response: Response,
             idempotency_key: Annotated[str, idempotency_key_header("the same card")]
             ) -> dict[str, Any]:
    """Buy a prepaid card from the cash balance. Face value a multiple of 100, at least 100
    (422 `invalid_face_value`); valid one year; tied to this account, never refunded. Purchases
    of 10,000 / 30,000 / 100,000 or more (CNY) come with a discount voucher of 1,000 / 5,000 /
    20,000 (`bonus_voucher`). Too little cash is 409 `insufficient_balance` and changes nothing;
    that refusal stays bound to the key (a retry with it is refused again: use a new key).
    The same `Idempotency-Key` returns the same card (`Idempotent-Replayed: true`); with another
    face value it is 409 `idempotency_conflict`."""
    return _replayed(card_issued_json(_amounts(lambda: center.instruments.buy_card(
        account_id, body.face_value, idempotency_key))), response)


@router.get("/accounts/{account_id}/cards", response_model=list[InstrumentOut],
            tags=["billing: cards and vouchers"], responses=error_responses(401, 403, 404))
def cards(account_id: AccountDep, center: CenterDep) -> list[dict[str, Any]]:
    """The account's prepaid cards, newest first: number, face value, balance, status (`active`,
    `used_up`, `expired`), validity, purchase time, and the bonus voucher it came with."""
    return [card_json(card) for card in center.instruments.cards(account_id)]


@router.get("/accounts/{account_id}/vouchers", response_model=list[InstrumentOut],
            tags=["billing: cards and vouchers"], responses=error_responses(401, 403, 404))
def vouchers(account_id: AccountDep, center: CenterDep) -> list[dict[str, Any]]:
    """The account's vouchers, newest first: kind (`voucher_standard` pays first, then
    `voucher_discount`), face value, balance, status, activation time and validity. Vouchers
    never pay SMS or synthetic tests and are never invoiceable."""
    return [voucher_json(voucher) for voucher in center.instruments.vouchers(account_id)]


@router.post("/accounts/{account_id}/vouchers/activate", status_code=201,
             response_model=InstrumentOut, tags=["billing: cards and vouchers"],
             responses=error_responses(401, 403, 404, 409, 422))
def activate_voucher(account_id: AccountDep, body: ActivateIn, center: CenterDep,
                     response: Response) -> dict[str, Any]:
    """Activate a voucher with a single-use code. Unknown code: 404 `unknown_code`; used by
    another account: 409 `code_already_used`; past its date: 409 `code_expired`. Activating it
    again on the same account returns the same voucher."""
    return _replayed(voucher_issued_json(center.instruments.activate(account_id, body.code)),
                     response)


@router.post("/admin/accounts/{account_id}/cards", status_code=201, response_model=InstrumentOut,
             tags=["billing: operator"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 404, 409, 422))
def grant_card(account_id: str, body: CardGrantIn, center: CenterDep,
               response: Response) -> dict[str, Any]:
    """Put a card paid outside the center (a partner's sale) on an account; one per reference
    (another face value or validity with it is 409 `idempotency_conflict`)."""
    return _replayed(card_issued_json(_amounts(lambda: center.instruments.grant_card(
        account_id, body.face_value, body.reference, body.validity_days, body.note))), response)


@router.post("/admin/accounts/{account_id}/vouchers", status_code=201,
             response_model=InstrumentOut, tags=["billing: operator"],
             dependencies=[Depends(require_operator)], responses=error_responses(401, 404, 409, 422))
def issue_voucher(account_id: str, body: VoucherIssueIn, center: CenterDep,
                  response: Response) -> dict[str, Any]:
    """Give an account a voucher; one per reference (409 `idempotency_conflict` when the
    reference is reused with other terms)."""
    return _replayed(voucher_issued_json(_amounts(lambda: center.instruments.issue_voucher(
        account_id, body.kind, body.amount, body.reference, body.validity_days, body.note))),
        response)


@router.post("/admin/voucher-codes", status_code=201, response_model=CodesOut,
             tags=["billing: operator"], dependencies=[Depends(require_operator)],
             responses=error_responses(401, 422))
def create_codes(body: CodesIn, center: CenterDep) -> dict[str, Any]:
    """Make single-use activation codes for vouchers; the codes are answered once."""
    return codes_json(_amounts(lambda: center.instruments.create_codes(
        body.kind, body.amount, body.count, body.validity_days, body.redeem_within_days,
        body.note)))


class VoucherBatchOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "created_at": "2026-11-28T09:30:00+00:00", "kind": "voucher_standard",
        "face_value": "50.00", "currency": "CNY", "validity_days": 90,
        "redeem_by": "2027-02-26T09:30:00+00:00", "note": "Spring campaign", "made": 100,
        "activated": 37, "lapsed": 0, "open": 63}]})

    created_at: str
    kind: str
    face_value: str
    currency: str
    validity_days: int
    redeem_by: str
    note: str | None
    made: int
    activated: int
    lapsed: int
    open: int


@router.get("/admin/voucher-codes/batches", tags=["billing: operator"],
            dependencies=[Depends(require_operator)], responses=error_responses(401, 422))
def voucher_batches(center: CenterDep, limit: Annotated[int, Query(ge=1, le=MAX_BATCHES)] = 50
                    ) -> dict[str, list[VoucherBatchOut]]:
    """The newest batches of voucher codes, newest first: how many were made, activated,
    lapsed (not activated in time) and are still open. The codes themselves are not kept."""
    return {"batches": [VoucherBatchOut(
        created_at=b.created_at.isoformat(), kind=b.kind,
        face_value=format_minor(b.face_minor, b.currency), currency=b.currency,
        validity_days=b.validity_days, redeem_by=b.redeem_by.isoformat(), note=b.note,
        made=b.made, activated=b.activated, lapsed=b.lapsed, open=b.open)
        for b in center.voucher_batches.newest(limit)]}
