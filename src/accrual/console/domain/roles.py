"""Roles inside a workspace and what each may do (reference-billing.md 1.4).

Built in: the **owner** (exactly one per workspace; everything), **admin** (sees
Plans & Billing, sets high-consumption alerts, manages members) and **member**
(read-only or standard: none of that). A **custom** role is named per workspace
("Finance") and grants permissions from :data:`PERMISSIONS`; today that is
``billing`` ("Plans & Billing"): the billing module, read only.

The owner's own actions (change retention, upgrade to commercial, dissolve, and
the Recharge / Billing Center / Settlement Method / Change Binding buttons) stay
the owner's: no role can be granted them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

OWNER, ADMIN, MEMBER, CUSTOM = "owner", "admin", "member", "custom"
BUILT_IN = (OWNER, ADMIN, MEMBER)
BILLING = "billing"
# What a custom role can be granted, with the name the console shows for it.
PERMISSIONS = {BILLING: "Plans & Billing"}
# What an owner or administrator can give a member; the owner is never given, only had.
ASSIGNABLE = (ADMIN, MEMBER, CUSTOM)
MAX_ROLE_NAME = 40
MAX_CUSTOM_ROLES = 20  # per workspace
MAX_MEMBERS = 500  # per workspace, the owner included


class Action(Enum):
    """What a page or an endpoint asks to do; the value names the :class:`Permissions` field."""

    VIEW_BILLING = "billing_view"
    MANAGE_ALERTS = "alerts_manage"
    OWNER_ACTIONS = "owner_actions"
    MANAGE_MEMBERS = "members_manage"


@dataclass(frozen=True, slots=True)
class Permissions:
    """What one account may do in one workspace: pages show or hide by these fields."""

    role: str  # owner | admin | member | custom
    role_name: str  # the built-in role, or the custom role's name ("Finance")
    billing_view: bool  # the Plans & Billing module: overview, details, usage, quota, alerts
    alerts_manage: bool  # set and remove high-consumption alerts
    owner_actions: bool  # retention, upgrade, dissolve, recharge, settlement, change binding
    members_manage: bool  # add, change and remove members; create and delete custom roles

    def allows(self, action: Action) -> bool:
        return bool(getattr(self, action.value))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused, as a kind the service turns into its error."""

    kind: Literal["forbidden", "conflict", "invalid"]
    code: str
    message: str


def permissions_for(role: str, granted: Iterable[str] = (), role_name: str | None = None
                    ) -> Permissions:
    """The permissions of ``role``; ``granted`` counts for a custom role only."""
    if role == CUSTOM:
        billing = BILLING in set(granted)
        return Permissions(CUSTOM, role_name or CUSTOM, billing, False, False, False)
    if role not in BUILT_IN:
        raise ValueError(f"unknown role {role!r}")
    owner, manager = role == OWNER, role in (OWNER, ADMIN)
    return Permissions(role, role, manager, manager, owner, manager)


def built_in_roles_allowed(action: Action) -> tuple[str, ...]:
    """The built-in roles that may do ``action`` (e.g. whom an alert mails)."""
    return tuple(role for role in BUILT_IN if permissions_for(role).allows(action))


_ASK = {
    Action.VIEW_BILLING: Refusal(
        "forbidden", "billing_permission_required",
        "Plans & Billing is shown to the workspace owner, administrators and roles granted "
        "the Plans & Billing permission; ask the workspace owner or an administrator for it"),
    Action.MANAGE_ALERTS: Refusal(
        "forbidden", "owner_or_admin_only",
        "high-consumption alerts are set by the workspace owner and administrators; ask one "
        "of them"),
    Action.OWNER_ACTIONS: Refusal(
        "forbidden", "owner_only", "only the workspace owner may do this; ask the owner"),
    Action.MANAGE_MEMBERS: Refusal(
        "forbidden", "owner_or_admin_only",
        "members and roles are managed by the workspace owner and administrators; ask one "
        "of them"),
}


def refusal_for(action: Action) -> Refusal:
    """The refusal of ``action`` to someone whose role does not allow it."""
    return _ASK[action]


def check_role_name(name: object) -> str | Refusal:
    """A custom role's name as stored (trimmed, NFC), or why it cannot be one: 1 to
    :data:`MAX_ROLE_NAME` visible characters, and not the name of a built-in role."""
    text = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else ""
    if not 1 <= len(text) <= MAX_ROLE_NAME or any(
            unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp")
            for char in text):
        return Refusal("invalid", "invalid_role_name",
                       f"a role name is 1 to {MAX_ROLE_NAME} visible characters")
    if text.casefold() in (*BUILT_IN, "administrator", CUSTOM):
        return Refusal("invalid", "invalid_role_name",
                       f"{text!r} is a built-in role; choose another name")
    return text


def check_permissions(granted: object) -> tuple[str, ...] | Refusal:
    """The permissions a custom role is granted, sorted and without repeats."""
    if not isinstance(granted, list | tuple) or not all(isinstance(p, str) for p in granted):
        return Refusal("invalid", "invalid_permission", "permissions is a list of names")
    unknown = sorted(set(granted) - PERMISSIONS.keys())
    if unknown:
        return Refusal("invalid", "invalid_permission",
                       f"unknown permission {unknown[0]!r}; known: {', '.join(PERMISSIONS)}")
    return tuple(sorted(set(granted)))


def check_assignment(role: object, custom_role_id: object) -> Refusal | None:
    """Whether ``role`` (with a custom role's id when it is ``custom``) can be given."""
    if role == OWNER:
        return Refusal("invalid", "owner_not_assignable",
                       "a workspace has one owner; the owner role cannot be given")
    if role not in ASSIGNABLE:
        return Refusal("invalid", "invalid_role",
                       f"role must be one of {', '.join(ASSIGNABLE)}")
    if (role == CUSTOM) != (custom_role_id is not None):
        return Refusal("invalid", "invalid_role",
                       "custom_role_id is given exactly when role is 'custom'")
    return None


def needs_approval(plan: str, current: str | None, wanted: str) -> bool:
    """Raising someone to administrator on a commercial workspace waits for the billing
    center's approval (reference 1.4); on a free one it does not, nor does any other change."""
    return plan == "commercial" and wanted == ADMIN and current != ADMIN
