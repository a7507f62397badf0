"""Marketplace activation: a buyer sent by a cloud marketplace becomes a cloud account
that a billing account settles workspaces through (reference-billing.md §1.6 rule 4,
§6.1–6.2, §7.3; marketplaces.md §1.2).

The flow, vendor-neutral (AWS names in brackets):

1. After subscribing, the marketplace posts the buyer's browser to the fulfilment URL
   ``POST /billing/v1/marketplaces/{vendor}/fulfillment`` with a short-lived, single-use
   token (form field ``x-amzn-marketplace-token``). :meth:`MarketplaceActivations.fulfil`
   resolves it (``ResolveCustomer``), reads the entitlement (an inactive one is refused),
   finds or creates the cloud account of (vendor, buyer account) and records an
   *activation* (``act_…``, valid an hour), then the browser is redirected (303) to the
   activation page. Until the pages exist that page is the JSON of
   ``GET /billing/v1/marketplaces/activations/{id}``.
2. From there the buyer either
   - **registers** on the console, ``POST /console/v1/registrations`` with
     ``activation_id``: the billing center reserves the activation when it creates the
     pending account (an unknown, expired or used activation refuses the registration
     before anything is created), and its confirmation, in one transaction, links the
     cloud account to the new billing account, completes the activation and binds the
     first workspace with that vendor as its settlement method, through that cloud
     account, marked as activated from that vendor (which then settles only through it,
     ``domain.methods.allowed``); or
   - **signs in** to an existing billing account and claims it,
     ``POST /billing/v1/marketplaces/activations/{id}/claim`` (the cloud account becomes
     this account's; one belonging to another account is 409 ``cloud_account_taken``),
     then binds workspaces the account pays for,
     ``POST /billing/v1/marketplaces/activations/{id}/workspaces``: each settles through
     the cloud account from the next billing day (decisions.md 11), with the
     once-a-month rule; a workspace locked because its earlier subscription ended is
     unlocked at once (its owner and the account are mailed, ``cloud_locks``); or
   - after claiming it, makes a **new workspace** for an existing console account:
     ``POST /console/v1/workspaces`` with ``activation_id``
     (``activated_workspaces``). The billing center checks the activation (it exists,
     is claimed by a billing account and has not expired; an open one is 409
     ``activation_not_claimed``: sign in and claim it first) and stores nothing; the
     console commits the workspace as commercial, bound to that account, and has it
     bound here from its first day with the vendor as its settlement method through
     the activation's cloud account, activated from that vendor; if that call fails,
     the workspace's ``workspace.created`` message binds it when delivered. Nothing is
     made on either side when the check is refused or cannot be made (503). A claimed
     activation makes any number of new workspaces until it expires: the id alone
     (no billing sign-in) opens this door, so only for its hour.
3. The cloud account stays one of the billing account's: more workspaces can settle
   through it with ``PUT …/workspaces/{id}/settlement-method`` (``cloud_account_id``).

The subscription's later life (vendor notifications) is ``marketplace_lifecycle``.
"""

from __future__ import annotations

import logging
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.domain import methods as rules
from accrual.billing.domain import subscriptions as rule
from accrual.billing.domain.marketplace import (
    Buyer,
    MarketplaceError,
    TokenRejected,
    Transient,
)
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.services import activation_records
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.methods import MethodChange, SettlementMethods
from accrual.clock import Clock
from accrual.contract.errors import Conflict, Invalid, NotFound, Unavailable
from accrual.infra.db import in_transaction

log = logging.getLogger(__name__)

# A registration token as it may come from a browser form (AWS does not document its
# length; real ones are a few hundred characters).
MAX_TOKEN = 4096
# Workspaces bound in one request.
MAX_WORKSPACES = 100
MAX_WORKSPACE_ID = 32
# What the vendor names a subscription by (the cloud_accounts columns' widths).
MAX_PRODUCT_CODE, MAX_LICENSE_REF, MAX_CUSTOMER_REF = 255, 2048, 255


@dataclass(frozen=True)
class Activation:
    id: str
    vendor: str
    buyer_account_id: str  # the buyer's account at the vendor
    cloud_account_id: str
    state: str  # open | reserved (by a registration) | completed | expired
    account_id: str | None  # the billing account that took (or reserved) it
    # Whether the cloud account already belongs to a billing account: then only that
    # account can use it (sign in to it).
    linked: bool
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class WorkspaceBound:
    workspace_id: str
    change: MethodChange | None  # None: it already settled so from tomorrow


class MarketplaceActivations:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, methods: SettlementMethods,
                 marketplaces: Marketplaces) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.accounts = accounts
        self.methods = methods
        self.marketplaces = marketplaces

    # -- 1. the buyer arrives ------------------------------------------------------

    def fulfil(self, vendor: str, token: object) -> Activation:
        """Resolve a buyer's registration token into an activation. A token the vendor
        refuses (unknown, used, expired) is 422 with the vendor's code; a vendor that
        cannot answer now is 503 ``marketplace_unavailable``; neither stores anything."""
        vendor = rules.check_vendor(vendor, self.config.currency)
        if vendor not in self.marketplaces:
            # This center sells no listing there: nothing to come from (not a passing fault).
            raise NotFound("marketplace_not_configured",
                           f"this billing center has no {vendor} marketplace listing")
        adapter = self.marketplaces.get(vendor)
        if not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN:
            raise Invalid("invalid_token",
                          f"the marketplace token is 1 to {MAX_TOKEN} characters")
        try:
            buyer = adapter.resolve_buyer(token)
            entitlement = adapter.entitlement(buyer)
        except TokenRejected as refused:
            raise Invalid(refused.code, "the marketplace did not accept this token ("
                          f"{refused.message}); open the product in the marketplace again "
                          "to be sent back here") from None
        except Transient as error:
            log.warning("%s fulfilment: the marketplace is unavailable: %s", vendor, error)
            raise Unavailable("marketplace_unavailable",
                              f"the {vendor} marketplace cannot be reached; nothing was "
                              "recorded, please retry") from None
        except MarketplaceError as error:
            log.error("%s fulfilment: the marketplace refused: %s", vendor, error)
            raise Unavailable("marketplace_unavailable",
                              f"the {vendor} marketplace refused to answer; nothing was "
                              "recorded, please retry later") from None
        self._check_buyer(vendor, buyer)
        if not entitlement.active:
            raise Conflict("subscription_inactive",
                           f"this {vendor} subscription is not active (expired or "
                           "cancelled); subscribe in the marketplace first")
        return in_transaction(self.engine, lambda conn: self._record(conn, buyer))

    def announce(self, buyer: Buyer) -> Activation:
        """A buyer the vendor sends us itself (Alibaba ``createInstance``, Huawei
        ``newInstance``): record its cloud account and an activation, as :meth:`fulfil`
        does after resolving a token. Repeatable, as those vendors retry: for the same
        live purchase the same cloud account, and the same activation while it is open
        (a new one once it expired or was used)."""
        vendor = rules.check_vendor(buyer.vendor, self.config.currency)
        if vendor not in self.marketplaces:
            raise NotFound("marketplace_not_configured",
                           f"this billing center has no {vendor} marketplace listing")
        self._check_buyer(vendor, buyer)
        return in_transaction(self.engine, lambda conn: self._record(conn, buyer, reuse=True))

    @staticmethod
    def _check_buyer(vendor: str, buyer: Buyer) -> None:
        """What the adapter answered fits what is stored (else the vendor misbehaved)."""
        problems = []
        if buyer.vendor != vendor:
            problems.append(f"vendor {buyer.vendor}")
        if not 1 <= len(buyer.account_id) <= rules.MAX_CLOUD_ACCOUNT_ID:
            problems.append("account id length")
        for value, limit in ((buyer.product_code, MAX_PRODUCT_CODE),
                             (buyer.license_ref, MAX_LICENSE_REF),
                             (buyer.customer_id, MAX_CUSTOMER_REF)):
            if value is not None and len(value) > limit:
                problems.append(f"a value longer than {limit}")
        if problems:
            log.error("%s fulfilment: unusable buyer (%s)", vendor, ", ".join(problems))
            raise Unavailable("marketplace_unavailable",
                              f"the {vendor} marketplace answered something unusable; "
                              "nothing was recorded")

    def _record(self, conn: Connection, buyer: Buyer, *, reuse: bool = False) -> Activation:
        c, a = t.cloud_accounts, t.marketplace_activations
        now = self.clock.now()
        if conn.dialect.name == "postgresql":
            # Two deliveries of one purchase at once (a vendor retrying a slow answer)
            # find or make one cloud account: the second waits for the first's commit.
            # SQLite: every transaction already holds the write lock (BEGIN IMMEDIATE).
            key = zlib.crc32(f"cloud-account/{buyer.vendor}/{buyer.account_id}/"
                             f"{buyer.license_ref or ''}".encode())
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        # The buyer's live subscription if one is known (a buyer coming back through the
        # marketplace); one that ended makes way for a new cloud account. A vendor that
        # names purchases by instance keeps one cloud account per instance.
        same = [c.c.vendor == buyer.vendor, c.c.external_id == buyer.account_id,
                c.c.status.in_((rule.CloudStatus.ACTIVE, rule.CloudStatus.PENDING))]
        if buyer.vendor in rule.INSTANCE_VENDORS:
            same.append(c.c.license_ref == buyer.license_ref)
        existing = conn.execute(select(c).where(*same)
                                .order_by(c.c.linked_at.desc(), c.c.id).limit(1)).first()
        names = {"product_code": buyer.product_code, "license_ref": buyer.license_ref,
                 "customer_ref": buyer.customer_id}
        if existing is None:
            cloud_id = "ca_" + secrets.token_hex(12)
            conn.execute(insert(c).values(id=cloud_id, account_id=None, vendor=buyer.vendor,
                                          external_id=buyer.account_id,
                                          status=rule.CloudStatus.ACTIVE, linked_at=now,
                                          **names))
        else:
            cloud_id = existing.id
            conn.execute(update(c).where(c.c.id == cloud_id)
                         .values(status=rule.CloudStatus.ACTIVE, **names))
        if reuse and existing is not None:
            # A repeated announcement: the activation still waiting for its buyer.
            waiting = conn.execute(select(a.c.id).where(
                a.c.cloud_account_id == cloud_id, a.c.completed_at.is_(None),
                a.c.account_id.is_(None), a.c.expires_at > now)
                .order_by(a.c.created_at.desc()).limit(1)).scalar()
            if waiting is not None:
                return self._view(conn, activation_records.load(conn, waiting), now)
        activation_id = "act_" + secrets.token_hex(16)
        conn.execute(insert(a).values(id=activation_id, vendor=buyer.vendor,
                                      cloud_account_id=cloud_id, created_at=now,
                                      expires_at=now + rule.ACTIVATION_TTL))
        log.info("%s buyer %s sent by the marketplace: activation %s (cloud account %s)",
                 buyer.vendor, buyer.account_id, activation_id, cloud_id)
        return self._view(conn, activation_records.load(conn, activation_id), now)

    def activation(self, activation_id: str) -> Activation:
        with self.engine.connect() as conn:
            return self._view(conn, activation_records.load(conn, activation_id),
                              self.clock.now())

    # -- 2b. an existing billing account takes it --------------------------------

    def claim(self, activation_id: str, account_id: str) -> Activation:
        """Link the activation's cloud account to ``account_id`` (the signed-in account);
        repeatable by it. 409 ``cloud_account_taken`` when another account has it,
        ``activation_used`` / ``activation_expired`` as for registration."""
        self.accounts.account(account_id)
        # The vendor told first, outside the transaction (Azure's Activate).
        self.accounts.before_take(activation_id)

        def work(conn: Connection) -> Activation:
            now = self.clock.now()
            activation = activation_records.load(conn, activation_id)
            activation_records.take(conn, activation, account_id, now)
            return self._view(conn, activation_records.load(conn, activation_id), now)

        return in_transaction(self.engine, work)

    def bind_workspaces(self, activation_id: str, account_id: str,
                        workspace_ids: Sequence[object]) -> list[WorkspaceBound]:
        """Settle these workspaces (bound to ``account_id``) through the activation's
        cloud account from the next billing day. All or none: one refused (not this
        account's, changed this month already, restricted to another vendor …) refuses
        the request and changes nothing. The activation must have been claimed by this
        account (409 ``activation_not_claimed``)."""
        wanted = _check_workspace_ids(workspace_ids)
        self.accounts.account(account_id)

        def work(conn: Connection) -> list[WorkspaceBound]:
            activation = activation_records.load(conn, activation_id)
            if activation.account_id is None or activation.completed_at is None:
                raise Conflict("activation_not_claimed",
                               "claim the activation for this billing account first")
            cloud = activation_records.check_free_for(conn, activation, account_id,
                                                      self.clock.now())
            done = []
            for workspace_id in wanted:
                try:
                    change = self.methods.change_in(conn, account_id, workspace_id,
                                                    cloud.vendor, cloud.id,
                                                    reason="resubscribed")
                except Conflict as refused:
                    if refused.code != "settlement_unchanged":
                        raise
                    change = None  # a repeated request: it settles so already
                done.append(WorkspaceBound(workspace_id, change))
            return done

        return in_transaction(self.engine, work)

    # -- views --------------------------------------------------------------------

    @staticmethod
    def _view(conn: Connection, row: Any, now: datetime) -> Activation:
        cloud = activation_records.cloud_account(conn, row.cloud_account_id)
        if row.completed_at is not None:
            state = "completed"
        elif row.account_id is not None:
            state = "reserved"
        elif row.expires_at <= now:
            state = "expired"
        else:
            state = "open"
        return Activation(id=row.id, vendor=row.vendor, buyer_account_id=cloud.external_id,
                          cloud_account_id=cloud.id, state=state, account_id=row.account_id,
                          linked=cloud.account_id is not None, created_at=row.created_at,
                          expires_at=row.expires_at)


def _check_workspace_ids(workspace_ids: Sequence[object]) -> list[str]:
    if isinstance(workspace_ids, (str, bytes)) or not 1 <= len(workspace_ids) <= MAX_WORKSPACES:
        raise Invalid("invalid_workspaces",
                      f"workspace_ids lists 1 to {MAX_WORKSPACES} workspace ids")
    ids: list[str] = []
    for workspace_id in workspace_ids:
        if not isinstance(workspace_id, str) or not 1 <= len(workspace_id) <= MAX_WORKSPACE_ID:
            raise Invalid("invalid_workspaces",
                          f"a workspace id is 1 to {MAX_WORKSPACE_ID} characters")
        if workspace_id not in ids:
            ids.append(workspace_id)
    return ids
