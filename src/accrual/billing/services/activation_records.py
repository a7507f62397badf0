"""Marketplace activations and the cloud accounts they carry, as rows: loading one,
reserving it for a registration, linking its cloud account to a billing account and
completing it, each in the caller's transaction.

Kept apart from ``marketplace_activation`` (the flow) so that registration
(``accounts``) can take an activation without depending on that flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.domain import subscriptions as rule
from accrual.contract.errors import Conflict, NotFound
from accrual.infra.bulk import among


def load(conn: Connection, activation_id: str) -> Any:
    """The activation (a row), held until the transaction ends on PostgreSQL; 404
    ``activation_not_found``."""
    a = t.marketplace_activations
    query = select(a).where(a.c.id == activation_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound("activation_not_found", f"no marketplace activation {activation_id}")
    return row


def cloud_account(conn: Connection, cloud_account_id: str) -> Any:
    c = t.cloud_accounts
    query = select(c).where(c.c.id == cloud_account_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one()


def check_free_for(conn: Connection, activation: Any, account_id: str | None,
                   now: datetime) -> Any:
    """The activation's cloud account, once sure ``account_id`` may take both (see
    ``subscriptions.check_activation``; 409 ``cloud_account_taken`` when the cloud
    account belongs to another billing account, ``subscription_ended`` when the vendor
    ended it meanwhile)."""
    rule.check_activation(expires_at=activation.expires_at, taken_by=activation.account_id,
                          account_id=account_id, now=now)
    cloud = cloud_account(conn, activation.cloud_account_id)
    if cloud.account_id is not None and cloud.account_id != account_id:
        raise Conflict("cloud_account_taken",
                       "this cloud account is linked to another billing account: sign in "
                       "to that account to use it")
    if rule.ended(cloud.status):
        raise Conflict("subscription_ended",
                       f"this {cloud.vendor} subscription has ended; subscribe again in "
                       "the marketplace")
    return cloud


def reserve(conn: Connection, activation_id: str, account_id: str, now: datetime) -> None:
    """Hold the activation for a registration's pending account: its confirmation binds
    the first workspace through it (:func:`reserved_for`)."""
    activation = load(conn, activation_id)
    check_free_for(conn, activation, account_id, now)
    conn.execute(update(t.marketplace_activations)
                 .where(t.marketplace_activations.c.id == activation_id)
                 .values(account_id=account_id))


def reserved_for(conn: Connection, account_id: str) -> Any:
    """The activation a registration's account reserved and has not completed, or None."""
    a = t.marketplace_activations
    return conn.execute(select(a).where(a.c.account_id == account_id,
                                        a.c.completed_at.is_(None))
                        .order_by(a.c.created_at).limit(1)).first()


def release(conn: Connection, account_ids: Iterable[str]) -> None:
    """Give back what these (dropped) pending accounts reserved: the buyer may retry."""
    wanted = set(account_ids)
    if not wanted:
        return
    a = t.marketplace_activations
    conn.execute(update(a).where(among(conn, a.c.account_id, wanted), a.c.completed_at.is_(None))
                 .values(account_id=None))


def take(conn: Connection, activation: Any, account_id: str, now: datetime) -> Any:
    """Link the activation's cloud account to ``account_id`` and complete the activation;
    repeatable by the same account. Returns the cloud account (a row)."""
    cloud = check_free_for(conn, activation, account_id, now)
    c, a = t.cloud_accounts, t.marketplace_activations
    if cloud.account_id is None:
        conn.execute(update(c).where(c.c.id == cloud.id, c.c.account_id.is_(None))
                     .values(account_id=account_id, linked_at=now))
    if activation.completed_at is None:
        conn.execute(update(a).where(a.c.id == activation.id)
                     .values(account_id=account_id, completed_at=now))
    return cloud_account(conn, cloud.id)
