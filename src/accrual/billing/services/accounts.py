"""Billing accounts, sessions, known workspaces and bindings."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.services import activation_records, ledger
from accrual.clock import Clock, site_day
from accrual.contract.errors import Conflict, Invalid, NotFound, Unauthorized
from accrual.contract.messages import (
    BINDING_CHANGED,
    BindingChanged,
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    RegistrationResult,
    message_id,
)
from accrual.infra.credentials import (
    hash_password,
    new_id,
    new_token,
    token_hash,
    verify_password,
)
from accrual.infra.db import in_transaction
from accrual.infra.outbox import enqueue
from accrual.infra.passwords import check_change
from accrual.infra.sign_in_failures import SignInThrottle


def folded(identity: str) -> str:
    """Usernames and e-mails are compared in one form: NFKC, then case-folded ("Ada",
    "ADA" and the full-width "ａｄａ" are one name). For the ASCII usernames the API
    admits this is lower-casing; stored rows are already lower-case."""
    return unicodedata.normalize("NFKC", identity).casefold()

log = logging.getLogger(__name__)

# What a binding made by the operator may settle by; a cloud marketplace method needs a
# linked cloud account and goes through ``SettlementMethods.change``.
SETTLEMENT_METHODS = ("billing_center",)


@dataclass(frozen=True)
class Bound:
    """A workspace's binding as a bind left it."""

    workspace_id: str
    account_id: str
    settlement_method: str
    effective_from: date  # today for a first binding, else the next billing day
    changed: bool  # False when it already was so (nothing written)


@dataclass(frozen=True)
class Binding:
    """Who pays for a workspace, and how, from a day on (a ``bindings`` row)."""

    workspace_id: str
    account_id: str
    settlement_method: str
    effective_from: date
    cloud_account_id: str | None = None  # which cloud account, for a marketplace method


@dataclass(frozen=True)
class Certification:
    """The enterprise an account is certified as (``certification``)."""

    enterprise_name: str
    taxpayer_id: str
    certified_at: datetime


@dataclass(frozen=True)
class BillingAccount:
    """An active billing account's own details."""

    account_id: str
    username: str
    email: str
    currency: str
    language: str
    contact_name: str | None
    phone: str | None
    certification: Certification | None  # None until certified
    created_at: datetime


@dataclass(frozen=True)
class PaidWorkspace:
    """A workspace an account pays for today."""

    workspace_id: str
    # None when the workspace is not in ``workspaces`` (bound before it was known here).
    site: str | None
    name: str | None
    settlement_method: str
    bound_since: date  # the binding's effective day


def _nothing(_activation_id: str) -> None:
    return None


class BillingAccounts:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.throttle = SignInThrottle(engine, t.sign_in_failures, clock, config.sign_in)
        # Called with a registration's activation id before the registration reserves
        # it, outside any transaction: a vendor whose billing starts when the seller says
        # so (Azure's Activate) is told here; raising refuses the registration.
        self.before_take: Callable[[str], None] = _nothing

    def today(self) -> date:
        return site_day(self.clock.now(), self.config.zone)

    # -- registration (called by a console) --------------------------------

    def register(self, request: RegistrationRequest) -> RegistrationResult:
        username = folded(request.username)
        # A marketplace activation is part of what was asked (the same key with another
        # activation is another request); without one the digest is as it always was.
        request_digest = ledger.digest(username, folded(request.email)) \
            if request.activation_id is None \
            else ledger.digest(username, folded(request.email), request.activation_id)

        if request.activation_id is not None:
            self.before_take(request.activation_id)

        def work(conn: Connection) -> RegistrationResult:
            by_key = conn.execute(select(t.accounts).where(
                t.accounts.c.registration_key == request.registration_key)).first()
            if by_key is not None:
                if by_key.registration_digest != request_digest:
                    raise Conflict("idempotency_conflict",
                                   "registration key reused for another username or email")
                return RegistrationResult(billing_account_id=by_key.id, status=by_key.status)
            taken = conn.execute(select(t.accounts.c.id)
                                 .where(t.accounts.c.username == username)).first()
            if taken is not None:
                raise Conflict("username_taken", f"the username {request.username} is taken")
            account_id = new_id()
            conn.execute(insert(t.accounts).values(
                id=account_id, username=username, email=folded(request.email),
                password_hash=hash_password(request.password), language=request.language,
                currency=self.config.currency, status="pending",
                registration_key=request.registration_key, registration_digest=request_digest,
                created_at=self.clock.now()))
            if request.activation_id is not None:
                # Refused here (nothing stays created) when it is unknown, expired, used
                # or its cloud account belongs to another billing account.
                activation_records.reserve(conn, request.activation_id, account_id,
                                           self.clock.now())
            return RegistrationResult(billing_account_id=account_id, status="pending")

        return in_transaction(self.engine, work)

    def confirm(self, registration_key: str, confirmation: RegistrationConfirmation) -> str:
        """Activate the account and bind the first workspace; repeatable."""
        return in_transaction(
            self.engine, lambda conn: self.confirm_in(conn, registration_key, confirmation))

    def confirm_in(self, conn: Connection, registration_key: str,
                   confirmation: RegistrationConfirmation) -> str:
        row = conn.execute(select(t.accounts).where(
            t.accounts.c.registration_key == registration_key)).first()
        if row is None:
            raise NotFound("registration_not_found", "no such registration (expired?)")
        now = self.clock.now()
        if row.status == "pending":
            conn.execute(update(t.accounts).where(t.accounts.c.id == row.id)
                         .values(status="active", activated_at=now))
            ledger.open_accounts(conn, row.id, self.config.currency)
        self.remember_workspace_in(conn, confirmation.workspace_id, confirmation.site,
                                 confirmation.workspace_name, confirmation.owner_email,
                                 confirmation.language, now)
        bound = conn.execute(select(t.bindings.c.id).where(
            t.bindings.c.workspace_id == confirmation.workspace_id)).first()
        if bound is None:
            method, cloud_account_id = self._activated(conn, row.id, confirmation, now)
            conn.execute(insert(t.bindings).values(
                workspace_id=confirmation.workspace_id, account_id=row.id,
                settlement_method=method, cloud_account_id=cloud_account_id,
                effective_from=confirmation.day, created_at=now))
        return str(row.id)

    def _activated(self, conn: Connection, account_id: str,
                   confirmation: RegistrationConfirmation, now: datetime
                   ) -> tuple[str, str | None]:
        """How the first workspace settles: through the marketplace activation the
        registration reserved (its cloud account now this account's, the workspace
        activated from that vendor, its console told), else the billing center."""
        activation = activation_records.reserved_for(conn, account_id)
        if activation is None:
            return "billing_center", None
        activation = activation_records.load(conn, activation.id)
        try:
            cloud = activation_records.take(conn, activation, account_id, now)
        except Conflict as refusal:
            # The vendor ended it, or the buyer took it elsewhere, in the seconds since
            # the registration reserved it: the registration still completes.
            log.warning("registration of %s: activation %s not taken (%s); the workspace "
                        "settles by the billing center", account_id, activation.id,
                        refusal.code)
            return "billing_center", None
        conn.execute(update(t.workspaces)
                     .where(t.workspaces.c.workspace_id == confirmation.workspace_id)
                     .values(activated_via=cloud.vendor))
        change = BindingChanged(workspace_id=confirmation.workspace_id,
                                billing_account_id=account_id, settlement_method=cloud.vendor,
                                effective_from=confirmation.day)
        enqueue(conn, t.outbox, [Envelope(
            id=message_id(BINDING_CHANGED, confirmation.workspace_id, confirmation.day,
                          account_id, cloud.vendor),
            type=BINDING_CHANGED, aggregate_id=confirmation.workspace_id, occurred_at=now,
            site=confirmation.site, payload=change.model_dump(mode="json"))], now)
        return str(cloud.vendor), str(cloud.id)

    def cancel(self, registration_key: str) -> None:
        a = t.accounts
        with self.engine.begin() as conn:
            dropped = conn.execute(select(a.c.id).where(a.c.registration_key == registration_key,
                                                        a.c.status == "pending")).scalars().all()
            activation_records.release(conn, dropped)
            conn.execute(delete(a).where(a.c.registration_key == registration_key,
                                         a.c.status == "pending"))

    def reap_pending(self) -> int:
        cutoff = self.clock.now() - self.config.pending_registration_ttl
        a = t.accounts
        with self.engine.begin() as conn:
            dropped = conn.execute(select(a.c.id).where(
                a.c.status == "pending", a.c.created_at < cutoff)).scalars().all()
            activation_records.release(conn, dropped)
            return conn.execute(delete(a).where(
                a.c.status == "pending", a.c.created_at < cutoff)).rowcount

    def remember_workspace_in(self, conn: Connection, workspace_id: str, site: str, name: str,
                            owner_email: str, language: str, now: datetime) -> None:
        known = conn.execute(select(t.workspaces.c.workspace_id)
                             .where(t.workspaces.c.workspace_id == workspace_id)).first()
        if known is None:
            conn.execute(insert(t.workspaces).values(
                workspace_id=workspace_id, site=site, name=name, owner_email=owner_email,
                language=language, created_at=now))

    # -- sessions -----------------------------------------------------------

    def login(self, username: str, password: str,
              client_address: str | None = None) -> tuple[str, str]:
        """A session token and the account id. Failures count per account and per
        ``client_address`` (None: unknown, e.g. an in-process caller); while either is
        locked out this raises ``TooManyAttempts`` without checking the password. A
        success clears the account's."""
        username = folded(username.strip()) if isinstance(username, str) else ""
        self.throttle.check(username, client_address)
        with self.engine.connect() as conn:
            row = conn.execute(select(t.accounts.c.id, t.accounts.c.password_hash,
                                      t.accounts.c.status)
                               .where(t.accounts.c.username == username)).first()
        if row is None or row.status != "active" or not verify_password(row.password_hash, password):
            self.throttle.failed(username, client_address)
            raise Unauthorized("invalid_credentials", "username or password is wrong")
        self.throttle.succeeded(username)
        with self.engine.begin() as conn:
            return self.open_session_in(conn, str(row.id)), str(row.id)

    def open_session_in(self, conn: Connection, account_id: str) -> str:
        """A new session of the account (after a password or a one-time ticket)."""
        token = new_token("bs")
        now = self.clock.now()
        conn.execute(insert(t.sessions).values(token_hash=token_hash(token), account_id=account_id,
                                               created_at=now,
                                               expires_at=now + self.config.session_ttl))
        return token

    def change_password(self, account_id: str, current: str, new: str,
                        keep_token: str | None = None) -> int:
        """Replace the password once the current one is given; every other session ends,
        ``keep_token``'s stays. The console account's password is its own (the two are
        independent after registration). A wrong current password counts as a failed
        sign-in. Answers how many sessions ended."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.accounts.c.username, t.accounts.c.password_hash)
                               .where(t.accounts.c.id == account_id,
                                      t.accounts.c.status == "active")).first()
        if row is None:
            raise NotFound("account_not_found", f"no billing account {account_id}")
        checked = check_change(self.throttle, row.username, row.password_hash, current, new)
        return self.replace_password(account_id, checked, keep_token)

    def replace_password(self, account_id: str, new: str, keep_token: str | None = None) -> int:
        """Set the password (checked by the caller) and end every session of the account
        but ``keep_token``'s; how many ended."""
        kept = token_hash(keep_token) if keep_token else ""
        with self.engine.begin() as conn:
            conn.execute(update(t.accounts).where(t.accounts.c.id == account_id)
                         .values(password_hash=hash_password(new)))
            return int(conn.execute(delete(t.sessions).where(
                t.sessions.c.account_id == account_id,
                t.sessions.c.token_hash != kept)).rowcount)

    def logout(self, token: str) -> bool:
        """End the session of ``token``: afterwards it is refused. False when there was none."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.sessions).where(
                t.sessions.c.token_hash == token_hash(token))).rowcount)

    def account_for_session(self, token: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.sessions.c.account_id, t.sessions.c.expires_at)
                               .where(t.sessions.c.token_hash == token_hash(token))).first()
        if row is None or row.expires_at <= self.clock.now():
            return None
        return str(row.account_id)

    def account(self, account_id: str) -> BillingAccount:
        """The active account ``account_id``; 404 ``account_not_found`` otherwise."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.accounts).where(t.accounts.c.id == account_id,
                                                        t.accounts.c.status == "active")).first()
        if row is None:
            raise NotFound("account_not_found", f"no billing account {account_id}")
        certification = (Certification(enterprise_name=row.enterprise_name,
                                        taxpayer_id=row.taxpayer_id,
                                        certified_at=row.certified_at)
                         if row.certified_at else None)
        return BillingAccount(
            account_id=row.id, username=row.username, email=row.email, currency=row.currency,
            language=row.language, contact_name=row.contact_name, phone=row.phone,
            certification=certification, created_at=row.created_at)

    def find_by_username(self, username: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.accounts.c.id).where(
                t.accounts.c.username == folded(username), t.accounts.c.status == "active")).scalar()

    # -- bindings -----------------------------------------------------------

    def bind(self, workspace_id: str, account_id: str,
             settlement_method: str = "billing_center") -> Bound:
        """Bind a workspace to an account (operator). A first binding applies today,
        a change from the start of the next billing day (decisions.md 11)."""
        if settlement_method not in SETTLEMENT_METHODS:
            raise Invalid("invalid_settlement_method",
                          f"settlement_method must be one of {', '.join(SETTLEMENT_METHODS)}")
        return in_transaction(self.engine, lambda conn: self.bind_in(
            conn, workspace_id, account_id, settlement_method))

    def bind_in(self, conn: Connection, workspace_id: str, account_id: str,
                settlement_method: str, cloud_account_id: str | None = None) -> Bound:
        """:meth:`bind` inside the caller's transaction; ``cloud_account_id``: which cloud
        account settles, for a marketplace method."""
        if conn.execute(select(t.workspaces.c.workspace_id)
                        .where(t.workspaces.c.workspace_id == workspace_id)).first() is None:
            raise NotFound("workspace_not_found",
                           f"workspace {workspace_id} is not known to this billing center")
        if conn.execute(select(t.accounts.c.id).where(
                t.accounts.c.id == account_id, t.accounts.c.status == "active")).first() is None:
            raise NotFound("account_not_found", f"no billing account {account_id}")
        today = self.today()
        current = self._binding(conn, workspace_id, today)
        if current is not None and current.account_id == account_id \
                and current.settlement_method == settlement_method \
                and current.cloud_account_id == cloud_account_id:
            return Bound(workspace_id, account_id, settlement_method, current.effective_from,
                         changed=False)
        effective = today if current is None else today + timedelta(days=1)
        now = self.clock.now()
        conn.execute(delete(t.bindings).where(t.bindings.c.workspace_id == workspace_id,
                                              t.bindings.c.effective_from == effective))
        conn.execute(insert(t.bindings).values(
            workspace_id=workspace_id, account_id=account_id,
            settlement_method=settlement_method, cloud_account_id=cloud_account_id,
            effective_from=effective, created_at=now))
        change = BindingChanged(workspace_id=workspace_id, billing_account_id=account_id,
                                settlement_method=settlement_method, effective_from=effective)
        site = conn.execute(select(t.workspaces.c.site)
                            .where(t.workspaces.c.workspace_id == workspace_id)).scalar_one()
        enqueue(conn, t.outbox, [Envelope(
            id=message_id(BINDING_CHANGED, workspace_id, effective, account_id,
                          settlement_method),
            type=BINDING_CHANGED, aggregate_id=workspace_id, occurred_at=now, site=site,
            payload=change.model_dump(mode="json"))], now)
        return Bound(workspace_id, account_id, settlement_method, effective, changed=True)

    @staticmethod
    def _binding(conn: Connection, workspace_id: str, day: date) -> Binding | None:
        """The binding in force on ``day``. A workspace's first binding also covers the
        days before it: a workspace bound at birth has no earlier payer, and the console
        never bills a free workspace's usage from before its upgrade."""
        b = t.bindings
        columns = (b.c.workspace_id, b.c.account_id, b.c.settlement_method, b.c.effective_from,
                   b.c.cloud_account_id)
        row = conn.execute(
            select(*columns).where(b.c.workspace_id == workspace_id, b.c.effective_from <= day)
            .order_by(b.c.effective_from.desc()).limit(1)).first()
        if row is None:
            row = conn.execute(select(*columns).where(b.c.workspace_id == workspace_id)
                               .order_by(b.c.effective_from).limit(1)).first()
        if row is None:
            return None
        return Binding(workspace_id=row.workspace_id, account_id=row.account_id,
                       settlement_method=row.settlement_method,
                       effective_from=row.effective_from, cloud_account_id=row.cloud_account_id)

    def binding_in_force(self, conn: Connection, workspace_id: str, day: date) -> Binding | None:
        """The binding in force on ``day`` (account, settlement method), or None."""
        return self._binding(conn, workspace_id, day)

    def binding_for(self, conn: Connection, workspace_id: str, day: date) -> str | None:
        row = self._binding(conn, workspace_id, day)
        return None if row is None else str(row.account_id)

    def workspaces_of(self, account_id: str) -> list[PaidWorkspace]:
        """The workspaces ``account_id`` pays for today, by id; dissolved ones left out."""
        today = self.today()
        with self.engine.connect() as conn:
            ids = conn.execute(select(t.bindings.c.workspace_id).distinct()
                               .where(t.bindings.c.account_id == account_id)).scalars().all()
            result: list[PaidWorkspace] = []
            for workspace_id in sorted(ids):
                current = self._binding(conn, workspace_id, today)
                if current is None or current.account_id != account_id:
                    continue
                ws = conn.execute(select(t.workspaces).where(
                    t.workspaces.c.workspace_id == workspace_id)).first()
                if ws is not None and ws.dissolved_at is not None:
                    continue  # its console dissolved it
                result.append(PaidWorkspace(
                    workspace_id=workspace_id, site=ws.site if ws else None,
                    name=ws.name if ws else None, settlement_method=current.settlement_method,
                    bound_since=current.effective_from))
        return result
