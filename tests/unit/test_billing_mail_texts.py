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


@pytest.mark.parametrize(("language", "says"), [
    ("en", "The billing center account payer asked to pay for your workspace"),
    ("zh", "费用中心账号 payer 申请为您的工作空间"),
])
def test_the_owner_is_asked_for_the_code_in_their_own_words(language: str, says: str) -> None:
    mail = render("binding_code_owner", language, "owner@example.com", username="payer",
                  code="123456", workspace_name="Lab", site="cn1", expires_at="2026-11-28 10:15")
    assert says in mail.body and "123456" in mail.body
