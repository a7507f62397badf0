"""A workspace's members and its custom roles (reference-billing.md 1.4).

The owner and administrators add console accounts by email, change their roles and
remove them; anyone but the owner may leave. Custom roles ("Finance") are named per
workspace and grant permissions of ``domain/roles.PERMISSIONS``.

Raising someone to administrator of a commercial workspace waits for the paying
billing account's approval: the member keeps the old role, the row holds the wanted
one, and a ``promotion.requested`` message goes to the billing center; its
``promotion.decided`` answer (see ``inbox``) applies or drops it. Any other change of
that member's role, or the member's leaving, withdraws the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.roles import (
    ADMIN,
    CUSTOM,
    MAX_CUSTOM_ROLES,
    MAX_MEMBERS,
    OWNER,
    Action,
    Refusal,
    check_assignment,
    check_permissions,
    check_role_name,
    needs_approval,
)
from accrual.console.services.accounts import Accounts, legacy_email, normal_email, split_grants
from accrual.console.services.permissions import raise_refusal, require
from accrual.contract.errors import Conflict, NotFound
from accrual.contract.messages import (
    PROMOTION_REQUESTED,
    PROMOTION_WITHDRAWN,
    Envelope,
    PromotionRequested,
    PromotionWithdrawn,
    message_id,
)
from accrual.infra.credentials import new_id
from accrual.infra.outbox import enqueue


@dataclass(frozen=True, slots=True)
class Member:
    account_id: str
    email: str
    role: str  # owner | admin | member | custom
    role_name: str  # the built-in role, or the custom role's name
    custom_role_id: str | None
    pending_role: str | None  # "admin" while a raise waits for the billing center
    pending_since: datetime | None
    added_at: datetime | None


@dataclass(frozen=True, slots=True)
class CustomRole:
    id: str
    workspace_id: str
    name: str
    permissions: tuple[str, ...]
    members: int  # how many members hold it
    created_at: datetime


def _refuse(found: Refusal | None) -> None:
    if found is not None:
        raise_refusal(found)


class Members:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock,
                 accounts: Accounts) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts

    # -- members ---------------------------------------------------------------

    def members_of(self, account_id: str, workspace_id: str) -> list[Member]:
        """Every member, the owner first; any member may see who else is in the workspace."""
        self.accounts.require_member(account_id, workspace_id)
        with self.engine.connect() as conn:
            return self._members(conn, workspace_id)

    def add(self, account_id: str, workspace_id: str, email: object, role: object,
            custom_role_id: str | None = None) -> Member:
        """Add the console account with ``email``. A new member asked to be an administrator
        of a commercial workspace joins as a member until the billing center approves."""
        require(self.accounts, account_id, workspace_id, Action.MANAGE_MEMBERS)
        _refuse(check_assignment(role, custom_role_id))
        now = self.clock.now()
        with self.engine.begin() as conn:
            ws = self._workspace(conn, workspace_id)
            found = conn.execute(select(t.accounts.c.id, t.accounts.c.email).where(
                t.accounts.c.email.in_(sorted({normal_email(email), legacy_email(email)})))
                .order_by(t.accounts.c.email != normal_email(email)).limit(1)).first()
            if found is None:
                raise NotFound("account_not_found",
                               "no console account has this email; they register first, then "
                               "you add them")
            m = t.members
            if conn.execute(select(m.c.role).where(m.c.workspace_id == workspace_id,
                                                   m.c.account_id == found.id)).first():
                raise Conflict("already_member", f"{found.email} is already a member")
            count = conn.execute(select(func.count()).select_from(m)
                                 .where(m.c.workspace_id == workspace_id)).scalar_one()
            if count >= MAX_MEMBERS:
                raise Conflict("member_limit",
                               f"a workspace has at most {MAX_MEMBERS} members; remove one first")
            self._check_custom_role(conn, workspace_id, custom_role_id)
            wait = needs_approval(ws.plan, None, str(role))
            try:
                conn.execute(insert(m).values(
                    workspace_id=workspace_id, account_id=found.id,
                    role="member" if wait else role, custom_role_id=custom_role_id,
                    added_at=now))
            except IntegrityError:
                raise Conflict("already_member", f"{found.email} is already a member") from None
            if wait:
                self._request_promotion(conn, ws, account_id, found.id, found.email, now)
            return self._member(conn, workspace_id, found.id)

    def change(self, account_id: str, workspace_id: str, member_id: str, role: object,
               custom_role_id: str | None = None) -> Member:
        """Give ``member_id`` another role; a raise to administrator of a commercial
        workspace waits for approval (the answer shows it as ``pending_role``)."""
        require(self.accounts, account_id, workspace_id, Action.MANAGE_MEMBERS)
        _refuse(check_assignment(role, custom_role_id))
        now = self.clock.now()
        with self.engine.begin() as conn:
            ws = self._workspace(conn, workspace_id)
            current = self._row(conn, workspace_id, member_id)
            if current.role == OWNER:
                raise_refusal(_OWNER_PROTECTED)
            self._check_custom_role(conn, workspace_id, custom_role_id)
            if (current.role == role and current.custom_role_id == custom_role_id
                    and current.pending_role is None) or current.pending_role == role:
                return self._member(conn, workspace_id, member_id)  # as asked already
            if current.pending_request_id is not None:
                self._withdraw(conn, workspace_id, current.pending_request_id, now)
            if needs_approval(ws.plan, current.role, str(role)):
                email = conn.execute(select(t.accounts.c.email)
                                     .where(t.accounts.c.id == member_id)).scalar_one()
                self._request_promotion(conn, ws, account_id, member_id, email, now)
            else:
                conn.execute(update(t.members).where(
                    t.members.c.workspace_id == workspace_id,
                    t.members.c.account_id == member_id).values(
                    role=role, custom_role_id=custom_role_id))
            return self._member(conn, workspace_id, member_id)

    def remove(self, account_id: str, workspace_id: str, member_id: str) -> None:
        """Remove a member; removing oneself is leaving, which needs no permission. The owner
        can neither be removed nor leave (dissolve the workspace instead)."""
        if member_id != account_id:
            require(self.accounts, account_id, workspace_id, Action.MANAGE_MEMBERS)
        else:
            self.accounts.require_member(account_id, workspace_id)
        now = self.clock.now()
        with self.engine.begin() as conn:
            current = self._row(conn, workspace_id, member_id)
            if current.role == OWNER:
                raise_refusal(_OWNER_PROTECTED)
            if current.pending_request_id is not None:
                self._withdraw(conn, workspace_id, current.pending_request_id, now)
            conn.execute(delete(t.members).where(t.members.c.workspace_id == workspace_id,
                                                 t.members.c.account_id == member_id))

    # -- custom roles ----------------------------------------------------------

    def roles_of(self, account_id: str, workspace_id: str) -> list[CustomRole]:
        self.accounts.require_member(account_id, workspace_id)
        with self.engine.connect() as conn:
            return self._roles(conn, workspace_id)

    def create_role(self, account_id: str, workspace_id: str, name: object,
                    permissions: object) -> CustomRole:
        require(self.accounts, account_id, workspace_id, Action.MANAGE_MEMBERS)
        text, granted = _checked(name, permissions)
        r = t.workspace_roles
        role_id = new_id()
        with self.engine.begin() as conn:
            self._workspace(conn, workspace_id)
            count = conn.execute(select(func.count()).select_from(r)
                                 .where(r.c.workspace_id == workspace_id)).scalar_one()
            if count >= MAX_CUSTOM_ROLES:
                raise Conflict("role_limit", f"a workspace has at most {MAX_CUSTOM_ROLES} "
                                             "custom roles; delete one first")
            try:
                with conn.begin_nested():
                    conn.execute(insert(r).values(
                        id=role_id, workspace_id=workspace_id, name=text,
                        name_key=text.casefold(), permissions=",".join(granted),
                        created_at=self.clock.now()))
            except IntegrityError:
                raise Conflict("role_name_taken", f"a role named {text!r} exists") from None
            return self._role(conn, workspace_id, role_id)

    def update_role(self, account_id: str, workspace_id: str, role_id: str, name: object,
                    permissions: object) -> CustomRole:
        """Rename a role or change its grants; its members have the new grants at once."""
        require(self.accounts, account_id, workspace_id, Action.MANAGE_MEMBERS)
        text, granted = _checked(name, permissions)
        r = t.workspace_roles
        with self.engine.begin() as conn:
            self._role(conn, workspace_id, role_id)
            try:
                with conn.begin_nested():
                    conn.execute(update(r).where(r.c.id == role_id).values(
                        name=text, name_key=text.casefold(), permissions=",".join(granted)))
            except IntegrityError:
                raise Conflict("role_name_taken", f"a role named {text!r} exists") from None
            return self._role(conn, workspace_id, role_id)

    def delete_role(self, account_id: str, workspace_id: str, role_id: str) -> None:
        require(self.accounts, account_id, workspace_id, Action.MANAGE_MEMBERS)
        with self.engine.begin() as conn:
            found = self._role(conn, workspace_id, role_id)
            if found.members:
                raise Conflict("role_in_use", f"{found.members} member(s) hold {found.name!r}; "
                                              "give them another role first")
            conn.execute(delete(t.workspace_roles).where(t.workspace_roles.c.id == role_id))

    # -- the rows --------------------------------------------------------------

    @staticmethod
    def _workspace(conn: Connection, workspace_id: str) -> Any:
        w = t.workspaces
        ws = conn.execute(select(w.c.id, w.c.name, w.c.site, w.c.plan)
                          .where(w.c.id == workspace_id)).first()
        if ws is None:
            raise NotFound("workspace_not_found", f"no workspace {workspace_id} among yours")
        return ws

    @staticmethod
    def _row(conn: Connection, workspace_id: str, member_id: str) -> Any:
        m = t.members
        row = conn.execute(select(m).where(m.c.workspace_id == workspace_id,
                                           m.c.account_id == member_id)).first()
        if row is None:
            raise NotFound("member_not_found", f"no member {member_id} in this workspace")
        return row

    @staticmethod
    def _check_custom_role(conn: Connection, workspace_id: str, role_id: str | None) -> None:
        if role_id is None:
            return
        r = t.workspace_roles
        if conn.execute(select(r.c.id).where(r.c.id == role_id,
                                             r.c.workspace_id == workspace_id)).first() is None:
            raise NotFound("unknown_role", f"no custom role {role_id} in this workspace")

    def _request_promotion(self, conn: Connection, ws: Any, by_id: str, member_id: str,
                           member_email: str, now: datetime) -> None:
        request_id = new_id()
        conn.execute(update(t.members).where(
            t.members.c.workspace_id == ws.id, t.members.c.account_id == member_id).values(
            pending_role=ADMIN, pending_request_id=request_id, pending_since=now))
        by_email = conn.execute(select(t.accounts.c.email)
                                .where(t.accounts.c.id == by_id)).scalar_one()
        event = PromotionRequested(request_id=request_id, workspace_id=ws.id, site=ws.site,
                                   workspace_name=ws.name, member_email=member_email,
                                   requested_by_email=by_email, requested_at=now)
        enqueue(conn, t.outbox, [Envelope(
            id=message_id(PROMOTION_REQUESTED, request_id), type=PROMOTION_REQUESTED,
            aggregate_id=ws.id, occurred_at=now, payload=event.model_dump(mode="json"))], now)

    @staticmethod
    def _withdraw(conn: Connection, workspace_id: str, request_id: str, now: datetime) -> None:
        conn.execute(update(t.members).where(t.members.c.pending_request_id == request_id)
                     .values(pending_role=None, pending_request_id=None, pending_since=None))
        event = PromotionWithdrawn(request_id=request_id, workspace_id=workspace_id,
                                   withdrawn_at=now)
        enqueue(conn, t.outbox, [Envelope(
            id=message_id(PROMOTION_WITHDRAWN, request_id), type=PROMOTION_WITHDRAWN,
            aggregate_id=workspace_id, occurred_at=now, payload=event.model_dump(mode="json"))],
            now)

    @staticmethod
    def _members(conn: Connection, workspace_id: str, member_id: str | None = None
                 ) -> list[Member]:
        m, a, r = t.members, t.accounts, t.workspace_roles
        query = (select(m, a.c.email, r.c.name.label("custom_name"))
                 .join(a, a.c.id == m.c.account_id)
                 .outerjoin(r, r.c.id == m.c.custom_role_id)
                 .where(m.c.workspace_id == workspace_id))
        if member_id is not None:
            query = query.where(m.c.account_id == member_id)
        rows = conn.execute(query).all()
        order = {OWNER: 0, ADMIN: 1, CUSTOM: 2}
        return sorted((Member(row.account_id, row.email, row.role,
                              row.custom_name if row.role == CUSTOM else row.role,
                              row.custom_role_id, row.pending_role, row.pending_since,
                              row.added_at) for row in rows),
                      key=lambda member: (order.get(member.role, 3), member.email))

    def _member(self, conn: Connection, workspace_id: str, member_id: str) -> Member:
        return self._members(conn, workspace_id, member_id)[0]

    @staticmethod
    def _roles(conn: Connection, workspace_id: str, role_id: str | None = None
               ) -> list[CustomRole]:
        r, m = t.workspace_roles, t.members
        held = (select(m.c.custom_role_id, func.count().label("n")).where(
            m.c.workspace_id == workspace_id, m.c.custom_role_id.is_not(None))
            .group_by(m.c.custom_role_id).subquery())
        query = (select(r, held.c.n).outerjoin(held, held.c.custom_role_id == r.c.id)
                 .where(r.c.workspace_id == workspace_id).order_by(r.c.name_key))
        if role_id is not None:
            query = query.where(r.c.id == role_id)
        return [CustomRole(row.id, row.workspace_id, row.name, split_grants(row.permissions),
                           int(row.n or 0), row.created_at) for row in conn.execute(query)]

    def _role(self, conn: Connection, workspace_id: str, role_id: str) -> CustomRole:
        found = self._roles(conn, workspace_id, role_id)
        if not found:
            raise NotFound("unknown_role", f"no custom role {role_id} in this workspace")
        return found[0]


_OWNER_PROTECTED = Refusal("forbidden", "owner_protected",
                           "the owner's role cannot be changed or removed; a workspace keeps "
                           "its owner until it is dissolved")


def _checked(name: object, permissions: object) -> tuple[str, tuple[str, ...]]:
    text, granted = check_role_name(name), check_permissions(permissions)
    if isinstance(text, Refusal):
        raise_refusal(text)
    if isinstance(granted, Refusal):
        raise_refusal(granted)
    assert isinstance(text, str) and isinstance(granted, tuple)
    return text, granted
