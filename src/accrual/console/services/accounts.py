"""Console accounts, sessions, workspaces, membership and ingest keys.

Registration spans both systems: the billing center makes (or finds again)
a pending billing account under an idempotency key, the console then commits
its account and workspace together with a `workspace.created` message, and
confirms the billing account. Any failure before the console commit leaves
no console rows and a pending billing account that the same request reuses
on retry (and that the billing center reaps if never confirmed).

A further workspace made through a marketplace activation follows the same
order: the billing center checks the activation (storing nothing), the console
commits the commercial workspace with its `workspace.created` message (which
names the activation), then asks the billing center to bind it; if that call
fails, the message binds it when delivered.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from accrual.clock import Clock, site_day
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.services.inbox import apply_binding
from accrual.contract.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unauthorized,
    Unavailable,
)
from accrual.contract.messages import (
    WORKSPACE_CREATED,
    ActivatedWorkspace,
    ActivationCheck,
    ActivationGrant,
    Envelope,
    RegistrationConfirmation,
    RegistrationRequest,
    WorkspaceCreated,
    message_id,
)
from accrual.contract.ports import BillingCenterPort, PeerRefused, PeerUnavailable
from accrual.infra.credentials import (
    hash_password,
    new_id,
    new_token,
    password_problem,
    token_hash,
    verify_password,
)
from accrual.infra.outbox import enqueue
from accrual.infra.passwords import check_change
from accrual.infra.sign_in_failures import SignInThrottle

log = logging.getLogger(__name__)

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s.]{1,63}$")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,63}$")
LANGUAGES = ("en", "zh")
# The billing center's refusals of a registration that are about the state of things
# (409), not the request's form (422).
REFUSED_AS_CONFLICT = frozenset({"username_taken", "activation_used", "activation_expired",
                                 "activation_not_claimed", "cloud_account_taken",
                                 "subscription_ended", "idempotency_conflict",
                                 "marketplace_refused"})
MAX_ACTIVATION_ID = 40


@dataclass(frozen=True)
class Registration:
    console_account_id: str
    billing_account_id: str
    workspace_id: str
    ingest_key: str


@dataclass(frozen=True, slots=True)
class Workspace:
    """A workspace as the console keeps it, with the arrears state the billing center sent."""

    id: str
    name: str
    site: str
    language: str
    plan: str  # free | commercial
    status: str  # active | locked | dissolved
    billing_account_id: str | None
    settlement_method: str | None
    created_at: datetime
    lock_state: str | None  # countdown | locked; None when not in arrears
    lock_at: datetime | None
    dissolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class Membership:
    """A workspace an account belongs to, with its role there."""

    workspace: Workspace
    role: str  # owner | admin | member | custom
    role_name: str | None = None  # a custom role's name ("Finance")
    granted: tuple[str, ...] = ()  # a custom role's permissions


@dataclass(frozen=True, slots=True)
class Role:
    """An account's role in a workspace, with a custom role's name and grants."""

    role: str
    role_name: str | None = None
    granted: tuple[str, ...] = ()


def split_grants(stored: str | None) -> tuple[str, ...]:
    return tuple(p for p in (stored or "").split(",") if p)


@dataclass(frozen=True)
class NewWorkspace:
    workspace_id: str
    ingest_key: str
    plan: str = "free"
    billing_account_id: str | None = None
    settlement_method: str | None = None


def normal_email(email: object) -> str:
    """The one form of an e-mail address for uniqueness and lookup: NFKC, then case-folded,
    so a full-width or differently cased address is the same account."""
    if not isinstance(email, str):
        return ""
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def legacy_email(email: object) -> str:
    """The form e-mails were stored in before :func:`normal_email`: stripped and lower-cased.
    It differs only for addresses with non-ASCII characters; such rows keep it until they
    are rewritten, so lookups try it after the normal form (a full-width address registered
    then still logs in, and is not registered a second time)."""
    return email.strip().lower() if isinstance(email, str) else ""


# Invisible or unassigned characters: an address holding one looks like another address.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _visible(text: str) -> bool:
    return not any(unicodedata.category(char) in _INVISIBLE for char in text)


def _check_password(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise Invalid("invalid_password", problem)


def _check_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not 1 <= len(name) <= 200:
        raise Invalid("invalid_workspace_name", "workspace name must be 1 to 200 characters")
    if not _visible(name):
        raise Invalid("invalid_workspace_name", "workspace name must not contain control, "
                           "bidi, zero-width, private-use or unassigned characters")
    return name


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise Invalid("invalid_language", "language must be 'en' or 'zh'")


def _check_activation_id(activation_id: object) -> None:
    if activation_id is not None and (not isinstance(activation_id, str) or not
                                      1 <= len(activation_id) <= MAX_ACTIVATION_ID):
        raise Invalid("invalid_activation",
                      f"activation_id is 1 to {MAX_ACTIVATION_ID} characters")


def _refusal(refusal: PeerRefused) -> Exception:
    """The billing center's refusal as this console's own error."""
    kind = NotFound if refusal.code == "activation_not_found" \
        else Forbidden if refusal.code == "activation_not_yours" \
        else Unavailable if refusal.code == "marketplace_unavailable" \
        else Conflict if refusal.code in REFUSED_AS_CONFLICT else Invalid
    return kind(refusal.code, refusal.message)


class Accounts:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock,
                 billing: BillingCenterPort) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.billing = billing
        self.throttle = SignInThrottle(engine, t.sign_in_failures, clock, config.sign_in)

    # -- registration ---------------------------------------------------

    def register(self, email: str, password: str, username: str, workspace_name: str,
                 language: str, activation_id: str | None = None) -> Registration:
        """``activation_id``: a buyer sent by a cloud marketplace (the billing center's
        activation); the first workspace then settles through that subscription. The
        billing center refuses an unknown, expired or used one before anything is made."""
        given_email, email = email, normal_email(email)
        # Lower-casing can lengthen text ("İ" → "i̇"): check the length afterwards.
        if len(email) > 320 or not EMAIL.fullmatch(email) or not _visible(email):
            raise Invalid("invalid_email", "email is not a valid address")
        if not isinstance(username, str) or not USERNAME.fullmatch(username):
            raise Invalid("invalid_username",
                               "username must be 3 to 64 letters, digits, '_', '.' or '-', "
                               "starting with a letter or digit")
        _check_password(password)
        workspace_name = _check_name(workspace_name)
        _check_language(language)
        _check_activation_id(activation_id)
        with self.engine.connect() as conn:
            if conn.execute(select(exists().where(
                    t.accounts.c.email.in_(sorted({email, legacy_email(given_email)}))))).scalar():
                raise Conflict("email_taken", f"an account with email {email} already exists")

        # The same request retried gets the same billing account back.
        key = hashlib.sha256(f"{self.config.site}\0{email}\0{username.lower()}".encode()).hexdigest()
        try:
            result = self.billing.register_account(RegistrationRequest(
                registration_key=key, username=username, password=password, email=email,
                language=language, activation_id=activation_id))
        except PeerRefused as refusal:
            raise _refusal(refusal) from None
        except PeerUnavailable as error:
            log.warning("registration of %s: billing center unavailable: %s", email, error)
            raise Unavailable("billing_unavailable",
                              "the billing center cannot be reached; nothing was created, "
                              "please retry the same request") from None

        now = self.clock.now()
        account_id, workspace_id = new_id(), new_id()
        ingest_key = new_token("ik")
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.accounts).values(
                    id=account_id, email=email, password_hash=hash_password(password),
                    created_at=now))
                self._insert_workspace(conn, workspace_id, workspace_name, language, account_id,
                                       ingest_key, now, plan="commercial",
                                       billing_account_id=result.billing_account_id,
                                       owner_email=email, registration_key=key)
        except IntegrityError:
            self._cancel(key)
            raise Conflict("email_taken", f"an account with email {email} already exists") from None
        except Exception:
            self._cancel(key)
            raise
        try:
            self.billing.confirm_registration(key, RegistrationConfirmation(
                workspace_id=workspace_id, site=self.config.site, workspace_name=workspace_name,
                owner_email=email, language=language, day=site_day(now, self.config.zone)))
        except (PeerUnavailable, PeerRefused) as error:
            # The console side is committed; the workspace.created message in
            # the outbox confirms the account when it is delivered.
            log.warning("registration %s: confirmation deferred to the outbox: %s", key, error)
        return Registration(account_id, result.billing_account_id, workspace_id, ingest_key)

    def _cancel(self, key: str) -> None:
        try:
            self.billing.cancel_registration(key)
        except (PeerUnavailable, PeerRefused) as error:
            log.warning("registration %s: cancel failed (the billing center reaps it): %s", key, error)

    def _insert_workspace(self, conn: Connection, workspace_id: str, name: str, language: str,
                          owner_id: str, ingest_key: str, now: datetime, *, plan: str,
                          billing_account_id: str | None, owner_email: str,
                          registration_key: str | None = None,
                          settlement_method: str | None = None,
                          activation_id: str | None = None) -> None:
        if billing_account_id and settlement_method is None:
            settlement_method = "billing_center"
        conn.execute(insert(t.workspaces).values(
            id=workspace_id, name=name, site=self.config.site, language=language, plan=plan,
            status="active", owner_account_id=owner_id, billing_account_id=billing_account_id,
            settlement_method=settlement_method, created_at=now))
        conn.execute(insert(t.members).values(workspace_id=workspace_id, account_id=owner_id,
                                              role="owner", added_at=now))
        conn.execute(insert(t.ingest_keys).values(key_hash=token_hash(ingest_key),
                                                  workspace_id=workspace_id, created_at=now))
        event = WorkspaceCreated(workspace_id=workspace_id, site=self.config.site, name=name,
                                 owner_email=owner_email, language=language, plan=plan,
                                 created_at=now, billing_account_id=billing_account_id,
                                 registration_key=registration_key,
                                 day=site_day(now, self.config.zone),
                                 activation_id=activation_id)
        enqueue(conn, t.outbox, [Envelope(
            id=message_id(WORKSPACE_CREATED, workspace_id), type=WORKSPACE_CREATED, aggregate_id=workspace_id,
            occurred_at=now, payload=event.model_dump(mode="json"))], now)

    # -- sessions ---------------------------------------------------------

    def login(self, email: str, password: str, client_address: str | None = None) -> str:
        """A session token. Failures count per account and per ``client_address`` (None:
        unknown, e.g. an in-process caller); while either is locked out this raises
        ``TooManyAttempts`` without checking the password. A success clears the account's."""
        normal, legacy = normal_email(email), legacy_email(email)
        self.throttle.check(normal, client_address)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.accounts.c.id, t.accounts.c.password_hash,
                                       t.accounts.c.email)
                                .where(t.accounts.c.email.in_(sorted({normal, legacy})))).all()
        # The normal form first; a row stored before normalisation only when there is none.
        row = min(rows, key=lambda r: r.email != normal, default=None)
        if row is None or not verify_password(row.password_hash, password):
            self.throttle.failed(normal, client_address)
            raise Unauthorized("invalid_credentials", "email or password is wrong")
        self.throttle.succeeded(normal)
        token = new_token("cs")
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(insert(t.sessions).values(
                token_hash=token_hash(token), account_id=row.id, created_at=now,
                expires_at=now + self.config.session_ttl))
        return token

    def change_password(self, account_id: str, current: str, new: str,
                        keep_token: str | None = None) -> int:
        """Replace the password once the current one is given; every other session of the
        account ends (a stolen one included), ``keep_token``'s stays. A wrong current
        password counts as a failed sign-in of the account (the same throttle). Answers how
        many sessions ended."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.accounts.c.email, t.accounts.c.password_hash)
                               .where(t.accounts.c.id == account_id)).one()
        checked = check_change(self.throttle, normal_email(row.email), row.password_hash,
                               current, new)
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

    def email_of(self, account_id: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(select(t.accounts.c.email)
                                    .where(t.accounts.c.id == account_id)).scalar_one())

    def logout(self, token: str) -> bool:
        """End the session of ``token``: afterwards it is refused. False when there was none."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.sessions).where(
                t.sessions.c.token_hash == token_hash(token))).rowcount)

    def language_of(self, account_id: str) -> str | None:
        """The pages' language the account last chose; None until it chose one."""
        with self.engine.connect() as conn:
            return conn.execute(select(t.accounts.c.language)
                                .where(t.accounts.c.id == account_id)).scalar()

    def set_language(self, account_id: str, language: str) -> None:
        _check_language(language)
        with self.engine.begin() as conn:
            conn.execute(update(t.accounts).where(t.accounts.c.id == account_id)
                         .values(language=language))

    def account_for_session(self, token: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.sessions.c.account_id, t.sessions.c.expires_at)
                               .where(t.sessions.c.token_hash == token_hash(token))).first()
        if row is None or row.expires_at <= self.clock.now():
            return None
        return str(row.account_id)

    def workspace_for_ingest_key(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(t.ingest_keys.c.workspace_id)
                                .where(t.ingest_keys.c.key_hash == token_hash(key))).scalar()

    # -- workspaces -------------------------------------------------------

    def create_workspace(self, account_id: str, name: str, language: str,
                         activation_id: str | None = None) -> NewWorkspace:
        """A further workspace: free until a billing account is bound to it; or, with
        ``activation_id`` (a marketplace activation a billing account claimed), commercial
        and bound to that account from its first day, settling through the vendor."""
        name = _check_name(name)
        _check_language(language)
        _check_activation_id(activation_id)
        if activation_id is not None:
            return self._create_activated(account_id, name, language, activation_id)
        now = self.clock.now()
        workspace_id, ingest_key = new_id(), new_token("ik")
        with self.engine.begin() as conn:
            email = conn.execute(select(t.accounts.c.email)
                                 .where(t.accounts.c.id == account_id)).scalar_one()
            self._insert_workspace(conn, workspace_id, name, language, account_id, ingest_key,
                                   now, plan="free", billing_account_id=None, owner_email=email)
        return NewWorkspace(workspace_id, ingest_key)

    def _create_activated(self, account_id: str, name: str, language: str,
                          activation_id: str) -> NewWorkspace:
        """All or nothing: refused or unreachable, the billing center leaves nothing made
        on either side; once the workspace is committed here, binding it is repeatable
        (the direct call, else its ``workspace.created`` message)."""
        with self.engine.connect() as conn:
            email = conn.execute(select(t.accounts.c.email)
                                 .where(t.accounts.c.id == account_id)).scalar_one()
        grant = self._check_activation(activation_id, email)
        now = self.clock.now()
        workspace_id, ingest_key = new_id(), new_token("ik")
        with self.engine.begin() as conn:
            self._insert_workspace(conn, workspace_id, name, language, account_id, ingest_key,
                                   now, plan="commercial",
                                   billing_account_id=grant.billing_account_id,
                                   owner_email=email, settlement_method=grant.settlement_method,
                                   activation_id=activation_id)
        billing_account_id, method = grant.billing_account_id, grant.settlement_method
        try:
            change = self.billing.bind_activated_workspace(ActivatedWorkspace(
                activation_id=activation_id, workspace_id=workspace_id, site=self.config.site,
                workspace_name=name, owner_email=email, language=language,
                day=site_day(now, self.config.zone), created_at=now))
        except (PeerUnavailable, PeerRefused) as error:
            log.warning("workspace %s: binding through activation %s deferred to the "
                        "outbox: %s", workspace_id, activation_id, error)
        else:
            with self.engine.begin() as conn:
                apply_binding(conn, change, self.clock.now())
            billing_account_id, method = change.billing_account_id, change.settlement_method
        return NewWorkspace(workspace_id, ingest_key, "commercial", billing_account_id, method)

    def _check_activation(self, activation_id: str, email: str) -> ActivationGrant:
        try:
            return self.billing.check_activation(ActivationCheck(activation_id=activation_id,
                                                                 email=email))
        except PeerRefused as refusal:
            raise _refusal(refusal) from None
        except PeerUnavailable as error:
            log.warning("workspace through activation %s: billing center unavailable: %s",
                        activation_id, error)
            raise Unavailable("billing_unavailable",
                              "the billing center cannot be reached; nothing was created, "
                              "please retry the same request") from None

    def role_of(self, account_id: str, workspace_id: str) -> Role | None:
        """The account's role in the workspace with a custom role's grants; None when it
        is not a member."""
        m, r = t.members, t.workspace_roles
        with self.engine.connect() as conn:
            row = conn.execute(select(m.c.role, r.c.name, r.c.permissions)
                               .outerjoin(r, r.c.id == m.c.custom_role_id)
                               .where(m.c.workspace_id == workspace_id,
                                      m.c.account_id == account_id)).first()
        return None if row is None else Role(row.role, row.name, split_grants(row.permissions))

    def require_role(self, account_id: str, workspace_id: str) -> Role:
        found = self.role_of(account_id, workspace_id)
        if found is None:
            # Not 403: whether another tenant's workspace exists is not ours to tell.
            raise NotFound("workspace_not_found", f"no workspace {workspace_id} among yours")
        return found

    def require_member(self, account_id: str, workspace_id: str) -> str:
        return self.require_role(account_id, workspace_id).role

    def workspaces_of(self, account_id: str) -> list[Membership]:
        w, m, r = t.workspaces, t.members, t.workspace_roles
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*_WORKSPACE_COLUMNS, m.c.role, r.c.name.label("role_name"),
                       r.c.permissions)
                .join(m, m.c.workspace_id == w.c.id)
                .outerjoin(r, r.c.id == m.c.custom_role_id)
                .where(m.c.account_id == account_id)
                .order_by(w.c.created_at)).all()
        return [Membership(_workspace(row), row.role, row.role_name,
                           split_grants(row.permissions)) for row in rows]

    def workspace(self, workspace_id: str) -> Workspace | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_WORKSPACE_COLUMNS)
                               .where(t.workspaces.c.id == workspace_id)).first()
        return None if row is None else _workspace(row)

    def count_accounts(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.accounts)).scalar_one())


_WORKSPACE_COLUMNS = tuple(t.workspaces.c[name] for name in (
    "id", "name", "site", "language", "plan", "status", "billing_account_id",
    "settlement_method", "created_at", "lock_state", "lock_at", "dissolved_at"))


def _workspace(row: Any) -> Workspace:
    return Workspace(row.id, row.name, row.site, row.language, row.plan, row.status,
                     row.billing_account_id, row.settlement_method, row.created_at,
                     row.lock_state, row.lock_at, row.dissolved_at)
