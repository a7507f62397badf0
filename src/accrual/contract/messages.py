"""Versioned messages across the seam (ARCHITECTURE.md, "Messages across the seam").

Every message travels in an :class:`Envelope`, is JSON, and is idempotent by
its ``id``: each side keeps an inbox of applied ids. Amounts and quantities
are decimal strings.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
)

SCHEMA_VERSION = 1
_NAMESPACE = uuid.UUID("6f1d2c1e-55b8-4f5e-9d0c-2a4f7a1b0c11")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def _plain(value: str) -> str:
    # Text either database stores: PostgreSQL refuses NUL, no encoder takes a lone surrogate.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain unpaired surrogates") from None
    return value


# Strings of the service calls, bounded as the receiving tables store them.
Id32 = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=32)]
Short = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=8)]
Username = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=64)]
Email = Annotated[str, AfterValidator(_plain), Field(min_length=3, max_length=320)]
Secret = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=256)]
WorkspaceName = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=200)]
RegistrationKey = Annotated[str, AfterValidator(_plain), Field(min_length=16, max_length=128)]
# A marketplace activation's id (``act_`` and 32 hex digits today).
ActivationId = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=40)]

# Message types.
BILLING_DETAIL = "billing_detail"
WORKSPACE_CREATED = "workspace.created"
WORKSPACE_DISSOLVED = "workspace.dissolved"
BINDING_CHANGED = "binding.changed"
WORKSPACE_LOCK = "workspace.lock"
PROMOTION_REQUESTED = "promotion.requested"
PROMOTION_WITHDRAWN = "promotion.withdrawn"
PROMOTION_DECIDED = "promotion.decided"


def _no_number(value: object) -> object:
    # Pydantic would read 0 as 1970-01-01T00:00Z; an instant crosses the seam as text.
    if isinstance(value, (int, float)):
        raise ValueError("an ISO 8601 timestamp with a UTC offset, not a number")
    return value


class Envelope(BaseModel):
    """Bounded as the inbox and outbox tables store them (ids 64, types 32 characters)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=32)
    schema_version: StrictInt = Field(SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    # Per-aggregate ordering: a receiver ignores versions older than applied.
    aggregate_id: str = Field(min_length=1, max_length=64)
    aggregate_version: StrictInt = Field(0, ge=0, le=2**63 - 1)
    # The console site a billing-center message is for (routing); None from consoles.
    site: str | None = Field(None, min_length=1, max_length=32)
    occurred_at: Annotated[AwareDatetime, BeforeValidator(_no_number)]
    payload: dict[str, Any]


class BillingDetail(BaseModel):
    """One priced daily line for one (workspace, day, item, tier), or a correction of it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    site: str
    workspace_id: str
    billing_account_id: str | None
    day: date
    item: str
    retention_days: int
    quantity: str
    unit_size: str
    unit_price: str
    amount: str
    currency: str
    price_book_version: str
    kind: Literal["charge", "adjustment"]
    revision: int = 0
    adjusts: str | None = None
    reason: str | None = None
    created_at: datetime


class WorkspaceDissolved(BaseModel):
    """A console dissolved a workspace (its data is gone): the billing center stops
    counting it among the workspaces an account pays for. What it owed stays owed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    site: str
    dissolved_at: datetime


class WorkspaceCreated(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    site: str
    name: str
    owner_email: str
    language: str
    plan: str
    created_at: datetime
    # Set for the first workspace of a website registration: delivering this
    # message confirms that registration if the direct call did not.
    billing_account_id: str | None = None
    registration_key: str | None = None
    day: date | None = None
    # Set for a workspace made through a marketplace activation its billing account
    # claimed: delivering this message binds it through that subscription if the direct
    # call did not (``ActivatedWorkspace``). Optional, so older messages stay valid.
    activation_id: str | None = None


class BindingChanged(BaseModel):
    """The billing center's binding of a workspace, as the console should know it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    billing_account_id: str
    settlement_method: str
    effective_from: date
    plan: str = "commercial"


class PromotionRequested(BaseModel):
    """Console → billing: raising a member to administrator of a commercial workspace waits
    for the approval of the billing account that pays for it (reference-billing.md 1.4)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: Id32
    workspace_id: Id32
    site: Id32
    workspace_name: WorkspaceName
    member_email: Email
    requested_by_email: Email
    role: Literal["admin"] = "admin"
    requested_at: AwareDatetime


class PromotionWithdrawn(BaseModel):
    """Console → billing: a waiting request no longer stands (the member's role was
    changed otherwise, or the member left or was removed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: Id32
    workspace_id: Id32
    withdrawn_at: AwareDatetime


class PromotionDecided(BaseModel):
    """Billing → console: the paying account approved or rejected a request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: Id32
    workspace_id: Id32
    approved: bool
    decided_at: AwareDatetime


class WorkspaceLock(BaseModel):
    """Billing → console: a workspace's arrears state (reference-billing.md §5), or its
    lock after its marketplace subscription was cancelled (§5.4).

    ``countdown``: its account is in arrears and it will be locked at ``lock_at``
    unless paid; ``locked``: new data is refused; ``clear``: no arrears any more.
    The envelope's ``aggregate_id`` is the workspace and ``aggregate_version``
    grows with every state sent for it: a console applies a state only if its
    version is above the one it applied last.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workspace_id: str
    state: Literal["countdown", "locked", "clear"]
    # ``marketplace``: the cloud subscription that settled it was cancelled.
    reason: Literal["arrears", "marketplace"] = "arrears"
    lock_at: datetime | None = None  # when the countdown ends (countdown and locked)
    billing_account_id: str | None = None


def message_id(*parts: object) -> str:
    """A deterministic message id from the parts that make the message unique."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(map(str, parts))))


def _uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(_NAMESPACE, name))`` without building UUID objects (a day close
    makes hundreds of thousands of detail ids)."""
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def detail_id(site: str, workspace_id: str, day: date, item: str, tier: int, revision: int) -> str:
    """Deterministic, so a re-sent or re-computed detail has the same id: the
    :func:`message_id` of (site, workspace, day, item, tier, revision)."""
    return _uuid5_text(f"{site}/{workspace_id}/{day.isoformat()}/{item}/{tier}/{revision}")


def billing_detail_envelope(detail: BillingDetail, occurred_at: datetime) -> Envelope:
    """The envelope a billing detail crosses the seam in (idempotent by the detail's id,
    ordered per workspace)."""
    return Envelope(id=detail.id, type=BILLING_DETAIL, aggregate_id=detail.workspace_id,
                    occurred_at=occurred_at, payload=detail.model_dump(mode="json"))


_json_string = json.encoder.encode_basestring  # C accelerated
_instant = TypeAdapter(AwareDatetime)


def _json_or_null(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


# The pieces of a billing detail's envelope JSON that repeat across details, worked out
# once by BillingDetailJson and handed back to it (opaque to callers).
WorkspaceJson = tuple[str, str, str]  # the id as JSON, the detail-id prefix, its account
KeyJson = tuple[str, str]  # the detail-id part, the day, item and retention fields
PriceJson = tuple[str, str]  # the unit size, unit price and amount lead, the version


class BillingDetailJson:
    """Billing details of one site, currency and instant, straight to their envelope JSON.

    What ``billing_detail_envelope(BillingDetail(...), created_at).model_dump_json()``
    gives, byte for byte (tests/unit/test_detail_json.py proves it), without building
    models: a day close serialises hundreds of thousands of details. What repeats across
    details (a workspace, a (day, item, tier), a price) is made once by :meth:`workspace`,
    :meth:`key` and :meth:`price` and kept by the caller, which then :meth:`compose` s
    each detail; :meth:`envelope` does all of it for one detail. Quantities, prices and
    amounts are given as the contract's decimal strings (digits, a point, a minus).
    """

    def __init__(self, site: str, currency: str, created_at: datetime) -> None:
        instant = _instant.dump_json(created_at).decode()
        self.site = site
        self.head = (f'","type":"{BILLING_DETAIL}","schema_version":{SCHEMA_VERSION},'
                     f'"aggregate_id":')
        self.middle = (f',"aggregate_version":0,"site":null,"occurred_at":{instant},'
                       f'"payload":{{"id":"')
        self.site_part = f'","site":{_json_string(site)},"workspace_id":'
        self.currency_part = f'","currency":{_json_string(currency)},"price_book_version":'
        self.tail = f',"created_at":{instant}}}}}'

    def workspace(self, workspace_id: str, billing_account_id: str | None) -> WorkspaceJson:
        return (_json_string(workspace_id), f"{self.site}/{workspace_id}/",
                f',"billing_account_id":{_json_or_null(billing_account_id)}')

    @staticmethod
    def key(day: date, item: str, retention_days: int) -> KeyJson:
        iso = day.isoformat()
        return (f"{iso}/{item}/{retention_days}/",
                (f',"day":"{iso}","item":{_json_string(item)},'
                 f'"retention_days":{retention_days},"quantity":"'))

    @staticmethod
    def price(unit_size: str, unit_price: str, price_book_version: str) -> PriceJson:
        return (f'","unit_size":"{unit_size}","unit_price":"{unit_price}","amount":"',
                f'{_json_string(price_book_version)},"kind":')

    def compose(self, ws: WorkspaceJson, k: KeyJson, p: PriceJson, revision: int,
                quantity: str, amount: str, kind: str, adjusts: str | None,
                reason: str | None) -> tuple[str, str]:
        """(the detail's id, its envelope as JSON text)."""
        did = _uuid5_text(f"{ws[1]}{k[0]}{revision}")
        return did, (
            f'{{"id":"{did}{self.head}{ws[0]}{self.middle}{did}{self.site_part}'
            f'{ws[0]}{ws[2]}{k[1]}{quantity}{p[0]}{amount}{self.currency_part}'
            f'{p[1]}"{kind}","revision":{revision},"adjusts":'
            f'{"null" if adjusts is None else _json_string(adjusts)},"reason":'
            f'{"null" if reason is None else _json_string(reason)}{self.tail}')

    def envelope(self, workspace_id: str, billing_account_id: str | None, day: date, item: str,
                 retention_days: int, revision: int, *, quantity: str, unit_size: str,
                 unit_price: str, amount: str, price_book_version: str, kind: str,
                 adjusts: str | None, reason: str | None) -> tuple[str, str]:
        """(the detail's id, its envelope as JSON text), for one detail."""
        return self.compose(self.workspace(workspace_id, billing_account_id),
                            self.key(day, item, retention_days),
                            self.price(unit_size, unit_price, price_book_version),
                            revision, quantity, amount, kind, adjusts, reason)


class RegistrationRequest(BaseModel):
    """Console → billing: create (or find again) the billing account of a registration.

    ``registration_key`` makes the call idempotent: the same key gets the same
    account back, so a registration that failed half-way can simply be retried.
    """

    model_config = ConfigDict(extra="forbid")

    registration_key: RegistrationKey
    username: Username
    password: Secret
    email: Email
    language: Short
    # A buyer sent by a cloud marketplace: the first workspace settles through that
    # subscription. Optional, so a console that does not know it still speaks this.
    activation_id: ActivationId | None = None


class RegistrationConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: Id32
    site: Id32
    workspace_name: WorkspaceName
    owner_email: Email
    language: Short
    day: date


class RegistrationResult(BaseModel):
    billing_account_id: str
    status: Literal["pending", "active"]


class ActivationCheck(BaseModel):
    """Console → billing: may a new workspace be made through this marketplace activation?
    Nothing is stored; the answer says how the workspace will be bound."""

    model_config = ConfigDict(extra="forbid")

    activation_id: ActivationId
    # The console account asking: it must be the claiming billing account's address.
    email: Email


class ActivationGrant(BaseModel):
    """Billing → console: the activation is claimed and usable until ``expires_at``; a
    workspace made now is bound to ``billing_account_id`` and settles through the
    vendor (``settlement_method``) by that cloud account."""

    billing_account_id: str
    settlement_method: str
    cloud_account_id: str
    expires_at: datetime


class ActivatedWorkspace(BaseModel):
    """Console → billing: bind this new workspace through the activation it was checked
    with (made at ``created_at``, while the activation was valid); repeatable."""

    model_config = ConfigDict(extra="forbid")

    activation_id: ActivationId
    workspace_id: Id32
    site: Id32
    workspace_name: WorkspaceName
    owner_email: Email
    language: Short
    day: date
    created_at: AwareDatetime


class BindingCodeRequest(BaseModel):
    """Console → billing: mail a code to the owner of billing account ``username`` so that
    a free workspace can be bound to it (the upgrade to the commercial plan)."""

    model_config = ConfigDict(extra="forbid")

    workspace_id: Id32
    site: Id32
    workspace_name: WorkspaceName
    owner_email: Email
    language: Short
    username: Username


class BindingCodeSent(BaseModel):
    sent_to: str  # the account's email, masked
    expires_at: datetime


class BindingCodeConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: Id32
    username: Username
    code: Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=32)]


# Amounts cross the seam as decimal strings, never as numbers.
AmountText = Annotated[str, Field(pattern=r"^-?\d{1,16}\.\d{2}$")]


class WalletOverview(BaseModel):
    """Billing → console: what the account bound to a workspace holds and owes, for the
    console's settlement account overview (shown to a person who is waiting)."""

    billing_account_id: Id32
    username: Username
    currency: Short
    cash: AmountText
    vouchers: AmountText
    prepaid_cards: AmountText
    arrears: AmountText


SignInDestination = Literal["overview", "recharge", "workspaces", "change_binding"]


class SignInTicketRequest(BaseModel):
    """Console → billing: a one-time ticket that signs the owner of ``workspace_id`` in to
    the billing center as the account it is bound to (the password-less jump)."""

    model_config = ConfigDict(extra="forbid")

    billing_account_id: Id32
    workspace_id: Id32
    destination: SignInDestination = "overview"


class SignInTicket(BaseModel):
    ticket: Annotated[str, Field(min_length=16, max_length=128)]
    expires_at: datetime
    path: str = Field(description="Where the browser goes with it: /billing/jump?ticket=…")
