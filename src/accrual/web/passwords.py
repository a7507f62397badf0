"""What the change-password pages of both sides share: the form's fields and the check
that the new password was typed the same twice (the services check the rest)."""

from __future__ import annotations

from accrual.contract.errors import Invalid

# The services' refusals, beside the field they are about.
FIELDS = {"wrong_password": "current_password", "too_many_attempts": "current_password",
          "invalid_password": "new_password", "password_unchanged": "new_password",
          "password_mismatch": "new_password_again"}


def check_typed_twice(new: str, again: str) -> None:
    if new != again:
        raise Invalid("password_mismatch", "the new password was not typed the same twice")
