"""The billing center assembled: its engine, services and relays to console sites."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from accrual.billing.adapters import tables
from accrual.billing.config import BillingConfig
from accrual.billing.services import ledger
from accrual.billing.services.accounts import BillingAccounts
from accrual.billing.services.upgrades import Upgrades
from accrual.billing.services.wallet import Wallet
from accrual.clock import Clock
from accrual.contract.ports import ConsolePort
from accrual.infra.db import upgrade
from accrual.infra.mail import LogMailer, Mailer
from accrual.infra.outbox import Relay

MIGRATIONS = Path(__file__).parent / "migrations"


class BillingCenter:
    def __init__(self, engine: Engine, config: BillingConfig, clock: Clock,
                 mailer: Mailer | None = None) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.mailer = mailer or LogMailer()
        self.accounts = BillingAccounts(engine, config, clock)
        self.wallet = Wallet(engine, config, clock, self.accounts)
        self.upgrades = Upgrades(engine, config, clock, self.accounts, self.mailer)
        self.relay: Relay | None = None

    def connect_console(self, console: ConsolePort) -> None:
        # One console site per center in the embedded set-up; messages for
        # several sites would be routed by the workspace's site.
        self.relay = Relay(self.engine, tables.outbox, console.deliver, self.clock)

    def migrate(self) -> None:
        upgrade(self.engine, MIGRATIONS, "alembic_version_billing")
        with self.engine.begin() as conn:
            ledger.open_accounts(conn, ledger.SYSTEM, self.config.currency)
