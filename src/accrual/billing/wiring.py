"""The billing center assembled: its engine, services and relays to console sites."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from accrual.billing.adapters import tables
from accrual.billing.config import BillingConfig
from accrual.billing.marketplaces import Marketplaces
from accrual.billing.payments.gateway import PaymentGateway
from accrual.billing.payments.service import Payments
from accrual.billing.services import ledger
from accrual.billing.services.account_profile import AccountProfiles
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.activated_workspaces import ActivatedWorkspaces
from accrual.billing.services.arrears import Arrears
from accrual.billing.services.azure_fulfillment import AzureFulfillment
from accrual.billing.services.binding_codes import BindingCodes
from accrual.billing.services.certification import Certifications
from accrual.billing.services.console_visits import ConsoleVisits
from accrual.billing.services.huawei_activities import HuaweiActivities
from accrual.billing.services.inbox import BillingInbox
from accrual.billing.services.instruments import Instruments
from accrual.billing.services.invoice_records import InvoiceRecords
from accrual.billing.services.invoices import Invoices
from accrual.billing.services.mail_outbox import MailOutbox
from accrual.billing.services.marketplace_activation import MarketplaceActivations
from accrual.billing.services.marketplace_lifecycle import MarketplaceLifecycle
from accrual.billing.services.marketplace_reconciliation import MarketplaceReconciliation
from accrual.billing.services.marketplace_reporter import MarketplaceReporter
from accrual.billing.services.methods import SettlementMethods
from accrual.billing.services.movements import Movements
from accrual.billing.services.nonce_store import DatabaseNonces
from accrual.billing.services.password_reset import PasswordReset
from accrual.billing.services.promotions import Promotions
from accrual.billing.services.statements import Statements
from accrual.billing.services.voucher_batches import VoucherBatches
from accrual.billing.services.wallet import Wallet
from accrual.billing.services.workspace_moves import WorkspaceMoves
from accrual.clock import Clock
from accrual.contract.messages import Envelope
from accrual.contract.ports import ConsolePort
from accrual.infra.db import upgrade
from accrual.infra.mail import LogMailer, Mailer
from accrual.infra.outbox import Delivered, Relay

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class BillingCenter:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 mailer: Mailer | None = None,
                 payment_gateway: PaymentGateway | None = None,
                 marketplaces: Marketplaces | None = None) -> None:
        self.engine = engine
        # The marketplace adapters this center settles through (configuration).
        self.marketplaces = marketplaces or Marketplaces()
        self.config = config
        self.clock = clock
        self.mailer = mailer or LogMailer()
        self.accounts = BillingAccounts(engine, config, clock)
        self.mails = MailOutbox(engine, clock, self.mailer)
        self.arrears = Arrears(engine, config, clock, self.accounts)
        # Every movement that can change arrears posts through here (the rule follows).
        self.movements = Movements(self.arrears)
        self.wallet = Wallet(engine, config, clock, self.accounts, self.movements)
        # A console's owner jumping in without a password; the overview its pages show.
        self.console_visits = ConsoleVisits(engine, config, clock, self.accounts, self.wallet)
        # New workspaces made on a console through a claimed marketplace activation.
        self.activated_workspaces = ActivatedWorkspaces(engine, config, clock, self.accounts)
        self.promotions = Promotions(engine, clock, self.accounts)
        self.inbox = BillingInbox(engine, config, clock, self.accounts, self.arrears,
                                  self.movements, self.activated_workspaces, self.promotions)
        self.binding_codes = BindingCodes(engine, config, clock, self.accounts, self.mailer)
        self.password_reset = PasswordReset(engine, config, clock, self.accounts, self.mailer)
        self.instruments = Instruments(engine, config, clock, self.accounts)
        self.voucher_batches = VoucherBatches(engine, clock)
        self.methods = SettlementMethods(engine, config, clock, self.accounts, self.arrears)
        self.activations = MarketplaceActivations(engine, config, clock, self.accounts,
                                                  self.methods, self.marketplaces)
        self.lifecycle = MarketplaceLifecycle(engine, config, clock, self.accounts,
                                              self.marketplaces)
        # Azure: the landing page, Activate before an activation is taken, the webhook.
        self.azure = AzureFulfillment(engine, clock, self.marketplaces, self.activations,
                                      self.lifecycle)
        if "azure" in self.marketplaces:
            self.accounts.before_take = self.azure.start
        # Huawei KooGallery's activities; their nonces are kept in this database.
        self.huawei_activities = HuaweiActivities(engine, clock, self.marketplaces,
                                                  self.activations, self.lifecycle,
                                                  DatabaseNonces(engine))
        self.statements = Statements(engine, config, clock)
        self.profiles = AccountProfiles(engine, self.accounts)
        self.certifications = Certifications(engine, clock, self.accounts)
        self.workspace_moves = WorkspaceMoves(engine, self.accounts)
        self.invoice_records = InvoiceRecords(engine, clock, self.accounts)
        self.invoices = Invoices(engine, config, clock, self.accounts, self.invoice_records)
        self.payments = Payments(engine, config, clock, self.accounts, payment_gateway,
                                 self.movements)
        # Reports what cloud-settled days leave to the marketplaces (decisions.md 23).
        self.marketplace_reporter = MarketplaceReporter(engine, config, clock,
                                                        self.marketplaces, self.movements)
        # Charges of unknown outcome settled by what the vendor holds (Azure usageEvents).
        self.marketplace_reconciliation = MarketplaceReconciliation(
            engine, clock, self.marketplaces, self.movements)
        self.relay: Relay | None = None
        self.consoles: dict[str, ConsolePort] = {}

    def connect_console(self, site: str, console: ConsolePort) -> None:
        """Deliver this center's messages for ``site`` to that console."""
        self.consoles[site] = console
        if self.relay is None:
            self.relay = Relay(self.engine, tables.outbox, self._deliver_by_site, self.clock,
                               name="billing relay")

    def nudge_relay(self) -> int:
        """Deliver what is pending now, after a change a person waits on (a binding, an
        approval); the scheduler retries whatever this cannot deliver."""
        if self.relay is None:
            return 0
        try:
            return self.relay.drain()
        except Exception:
            log.exception("billing relay nudge failed; the scheduler will retry")
            return 0

    def _deliver_by_site(self, messages: Sequence[Envelope]) -> Delivered:
        by_site: dict[str | None, list[Envelope]] = {}
        for message in messages:
            by_site.setdefault(message.site, []).append(message)
        applied = Delivered()
        for site, batch in by_site.items():
            console = self.consoles.get(site or "")
            if console is None:
                # Stays in the outbox until that site is connected.
                log.error("no console connected for site %s: %d messages wait", site, len(batch))
                applied.failed.update(dict.fromkeys(
                    (m.id for m in batch), f"no console connected for site {site}"))
                continue
            answer = console.deliver(batch)
            applied.extend(answer)
            applied.failed.update(getattr(answer, "failed", {}))
        return applied

    def migrate(self) -> None:
        upgrade(self.engine, MIGRATIONS, "alembic_version_billing")
        self.open_own_accounts()

    def open_own_accounts(self) -> None:
        """The center's own ledger accounts in its currency (kept if already open)."""
        with self.engine.begin() as conn:
            ledger.open_accounts(conn, ledger.SYSTEM, self.config.currency)
