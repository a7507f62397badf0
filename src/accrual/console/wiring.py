"""The console side assembled: its engine, services and relay."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine

from accrual.catalog import PriceBook
from accrual.clock import Clock
from accrual.console.adapters import tables
from accrual.console.config import ConsoleConfig
from accrual.console.services.accounts import Accounts
from accrual.console.services.admission import AdmissionService
from accrual.console.services.alerts import Alerts
from accrual.console.services.day_close import DayClose
from accrual.console.services.inbox import ConsoleInbox
from accrual.console.services.ingestion import Ingestion
from accrual.console.services.members import Members
from accrual.console.services.password_reset import PasswordReset
from accrual.console.services.plan_upgrade import PlanUpgrades
from accrual.console.services.rerate import Rerates
from accrual.console.services.retention import Retention
from accrual.contract.ports import BillingCenterPort
from accrual.infra.db import upgrade
from accrual.infra.mail import LogMailer, Mailer
from accrual.infra.outbox import Relay

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


class Console:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock,
                 billing: BillingCenterPort, book: PriceBook, mailer: Mailer | None = None) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.book = book
        # The billing center, for what a person waits on (overview, jump, registration).
        self.billing = billing
        self.accounts = Accounts(engine, config, clock, billing)
        self.ingestion = Ingestion(engine, config, clock, book)
        self.day_close = DayClose(engine, config, clock, book)
        self.inbox = ConsoleInbox(engine, clock, f"{config.site} inbox")
        self.retention = Retention(engine, config, clock)
        self.admission = AdmissionService(engine, config, clock)
        self.plan_upgrades = PlanUpgrades(engine, config, clock, billing)
        self.rerates = Rerates(engine, clock, self.day_close, config.currency)
        self.members = Members(engine, config, clock, self.accounts)
        self.mailer = mailer or LogMailer()
        self.alerts = Alerts(engine, config, clock, self.mailer, self.accounts)
        self.password_reset = PasswordReset(engine, config, clock, self.accounts, self.mailer)
        self.relay = Relay(engine, tables.outbox, billing.deliver, clock,
                           name=f"{config.site} relay")

    def nudge_relay(self) -> int:
        """Deliver what is pending now, after a change a person waits on; the
        scheduler retries whatever this cannot deliver."""
        try:
            return self.relay.drain()
        except Exception:
            log.exception("relay nudge failed; the scheduler will retry")
            return 0

    def migrate(self) -> None:
        upgrade(self.engine, MIGRATIONS, "alembic_version_console")
