"""Rules of settlement methods (reference-billing.md §4.1, §6; decisions.md 11, 14, 18).

``billing_center`` settles from the account's wallet; a cloud marketplace
(``aws``, ``aliyun``, ``huawei``, ``azure``) through a linked cloud account.
A change takes effect at the start of the next billing day and is allowed once
per calendar month in the center's zone. Which methods a workspace may take
depends on the channel it was activated through (:func:`allowed`). Pure: the service loads the
workspace's bindings and the month's changes, asks here, then writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from accrual.billing.domain import settlement
from accrual.contract.errors import Conflict, Invalid, NotFound

BILLING_CENTER = "billing_center"
VENDORS = settlement.CLOUD_METHODS
METHODS = (BILLING_CENTER, *VENDORS)
MAX_CLOUD_ACCOUNT_ID = 128


def is_cloud(method: str | None) -> bool:
    return method in VENDORS


def available(currency: str) -> tuple[str, ...]:
    """The methods a center of this currency offers: Azure only in USD (decisions.md 14)."""
    return tuple(m for m in METHODS if m != "azure" or currency == "USD")


def check_method(method: object, currency: str) -> str:
    offered = available(currency)
    if not isinstance(method, str) or method not in METHODS:
        raise Invalid("invalid_settlement_method",
                      f"settlement_method must be one of {', '.join(offered)}")
    if method not in offered:
        raise Invalid("method_not_available",
                      f"{method} settlement is not offered by the {currency} billing center")
    return method


def check_vendor(vendor: object, currency: str) -> str:
    offered = [v for v in available(currency) if v in VENDORS]
    if not isinstance(vendor, str) or vendor not in offered:
        raise Invalid("invalid_vendor", f"vendor must be one of {', '.join(offered)}")
    return vendor


def check_cloud_account_id(external_id: object) -> str:
    """A marketplace account's id, trimmed: 1 to 128 characters."""
    if not isinstance(external_id, str) \
            or not 1 <= len(external_id.strip()) <= MAX_CLOUD_ACCOUNT_ID:
        raise Invalid("invalid_cloud_account",
                      f"the cloud account id is 1 to {MAX_CLOUD_ACCOUNT_ID} characters")
    return external_id.strip()


def effective_from(today: date) -> date:
    """A change settles the workspace by its new method from the next billing day."""
    return today + timedelta(days=1)


def month_of(day: date) -> tuple[date, date]:
    """The calendar month holding ``day``: (its first day, the next month's first day)."""
    start = day.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class Binding:
    """Which account settles a workspace on a day, by which method and, for a cloud
    method, through which of the account's cloud accounts."""

    account_id: str
    settlement_method: str
    cloud_account_id: str | None = None


def allowed(currency: str, activated_via: str | None, released: bool) -> tuple[str, ...]:
    """The methods a workspace may settle by (reference-billing.md §1.6 rules 7–9,
    decisions.md 13–14).

    ``activated_via``: the marketplace the workspace was activated from (None: the
    website). A website workspace may take any method the center offers; one activated
    from a vendor only that vendor, until its subscription was cancelled or released
    (``released``), when the billing center is allowed too."""
    offered = available(currency)
    if activated_via is None:
        return offered
    return tuple(m for m in offered
                 if m == activated_via or (released and m == BILLING_CENTER))


def check_channel(method: str, currency: str, activated_via: str | None,
                  released: bool) -> None:
    """409 ``channel_restricted`` for a method the workspace's channel does not allow."""
    permitted = allowed(currency, activated_via, released)
    if method not in permitted:
        raise Conflict("channel_restricted",
                       f"this workspace was activated from the {activated_via} marketplace: "
                       f"it settles only by {', '.join(permitted)}"
                       + ("" if released else
                          " (the billing center too once that subscription is cancelled)"))


def pick_cloud_account(vendor: str, candidates: list[str], wanted: str | None) -> str:
    """Which of the account's active cloud accounts of ``vendor`` (their ids) settles:
    ``wanted`` if given (404 ``cloud_account_not_found`` when it is not among them), else
    the only one (409 ``cloud_account_required`` when none, ``cloud_account_ambiguous``
    when several)."""
    if wanted is not None:
        if wanted not in candidates:
            raise NotFound("cloud_account_not_found",
                           f"no active {vendor} cloud account {wanted} linked to this account")
        return wanted
    if not candidates:
        raise Conflict("cloud_account_required",
                       f"link a {vendor} cloud account to this billing account first "
                       "(activate through the marketplace)")
    if len(candidates) > 1:
        raise Conflict("cloud_account_ambiguous",
                       f"this account has {len(candidates)} active {vendor} cloud accounts: "
                       "say which one by cloud_account_id")
    return candidates[0]


def check_change(*, account_id: str, workspace_id: str, method: str, today: date,
                 current: Binding | None, upcoming: Binding, cloud_account_linked: bool,
                 changed_this_month: bool, cloud_account_id: str | None = None,
                 currency: str | None = None, activated_via: str | None = None,
                 released: bool = False, locked_by_cloud: bool = False) -> None:
    """Whether ``account_id`` may settle ``workspace_id`` by ``method`` (through
    ``cloud_account_id`` for a marketplace) from tomorrow.

    ``current`` is the workspace's binding today, ``upcoming`` tomorrow's. Refused: a
    workspace not bound to the account today (404 ``workspace_not_found``); one moving
    to another account tomorrow (``binding_changing``); the method (and cloud account)
    it already has from tomorrow (``settlement_unchanged``); a marketplace without a
    linked cloud account (``cloud_account_required``); a method its channel does not
    allow (``channel_restricted``, see :func:`allowed`; checked when ``currency`` is
    given); a second change in the calendar month (``settlement_change_limit``), except
    for a workspace locked because its cloud account was cancelled
    (``locked_by_cloud``): a locked workspace can always be unlocked."""
    if current is None or current.account_id != account_id:
        raise NotFound("workspace_not_found",
                       f"workspace {workspace_id} is not bound to this account")
    if upcoming.account_id != account_id:
        raise Conflict("binding_changing", "this workspace moves to another account "
                                           "tomorrow; its new account chooses the method")
    if upcoming.settlement_method == method and (
            not is_cloud(method) or cloud_account_id is None
            or upcoming.cloud_account_id == cloud_account_id):
        raise Conflict("settlement_unchanged",
                       f"the workspace already settles by {method} from tomorrow")
    if is_cloud(method) and not cloud_account_linked:
        raise Conflict("cloud_account_required",
                       f"link a {method} cloud account to this billing account first "
                       "(activate through the marketplace)")
    if currency is not None:
        check_channel(method, currency, activated_via, released)
    if changed_this_month and not locked_by_cloud:
        _, next_month = month_of(today)
        raise Conflict("settlement_change_limit",
                       "the settlement method can change once a calendar month; "
                       f"next possible on {next_month.isoformat()}")
