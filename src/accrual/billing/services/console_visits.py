"""What a console asks of the billing center for its pages: the owner's password-less
jump into the billing center, and the wallet overview of the account a workspace is
bound to.

The console (trusted, over its service connection) asks for a ticket for the
account its workspace is bound to; the browser brings the ticket to
``/billing/jump``, which redeems it once for an ordinary session. A ticket
lives two minutes, is stored only as a hash and works once, so one seen in a
log or a referrer is worth nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, insert, select, update

from accrual.billing.adapters import tables as t
from accrual.billing.config import BillingConfig
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.wallet import Wallet
from accrual.clock import Clock
from accrual.contract.errors import Forbidden, Unauthorized
from accrual.contract.messages import SignInTicket, SignInTicketRequest, WalletOverview
from accrual.infra.credentials import new_token, token_hash
from accrual.money import format_minor

TICKET_TTL = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Visit:
    token: str  # the new session's
    account_id: str
    destination: str  # a contract.messages.SignInDestination
    workspace_id: str  # whose owner came


class ConsoleVisits:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 accounts: BillingAccounts, wallet: Wallet) -> None:
        self.engine, self.config, self.clock, self.accounts = engine, config, clock, accounts
        self.wallet = wallet

    def wallet_overview(self, account_id: str) -> WalletOverview:
        account = self.accounts.account(account_id)  # 404 account_not_found
        overview = self.wallet.overview(account_id)
        currency = overview.currency
        return WalletOverview(
            billing_account_id=account_id, username=account.username, currency=currency,
            cash=format_minor(overview.cash_minor, currency),
            vouchers=format_minor(overview.vouchers_minor, currency),
            prepaid_cards=format_minor(overview.prepaid_cards_minor, currency),
            arrears=format_minor(overview.arrears_minor, currency))

    def issue(self, request: SignInTicketRequest) -> SignInTicket:
        """A ticket for ``billing_account_id`` when ``workspace_id`` is bound to it today."""
        self.accounts.account(request.billing_account_id)  # 404 account_not_found
        bound = {w.workspace_id for w in self.accounts.workspaces_of(request.billing_account_id)}
        if request.workspace_id not in bound:
            raise Forbidden("workspace_not_bound",
                            f"workspace {request.workspace_id} is not paid for by this billing "
                            "account; sign in to the billing center with its username instead")
        ticket = new_token("bt")
        now = self.clock.now()
        expires_at = now + TICKET_TTL
        with self.engine.begin() as conn:
            # Spent and expired tickets are of no use to anyone: keep the table small.
            conn.execute(delete(t.sign_in_tickets).where(t.sign_in_tickets.c.expires_at < now))
            conn.execute(insert(t.sign_in_tickets).values(
                ticket_hash=token_hash(ticket), account_id=request.billing_account_id,
                workspace_id=request.workspace_id, destination=request.destination,
                expires_at=expires_at))
        return SignInTicket(ticket=ticket, expires_at=expires_at,
                            path=f"/billing/jump?ticket={ticket}")

    def redeem(self, ticket: str) -> Visit:
        """The session a valid ticket opens, once, and where it leads."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(select(t.sign_in_tickets).where(
                t.sign_in_tickets.c.ticket_hash == token_hash(ticket))).first()
            if row is None or row.used_at is not None or row.expires_at <= now:
                raise Unauthorized("ticket_invalid", "this sign-in link has expired or was "
                                   "used already; open the billing center from the console "
                                   "again, or sign in with your username")
            taken = conn.execute(update(t.sign_in_tickets).where(
                t.sign_in_tickets.c.ticket_hash == row.ticket_hash,
                t.sign_in_tickets.c.used_at.is_(None)).values(used_at=now)).rowcount
            if taken != 1:  # redeemed at the same moment by another request
                raise Unauthorized("ticket_invalid", "this sign-in link was used already")
            token = self.accounts.open_session_in(conn, row.account_id)
        return Visit(token, str(row.account_id), str(row.destination), str(row.workspace_id))
