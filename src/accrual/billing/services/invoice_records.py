"""Invoice records of a billing account: its invoice information (the buyer's details
printed on an invoice) and mailing addresses for paper invoices.

Requests (``invoices``) name one of each and keep a snapshot of them, so editing or
deleting a record never changes a request already made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, func, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.services.account_profile import PHONE
from accrual.billing.services.accounts import BillingAccount, BillingAccounts
from accrual.billing.services.certification import TAXPAYER_ID
from accrual.clock import Clock
from accrual.contract.errors import Invalid, NotFound
from accrual.infra.db import in_transaction

VAT_ORDINARY = "vat_ordinary"
VAT_SPECIAL = "vat_special"
ELECTRONIC_ORDINARY = "electronic_ordinary"
INVOICE_TYPES = (VAT_ORDINARY, VAT_SPECIAL, ELECTRONIC_ORDINARY)
# Paper invoices are posted: a request for one needs a mailing address.
PAPER_TYPES = frozenset({VAT_ORDINARY, VAT_SPECIAL})

MAX_RECORDS = 50  # invoice profiles, and mailing addresses, per account

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
BANK_ACCOUNT = re.compile(r"[0-9][0-9 -]{3,38}[0-9]")
POSTCODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z -]{1,14}")


def _text(value: object, code: str, what: str, low: int, high: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not low <= len(text) <= high:
        raise Invalid(code, f"{what} must be {low} to {high} characters")
    return text


def _optional(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value if isinstance(value, str) else str(value)


def _email(value: object, required_for: str | None) -> str | None:
    given = _optional(value)
    if given is None:
        if required_for:
            raise Invalid("invalid_email", f"an email is required for {required_for} invoices")
        return None
    text = given.strip().lower() if isinstance(given, str) else ""
    if len(text) > 320 or not EMAIL.fullmatch(text):
        raise Invalid("invalid_email", "email must look like name@example.com")
    return text


@dataclass(frozen=True)
class InvoiceProfile:
    """Invoice information: the buyer's details printed on an invoice."""

    id: int
    invoice_type: str  # one of INVOICE_TYPES
    title: str
    taxpayer_id: str
    registered_address: str | None
    registered_phone: str | None
    bank_name: str | None
    bank_account: str | None
    email: str | None
    matches_certification: bool  # title and taxpayer id are the certification's
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MailingAddress:
    id: int
    recipient: str
    phone: str
    address: str
    postcode: str | None
    email: str | None
    created_at: datetime
    updated_at: datetime


class InvoiceRecords:
    """Invoice information and mailing addresses, at most MAX_RECORDS of each per account."""

    def __init__(self, engine: Engine, clock: Clock, accounts: BillingAccounts) -> None:
        self.engine = engine
        self.clock = clock
        self.accounts = accounts

    # -- invoice information -------------------------------------------------

    def profiles(self, account_id: str) -> list[InvoiceProfile]:
        account = self.accounts.account(account_id)
        p = t.invoice_profiles
        with self.engine.connect() as conn:
            rows = conn.execute(select(p).where(p.c.account_id == account_id,
                                                p.c.deleted_at.is_(None)).order_by(p.c.id)).all()
        return [self._profile(r, account) for r in rows]

    def create_profile(self, account_id: str, fields: dict[str, Any]) -> InvoiceProfile:
        account = self.accounts.account(account_id)
        values = self._validate_profile(fields)
        now = self.clock.now()

        def work(conn: Connection) -> InvoiceProfile:
            self._within_limit(conn, t.invoice_profiles, account_id, "too_many_invoice_profiles",
                               "invoice profiles")
            profile_id = conn.execute(insert(t.invoice_profiles).values(
                account_id=account_id, created_at=now, updated_at=now, **values)
                .returning(t.invoice_profiles.c.id)).scalar_one()
            return self._profile(self.profile_row(conn, account_id, profile_id), account)

        return in_transaction(self.engine, work)

    def update_profile(self, account_id: str, profile_id: int,
                       fields: dict[str, Any]) -> InvoiceProfile:
        """Replace the invoice information; requests already made keep what they were made with."""
        account = self.accounts.account(account_id)
        values = self._validate_profile(fields)

        def work(conn: Connection) -> InvoiceProfile:
            self.profile_row(conn, account_id, profile_id)
            conn.execute(update(t.invoice_profiles).where(t.invoice_profiles.c.id == profile_id)
                         .values(updated_at=self.clock.now(), **values))
            return self._profile(self.profile_row(conn, account_id, profile_id), account)

        return in_transaction(self.engine, work)

    def delete_profile(self, account_id: str, profile_id: int) -> None:
        self.accounts.account(account_id)

        def work(conn: Connection) -> None:
            self.profile_row(conn, account_id, profile_id)
            conn.execute(update(t.invoice_profiles).where(t.invoice_profiles.c.id == profile_id)
                         .values(deleted_at=self.clock.now()))

        in_transaction(self.engine, work)

    @staticmethod
    def _validate_profile(fields: dict[str, Any]) -> dict[str, object]:
        kind = fields.get("invoice_type")
        if kind not in INVOICE_TYPES:
            raise Invalid("invalid_invoice_type",
                          f"invoice_type must be one of {', '.join(INVOICE_TYPES)}")
        title = _text(fields.get("title"), "invalid_invoice_title",
                      "the title (the certified enterprise name)", 2, 200)
        taxpayer = fields.get("taxpayer_id")
        taxpayer = taxpayer.strip().upper() if isinstance(taxpayer, str) else ""
        if not TAXPAYER_ID.fullmatch(taxpayer):
            raise Invalid("invalid_taxpayer_id",
                          "the taxpayer id is 15 to 20 digits or capital letters")
        special = kind == VAT_SPECIAL
        values: dict[str, object] = {"invoice_type": kind, "title": title, "taxpayer_id": taxpayer}
        # VAT special invoices carry the buyer's registered address, phone and bank
        # account; the other types may carry them too.
        for name, code, what, high in (
                ("registered_address", "invalid_registered_address", "the registered address", 300),
                ("bank_name", "invalid_bank_name", "the bank name", 200)):
            given = _optional(fields.get(name))
            if given is None and special:
                raise Invalid(code, f"{what} is required for VAT special invoices")
            values[name] = None if given is None else _text(given, code, what, 2, high)
        phone = _optional(fields.get("registered_phone"))
        if phone is None and special:
            raise Invalid("invalid_registered_phone",
                          "the registered phone is required for VAT special invoices")
        if phone is not None and not (isinstance(phone, str) and PHONE.fullmatch(phone.strip())):
            raise Invalid("invalid_registered_phone",
                          "the registered phone must be digits, spaces or '-', with an optional '+'")
        values["registered_phone"] = None if phone is None else phone.strip()
        account = _optional(fields.get("bank_account"))
        if account is None and special:
            raise Invalid("invalid_bank_account",
                          "the bank account number is required for VAT special invoices")
        if account is not None and not (isinstance(account, str)
                                        and BANK_ACCOUNT.fullmatch(account.strip())):
            raise Invalid("invalid_bank_account",
                          "the bank account number is 5 to 40 digits, spaces or '-'")
        values["bank_account"] = None if account is None else account.strip()
        values["email"] = _email(fields.get("email"),
                                 "electronic" if kind == ELECTRONIC_ORDINARY else None)
        return values

    def profile_row(self, conn: Connection, account_id: str, profile_id: int) -> Row[Any]:
        p = t.invoice_profiles
        row = conn.execute(select(p).where(p.c.id == profile_id, p.c.account_id == account_id,
                                           p.c.deleted_at.is_(None))).first()
        if row is None:
            raise NotFound("invoice_profile_not_found", f"no invoice information {profile_id}")
        return row

    @staticmethod
    def matches_certification(row: Row[Any], account: BillingAccount) -> bool:
        certification = account.certification
        return certification is not None \
            and row.title == certification.enterprise_name \
            and row.taxpayer_id == certification.taxpayer_id

    def _profile(self, row: Any, account: BillingAccount) -> InvoiceProfile:
        return InvoiceProfile(
            id=row.id, invoice_type=row.invoice_type, title=row.title,
            taxpayer_id=row.taxpayer_id, registered_address=row.registered_address,
            registered_phone=row.registered_phone, bank_name=row.bank_name,
            bank_account=row.bank_account, email=row.email,
            matches_certification=self.matches_certification(row, account),
            created_at=row.created_at, updated_at=row.updated_at)

    # -- mailing addresses ---------------------------------------------------

    def addresses(self, account_id: str) -> list[MailingAddress]:
        self.accounts.account(account_id)
        m = t.mailing_addresses
        with self.engine.connect() as conn:
            rows = conn.execute(select(m).where(m.c.account_id == account_id,
                                                m.c.deleted_at.is_(None)).order_by(m.c.id)).all()
        return [self._address(r) for r in rows]

    def create_address(self, account_id: str, fields: dict[str, Any]) -> MailingAddress:
        self.accounts.account(account_id)
        values = self._validate_address(fields)
        now = self.clock.now()

        def work(conn: Connection) -> MailingAddress:
            self._within_limit(conn, t.mailing_addresses, account_id, "too_many_mailing_addresses",
                               "mailing addresses")
            address_id = conn.execute(insert(t.mailing_addresses).values(
                account_id=account_id, created_at=now, updated_at=now, **values)
                .returning(t.mailing_addresses.c.id)).scalar_one()
            return self._address(self.address_row(conn, account_id, address_id))

        return in_transaction(self.engine, work)

    def update_address(self, account_id: str, address_id: int,
                       fields: dict[str, Any]) -> MailingAddress:
        self.accounts.account(account_id)
        values = self._validate_address(fields)

        def work(conn: Connection) -> MailingAddress:
            self.address_row(conn, account_id, address_id)
            conn.execute(update(t.mailing_addresses).where(t.mailing_addresses.c.id == address_id)
                         .values(updated_at=self.clock.now(), **values))
            return self._address(self.address_row(conn, account_id, address_id))

        return in_transaction(self.engine, work)

    def delete_address(self, account_id: str, address_id: int) -> None:
        self.accounts.account(account_id)

        def work(conn: Connection) -> None:
            self.address_row(conn, account_id, address_id)
            conn.execute(update(t.mailing_addresses).where(t.mailing_addresses.c.id == address_id)
                         .values(deleted_at=self.clock.now()))

        in_transaction(self.engine, work)

    @staticmethod
    def _validate_address(fields: dict[str, Any]) -> dict[str, object]:
        recipient = _text(fields.get("recipient"), "invalid_recipient", "the recipient", 1, 100)
        phone = fields.get("phone")
        if not (isinstance(phone, str) and PHONE.fullmatch(phone.strip())):
            raise Invalid("invalid_phone", "phone must be digits, spaces or '-', with an optional '+'")
        address = _text(fields.get("address"), "invalid_address", "the address", 5, 500)
        postcode = _optional(fields.get("postcode"))
        if postcode is not None and not (isinstance(postcode, str)
                                         and POSTCODE.fullmatch(postcode.strip())):
            raise Invalid("invalid_postcode", "postcode must be 2 to 15 letters, digits, spaces or '-'")
        return {"recipient": recipient, "phone": phone.strip(), "address": address,
                "postcode": None if postcode is None else postcode.strip(),
                "email": _email(fields.get("email"), None)}

    def address_row(self, conn: Connection, account_id: str, address_id: int) -> Row[Any]:
        m = t.mailing_addresses
        row = conn.execute(select(m).where(m.c.id == address_id, m.c.account_id == account_id,
                                           m.c.deleted_at.is_(None))).first()
        if row is None:
            raise NotFound("mailing_address_not_found", f"no mailing address {address_id}")
        return row

    @staticmethod
    def _address(row: Any) -> MailingAddress:
        return MailingAddress(id=row.id, recipient=row.recipient, phone=row.phone,
                              address=row.address, postcode=row.postcode, email=row.email,
                              created_at=row.created_at, updated_at=row.updated_at)

    @staticmethod
    def _within_limit(conn: Connection, table: Table, account_id: str, code: str,
                      what: str) -> None:
        count = conn.execute(select(func.count()).select_from(table).where(
            table.c.account_id == account_id, table.c.deleted_at.is_(None))).scalar_one()
        if count >= MAX_RECORDS:
            raise Invalid(code, f"an account keeps at most {MAX_RECORDS} {what}")
