"""The billing center's mail texts: the approval request in both languages."""

from __future__ import annotations

import pytest

from accrual.billing.mail_texts import render

VALUES = {"username": "ada", "workspace_name": "Ada team", "site": "cn1",
          "member_email": "grace@example.com", "requested_by_email": "ada@example.com"}


@pytest.mark.parametrize(("language", "subject", "says"), [
    ("en", "Approve an administrator of Ada team?", "Administrator approvals"),
    ("zh", "是否批准 Ada team 的管理员？", "管理员审批"),
])
def test_the_approval_request_names_who_asked_for_whom(language: str, subject: str,
                                                        says: str) -> None:
    mail = render("promotion_requested", language, "ada@example.com", **VALUES)
    assert mail.subject == subject
    assert "grace@example.com" in mail.body and "ada@example.com" in mail.body
    assert says in mail.body
