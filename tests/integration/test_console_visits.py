"""What a console asks of the billing center for its pages: the wallet overview and the
owner's one-time jump into the billing center."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from accrual.app import Runtime
from accrual.clock import ManualClock
from accrual.contract.messages import SignInTicketRequest
from accrual.contract.ports import PeerRefused
from tests.helpers import ADMIN, bearer, register


def test_the_overview_is_the_accounts_wallet_in_decimal_strings(client: TestClient, runtime: Runtime) -> None:
    ada = register(client)
    client.post(f"/billing/v1/admin/accounts/{ada['billing_account_id']}/recharges",
                headers=bearer(ADMIN), json={"amount": "12.30", "reference": "r-1"})
    port = runtime.console.billing
    overview = port.wallet_overview(ada["billing_account_id"])
    assert (overview.username, overview.currency, overview.cash, overview.arrears) == \
        ("ada", "CNY", "12.30", "0.00")
    with pytest.raises(PeerRefused) as refused:
        port.wallet_overview("ba_nobody")
    assert refused.value.code == "account_not_found"
    over_http = client.get(f"/billing/v1/internal/accounts/{ada['billing_account_id']}/wallet",
                           headers=bearer(ADMIN))
    assert over_http.status_code == 200 and over_http.json()["cash"] == "12.30"
    assert client.get(f"/billing/v1/internal/accounts/{ada['billing_account_id']}/wallet"
                      ).status_code == 401


def test_a_ticket_signs_in_once_and_only_for_a_bound_workspace(
        client: TestClient, runtime: Runtime, clock: ManualClock) -> None:
    ada, bob = register(client), register(client, "bob")
    port, center = runtime.console.billing, runtime.billing
    ticket = port.sign_in_ticket(SignInTicketRequest(
        billing_account_id=ada["billing_account_id"], workspace_id=ada["workspace_id"],
        destination="recharge"))
    assert ticket.path == f"/billing/jump?ticket={ticket.ticket}"
    visit = center.console_visits.redeem(ticket.ticket)
    token, account, destination = visit.token, visit.account_id, visit.destination
    assert (account, destination) == (ada["billing_account_id"], "recharge")
    assert center.accounts.account_for_session(token) == ada["billing_account_id"]
    with pytest.raises(Exception, match="used already") as again:
        center.console_visits.redeem(ticket.ticket)
    assert getattr(again.value, "code", None) == "ticket_invalid"

    # Bob's workspace is not Ada's to open.
    with pytest.raises(PeerRefused) as refused:
        port.sign_in_ticket(SignInTicketRequest(billing_account_id=ada["billing_account_id"],
                                                workspace_id=bob["workspace_id"]))
    assert refused.value.code == "workspace_not_bound"

    late = port.sign_in_ticket(SignInTicketRequest(
        billing_account_id=ada["billing_account_id"], workspace_id=ada["workspace_id"]))
    clock.advance(timedelta(minutes=2, seconds=1))
    with pytest.raises(Exception, match="expired") as expired:
        center.console_visits.redeem(late.ticket)
    assert getattr(expired.value, "code", None) == "ticket_invalid"
