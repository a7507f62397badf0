"""What each role may do in a workspace (reference-billing.md 1.4)."""

from __future__ import annotations

import pytest

from accrual.console.domain.roles import Action, built_in_roles_allowed, permissions_for, refusal_for


@pytest.mark.parametrize(("role", "granted", "expected"), [
    ("owner", (), (True, True, True, True)),
    ("admin", (), (True, True, False, True)),
    ("member", (), (False, False, False, False)),
    ("custom", ("billing",), (True, False, False, False)),
    ("custom", (), (False, False, False, False)),
    ("member", ("billing",), (False, False, False, False)),  # grants count for custom roles only
])
def test_each_role_may_do_what_the_reference_gives_it(role: str, granted: tuple[str, ...],
                                                      expected: tuple[bool, ...]) -> None:
    allowed = permissions_for(role, granted)
    assert tuple(allowed.allows(a) for a in (Action.VIEW_BILLING, Action.MANAGE_ALERTS,
                                             Action.OWNER_ACTIONS, Action.MANAGE_MEMBERS)) == expected


def test_unknown_roles_and_the_refusals() -> None:
    with pytest.raises(ValueError):
        permissions_for("superuser")
    assert built_in_roles_allowed(Action.MANAGE_ALERTS) == ("owner", "admin")
    assert refusal_for(Action.VIEW_BILLING).code == "billing_permission_required"
    assert refusal_for(Action.OWNER_ACTIONS).code == "owner_only"
