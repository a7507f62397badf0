"""Prepaid cards and vouchers (reference-billing.md §4.3–4.4, decisions.md 15–16).

Each card or voucher is a row of ``instruments`` and a ledger account of its
own, funded by one journal entry: a card bought from cash (``cash`` →
card), a partner's card paid outside (``bank_clearing`` → card), a voucher
given away (``promotions`` → voucher). Settlement spends them by the waterfall
(``settling``); at expiry what is left is written off to ``breakage``. Cards
are never refunded or turned back into cash; vouchers are never invoiced.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import bounds, settlement, waterfall
from accrual.billing.domain import instruments as rules
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.clock import Clock
from accrual.contract.errors import Conflict, NotFound
from accrual.infra.db import in_transaction

CARD = rules.CARD
VOUCHER_KINDS = rules.VOUCHER_KINDS
# How a card or voucher was funded (instruments.source).
PURCHASE, PARTNER, OPERATOR, BONUS, CODE = (
    rules.Source.PURCHASE.value, rules.Source.PARTNER.value, rules.Source.OPERATOR.value,
    rules.Source.BONUS.value, rules.Source.CODE.value)
# Journal entry kinds.
CARD_PURCHASE = "card_purchase"  # counted as invoiceable cash by invoices (decisions.md 21)
CARD_GRANT = "card_grant"
VOUCHER_GRANT = "voucher_grant"
WRITE_OFF = "write_off"


@dataclass(frozen=True)
class Card:
    """A prepaid card as it stands now; amounts in minor units of ``currency``."""

    number: str
    source: rules.Source  # PURCHASE (from cash) or PARTNER (paid outside)
    face_minor: int
    balance_minor: int  # what is left on it
    currency: str
    status: rules.Status
    valid_from: datetime
    expires_at: datetime
    expired_at: datetime | None  # when the rest was written off
    note: str | None
    purchased_at: datetime
    paid_cash_minor: int  # what the cash balance paid (0 for a partner's card)
    bonus_voucher: str | None  # the discount voucher the purchase brought


@dataclass(frozen=True)
class Voucher:
    """A voucher as it stands now; amounts in minor units of ``currency``."""

    number: str
    kind: str  # one of VOUCHER_KINDS
    source: rules.Source  # OPERATOR, BONUS or CODE
    face_minor: int
    balance_minor: int  # what is left on it
    currency: str
    status: rules.Status
    valid_from: datetime
    expires_at: datetime
    expired_at: datetime | None  # when the rest was written off
    note: str | None
    activated_at: datetime
    origin: str | None  # the card a bonus came with, or the activation code's id


@dataclass(frozen=True)
class CardIssued:
    """A card a purchase or grant answers."""

    card: Card
    created: bool  # False: an earlier request with the same key or reference made it


@dataclass(frozen=True)
class VoucherIssued:
    """A voucher an issue or an activation answers."""

    voucher: Voucher
    created: bool  # False: made before, by the same reference or the same code


@dataclass(frozen=True)
class VoucherCodes:
    """Activation codes just made; the only time the codes themselves are seen."""

    kind: str  # the vouchers' kind, one of VOUCHER_KINDS
    face_minor: int
    currency: str
    validity_days: int  # each voucher's validity from its activation
    redeem_by: datetime
    codes: tuple[str, ...]  # as people type them, in groups of four


class Instruments:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts

    # -- prepaid cards -----------------------------------------------------------

    def buy_card(self, account_id: str, face_value: object, idempotency_key: str
                 ) -> CardIssued:
        """A card bought from the cash balance; with a discount voucher on big purchases.

        The same key returns the same card; the same key with another face value is a
        409 ``idempotency_conflict``. Too little cash is a 409 ``insufficient_balance``
        that changes nothing (a top-up first settles arrears, so cash is never there while
        arrears are owed).
        """
        face = self._face_value(face_value)
        bounds.check_idempotency_key(idempotency_key)
        self.accounts.account(account_id)
        key = f"card/{account_id}/{idempotency_key}"

        digest = ledger.digest(face)

        def work(conn: Connection) -> CardIssued:
            # The account's lock first: a concurrent copy of this request then sees the
            # key taken here, instead of making a second card.
            ledger.balances(conn, account_id, lock=True)
            existing = self._posted(conn, key, digest)
            if existing is not None:
                return CardIssued(self._shown_card(conn, existing), created=False)
            _refused_before(conn, key, digest)
            now = self.clock.now()
            card_id = self._new_id(conn, "PC")
            ledger.open_instrument_account(conn, card_id, CARD, self.config.currency)

            def compute(held: ledger.Holdings) -> settlement.Postings:
                rules.check_affordable(held.balances[settlement.CASH], face, self.config.currency)
                return settlement.fund(card_id, face, settlement.CASH)

            posted = ledger.post(conn, owner=account_id, key=key, request_digest=digest,
                                 kind=CARD_PURCHASE, reference=card_id, now=now,
                                 compute=compute)
            assert posted.created, key  # the key was checked under the account's lock
            self._insert(conn, card_id, account_id, CARD, PURCHASE, face, face, now,
                         now + self.config.card_validity, posted.entry_id, None, None)
            bonus = rules.bonus_for(face, self.config.bonuses())
            if bonus:
                self._grant_voucher(conn, account_id, waterfall.DISCOUNT_VOUCHER, bonus,
                                    f"{key}/bonus", BONUS, card_id, now,
                                    now + self.config.voucher_validity, "bonus for card " + card_id)
            return CardIssued(self._shown_card(conn, card_id), created=True)

        try:
            return in_transaction(self.engine, work)
        except Conflict as refusal:
            if refusal.code == "insufficient_balance":
                refused, now = refusal, self.clock.now()
                in_transaction(self.engine, lambda conn: _remember_refusal(
                    conn, key, digest, refused, now))
            raise

    def grant_card(self, account_id: str, face_value: object, reference: str,
                   validity_days: int | None = None, note: str | None = None) -> CardIssued:
        """A card paid outside the center (a partner's sale), put on an account by the
        operator. It is not invoiced here (no cash paid) and brings no bonus voucher."""
        face = self._face_value(face_value)
        rules.check_reference(reference)
        validity = rules.validity(validity_days, self.config.card_validity)
        self.accounts.account(account_id)
        key = f"card-grant/{account_id}/{reference}"

        def work(conn: Connection) -> CardIssued:
            ledger.balances(conn, account_id, lock=True)  # see buy_card
            digest = ledger.digest(face, validity)
            existing = self._posted(conn, key, digest)
            if existing is not None:
                return CardIssued(self._shown_card(conn, existing), created=False)
            now = self.clock.now()
            card_id = self._new_id(conn, "PC")
            ledger.open_instrument_account(conn, card_id, CARD, self.config.currency)
            posted = ledger.post(conn, owner=account_id, key=key, request_digest=digest,
                                 kind=CARD_GRANT, reference=card_id, now=now,
                                 compute=lambda _: settlement.fund(card_id, face,
                                                                   settlement.BANK_CLEARING))
            assert posted.created, key
            self._insert(conn, card_id, account_id, CARD, PARTNER, face, 0, now, now + validity,
                         posted.entry_id, None, note)
            return CardIssued(self._shown_card(conn, card_id), created=True)

        return in_transaction(self.engine, work)

    def cards(self, account_id: str) -> list[Card]:
        """The account's cards, newest first."""
        self.accounts.account(account_id)
        with self.engine.connect() as conn:
            return [self._card(conn, row) for row in self._rows(conn, account_id, (CARD,))]

    # -- vouchers ----------------------------------------------------------------

    def issue_voucher(self, account_id: str, kind: str, amount: object, reference: str,
                      validity_days: int | None = None, note: str | None = None
                      ) -> VoucherIssued:
        """A voucher put on an account by the operator; one per reference."""
        rules.check_voucher_kind(kind)
        face = bounds.movement_minor(amount, self.config.currency)
        rules.check_reference(reference)
        validity = rules.validity(validity_days, self.config.voucher_validity)
        self.accounts.account(account_id)
        key = f"voucher/{account_id}/{reference}"

        def work(conn: Connection) -> VoucherIssued:
            ledger.balances(conn, account_id, lock=True)  # see buy_card
            digest = ledger.digest(kind, face, validity)
            existing = self._posted(conn, key, digest)
            if existing is None:
                now = self.clock.now()
                existing = self._grant_voucher(conn, account_id, kind, face, key, OPERATOR,
                                               None, now, now + validity, note, digest)
                created = True
            else:
                created = False
            return VoucherIssued(self._shown_voucher(conn, existing), created)

        return in_transaction(self.engine, work)

    def create_codes(self, kind: str, amount: object, count: int,
                     validity_days: int | None = None, redeem_within_days: int = 90,
                     note: str | None = None) -> VoucherCodes:
        """Single-use activation codes for vouchers. The codes are shown once, here; only
        their hashes are kept."""
        rules.check_voucher_kind(kind)
        face = bounds.movement_minor(amount, self.config.currency)
        rules.check_code_count(count)
        validity = rules.validity(validity_days, self.config.voucher_validity)
        redeem_within = rules.validity(redeem_within_days, rules.CODE_REDEEM_WITHIN)
        now = self.clock.now()
        codes = [rules.new_code() for _ in range(count)]

        def work(conn: Connection) -> None:
            conn.execute(insert(t.voucher_codes), [
                {"id": "VK" + secrets.token_hex(8), "code_hash": rules.code_hash(code), "kind": kind,
                 "face_minor": face, "currency": self.config.currency,
                 "validity_days": validity.days, "redeem_by": now + redeem_within,
                 "created_at": now, "note": note} for code in codes])

        in_transaction(self.engine, work)
        return VoucherCodes(kind=kind, face_minor=face, currency=self.config.currency,
                            validity_days=validity.days, redeem_by=now + redeem_within,
                            codes=tuple(rules.show_code(code) for code in codes))

    def activate(self, account_id: str, code: object) -> VoucherIssued:
        """Redeem an activation code onto this account: a voucher. Each code once; the same
        account activating it again gets the same voucher back."""
        normal = rules.normalise_code(code)
        self.accounts.account(account_id)
        c = t.voucher_codes

        def work(conn: Connection) -> VoucherIssued:
            query = select(c).where(c.c.code_hash == rules.code_hash(normal))
            if conn.dialect.name == "postgresql":
                # Concurrent activations of one code queue here; the later ones then see it
                # redeemed.
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise NotFound("unknown_code", "no voucher has this activation code; "
                                               "check it for typing errors")
            now = self.clock.now()
            made_before = rules.redemption(rules.StoredCode(
                currency=row.currency, redeem_by=row.redeem_by, redeemed_at=row.redeemed_at,
                redeemed_by=row.redeemed_by, voucher_id=row.instrument_id),
                account_id, self.config.currency, now)
            if made_before is not None:
                return VoucherIssued(self._shown_voucher(conn, made_before), created=False)
            voucher_id = self._grant_voucher(
                conn, account_id, row.kind, int(row.face_minor), f"code/{row.id}", CODE, row.id,
                now, now + timedelta(days=row.validity_days), row.note)
            # Single use, even against a concurrent activation of the same code.
            taken = conn.execute(update(c).where(c.c.id == row.id, c.c.redeemed_at.is_(None))
                                 .values(redeemed_at=now, redeemed_by=account_id,
                                         instrument_id=voucher_id)).rowcount
            if taken != 1:
                raise Conflict("code_already_used", "this activation code was already used")
            return VoucherIssued(self._shown_voucher(conn, voucher_id), created=True)

        return in_transaction(self.engine, work)

    def vouchers(self, account_id: str) -> list[Voucher]:
        """The account's vouchers, newest first."""
        self.accounts.account(account_id)
        with self.engine.connect() as conn:
            return [self._voucher(row) for row in self._rows(conn, account_id, VOUCHER_KINDS)]

    # -- expiry ------------------------------------------------------------------

    def expire_due(self, limit: int = 1000) -> int:
        """Write off what is left on cards and vouchers past their expiry; how many."""
        i = t.instruments
        now = self.clock.now()
        with self.engine.connect() as conn:
            due = conn.execute(select(i.c.id, i.c.account_id).where(
                i.c.status == ledger.ACTIVE, i.c.expires_at <= now)
                .order_by(i.c.expires_at, i.c.id).limit(limit)).all()
        for instrument_id, account_id in due:
            in_transaction(self.engine, partial(self._expire, instrument_id=instrument_id,
                                                account_id=account_id, now=now))
        return len(due)

    def _expire(self, conn: Connection, instrument_id: str, account_id: str,
                now: datetime) -> None:
        i = t.instruments
        ledger.balances(conn, account_id, lock=True)  # the account's lock, as every movement
        if conn.execute(select(i.c.status).where(i.c.id == instrument_id)).scalar_one() \
                != ledger.ACTIVE:
            return  # another run got there first
        held = ledger.instruments_of(conn, [account_id])[account_id]
        balance = next((x.balance_minor for x in held if x.id == instrument_id), 0)
        if balance > 0:
            ledger.post(conn, owner=account_id, key=f"expiry/{instrument_id}",
                        request_digest=ledger.digest(instrument_id, balance), kind=WRITE_OFF,
                        reference=instrument_id, now=now,
                        compute=lambda _: settlement.write_off(instrument_id, balance))
        conn.execute(update(i).where(i.c.id == instrument_id)
                     .values(status="expired", expired_at=now))

    # -- shared ------------------------------------------------------------------

    def _grant_voucher(self, conn: Connection, account_id: str, kind: str, face: int, key: str,
                       source: str, origin: str | None, now: datetime, expires_at: datetime,
                       note: str | None, digest: str | None = None) -> str:
        voucher_id = self._new_id(conn, "VC")
        ledger.open_instrument_account(conn, voucher_id, kind, self.config.currency)
        posted = ledger.post(conn, owner=account_id, key=key,
                             request_digest=digest or ledger.digest(kind, face),
                             kind=VOUCHER_GRANT, reference=voucher_id, now=now,
                             compute=lambda _: settlement.fund(voucher_id, face,
                                                               settlement.PROMOTIONS))
        # Callers check the key under the account's lock first.
        assert posted.created, key
        self._insert(conn, voucher_id, account_id, kind, source, face, 0, now, expires_at,
                     posted.entry_id, origin, note)
        return voucher_id

    def _insert(self, conn: Connection, instrument_id: str, account_id: str, kind: str,
                source: str, face: int, paid_cash: int, now: datetime, expires_at: datetime,
                entry_id: int, origin: str | None, note: str | None) -> None:
        conn.execute(insert(t.instruments).values(
            id=instrument_id, account_id=account_id, kind=kind, source=source, face_minor=face,
            currency=self.config.currency, paid_cash_minor=paid_cash, valid_from=now,
            expires_at=expires_at, status=ledger.ACTIVE, origin=origin, entry_id=entry_id,
            created_at=now, note=note))

    @staticmethod
    def _posted(conn: Connection, key: str, digest: str) -> str | None:
        """The instrument an earlier request with this key made (same request), else None."""
        e = t.journal_entries
        row = conn.execute(select(e.c.id, e.c.request_digest, e.c.reference)
                           .where(e.c.idempotency_key == key)).first()
        if row is None:
            return None
        if row.request_digest != digest:
            raise Conflict("idempotency_conflict",
                           "this key was already used for a different request")
        return str(row.reference)

    @staticmethod
    def _new_id(conn: Connection, prefix: str) -> str:
        while True:
            candidate = prefix + "".join(secrets.choice("0123456789") for _ in range(14))
            if conn.execute(select(t.instruments.c.id)
                            .where(t.instruments.c.id == candidate)).first() is None:
                return candidate

    def _face_value(self, face_value: object) -> int:
        return rules.card_face_minor(face_value, self.config.currency,
                                     self.config.card_step_minor)

    def _rows(self, conn: Connection, account_id: str, kinds: tuple[str, ...]) -> list[Any]:
        i, a = t.instruments, t.ledger_accounts
        return list(conn.execute(
            select(i, a.c.balance_minor).join(a, a.c.owner == i.c.id)
            .where(i.c.account_id == account_id, i.c.kind.in_(kinds))
            .order_by(i.c.created_at.desc(), i.c.id)).all())

    @staticmethod
    def _row(conn: Connection, instrument_id: str) -> Any:
        i, a = t.instruments, t.ledger_accounts
        return conn.execute(select(i, a.c.balance_minor).join(a, a.c.owner == i.c.id)
                            .where(i.c.id == instrument_id)).one()

    def _shown_card(self, conn: Connection, card_id: str) -> Card:
        return self._card(conn, self._row(conn, card_id))

    def _shown_voucher(self, conn: Connection, voucher_id: str) -> Voucher:
        return self._voucher(self._row(conn, voucher_id))

    def _status(self, row: Any) -> rules.Status:
        return rules.status_at(written_off=row.status != ledger.ACTIVE,
                               expires_at=row.expires_at,
                               balance_minor=int(row.balance_minor), now=self.clock.now())

    def _card(self, conn: Connection, row: Any) -> Card:
        bonus = conn.execute(select(t.instruments.c.id).where(
            t.instruments.c.origin == row.id, t.instruments.c.source == BONUS)).scalar()
        return Card(
            number=row.id, source=rules.Source(row.source), face_minor=int(row.face_minor),
            balance_minor=int(row.balance_minor), currency=row.currency,
            status=self._status(row), valid_from=row.valid_from, expires_at=row.expires_at,
            expired_at=row.expired_at, note=row.note, purchased_at=row.created_at,
            paid_cash_minor=int(row.paid_cash_minor), bonus_voucher=bonus)

    def _voucher(self, row: Any) -> Voucher:
        return Voucher(
            number=row.id, kind=row.kind, source=rules.Source(row.source),
            face_minor=int(row.face_minor), balance_minor=int(row.balance_minor),
            currency=row.currency, status=self._status(row), valid_from=row.valid_from,
            expires_at=row.expires_at, expired_at=row.expired_at, note=row.note,
            activated_at=row.created_at, origin=row.origin)


def _refused_before(conn: Connection, key: str, digest: str) -> None:
    """Answer again the refusal this key got, if it got one (RELIABILITY.md 2.8)."""
    r = t.refused_requests
    row = conn.execute(select(r).where(r.c.idempotency_key == key)).first()
    if row is None:
        return
    if row.request_digest != digest:
        raise Conflict("idempotency_conflict",
                       "this key was already used for a different request")
    raise Conflict(row.code, f"{row.message} (this key was refused on "
                             f"{row.refused_at.isoformat()}; try again with a new key)")


def _remember_refusal(conn: Connection, key: str, digest: str, refusal: Conflict,
                      now: datetime) -> None:
    r = t.refused_requests
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(dialect_insert(r).values(
        idempotency_key=key, request_digest=digest, code=refusal.code,
        message=refusal.message[:500], refused_at=now).on_conflict_do_nothing())
