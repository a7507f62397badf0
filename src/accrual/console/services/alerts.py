"""High-consumption alerts: set by owners and admins, evaluated on each closed day.

An alert fires once, by mail to the owner and admins, when an item's daily amount
first exceeds its threshold; it re-arms after a day at or below the threshold,
or when the threshold changes (decisions.md 20).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, select, update

from accrual.catalog import ITEMS
from accrual.clock import Clock
from accrual.console.adapters import tables as t
from accrual.console.config import ConsoleConfig
from accrual.console.domain.alerts import AlertStep, alert_step
from accrual.console.domain.roles import Action, built_in_roles_allowed
from accrual.console.mail_texts import render
from accrual.console.services.accounts import Accounts
from accrual.console.services.permissions import require
from accrual.contract.errors import Invalid, NotFound
from accrual.infra.db import in_transaction
from accrual.infra.mail import Mailer, MailError
from accrual.money import InvalidDecimal, format_minor, from_minor, parse_amount

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertRule:
    workspace_id: str
    item: str
    threshold: Decimal  # daily amount, in the site's currency
    armed: bool
    last_fired_day: date | None


class Alerts:
    def __init__(self, engine: Engine, config: ConsoleConfig, clock: Clock, mailer: Mailer,
                 accounts: Accounts) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.mailer = mailer
        self.accounts = accounts

    def set(self, account_id: str, workspace_id: str, item: str, threshold: object) -> AlertRule:
        require(self.accounts, account_id, workspace_id, Action.MANAGE_ALERTS)
        if item not in ITEMS:
            raise NotFound("unknown_item", f"unknown billing item {item!r}")
        try:
            threshold_minor = parse_amount(threshold, self.config.currency)
        except InvalidDecimal as error:
            raise Invalid("invalid_threshold", f"threshold {error.reason}") from None
        a = t.alert_rules
        now = self.clock.now()

        def work(conn: Connection) -> None:
            conn.execute(delete(a).where(a.c.workspace_id == workspace_id, a.c.item == item))
            conn.execute(a.insert().values(workspace_id=workspace_id, item=item,
                                           threshold_minor=threshold_minor, armed=True,
                                           updated_at=now, updated_by=account_id,
                                           last_day=self._last_closed(conn)))

        in_transaction(self.engine, work)
        return self._rule_of(workspace_id, item)

    def remove(self, account_id: str, workspace_id: str, item: str) -> None:
        require(self.accounts, account_id, workspace_id, Action.MANAGE_ALERTS)
        with self.engine.begin() as conn:
            gone = conn.execute(delete(t.alert_rules).where(
                t.alert_rules.c.workspace_id == workspace_id, t.alert_rules.c.item == item)).rowcount
        if not gone:
            raise NotFound("alert_not_found", f"no alert on {item}")

    def list(self, account_id: str, workspace_id: str) -> list[AlertRule]:
        # Part of the Plans & Billing module: a custom role granted it reads them too.
        require(self.accounts, account_id, workspace_id, Action.VIEW_BILLING)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.alert_rules).where(
                t.alert_rules.c.workspace_id == workspace_id).order_by(t.alert_rules.c.item)).all()
        return [self._rule(r) for r in rows]

    def _rule_of(self, workspace_id: str, item: str) -> AlertRule:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.alert_rules).where(
                t.alert_rules.c.workspace_id == workspace_id, t.alert_rules.c.item == item)).one()
        return self._rule(row)

    def _rule(self, row: Any) -> AlertRule:
        return AlertRule(row.workspace_id, row.item,
                         from_minor(row.threshold_minor, self.config.currency), row.armed,
                         row.last_fired_day)

    @staticmethod
    def _last_closed(conn: Connection) -> date | None:
        found: date | None = conn.execute(select(func.max(t.closed_days.c.day))).scalar()
        return found

    def evaluate(self) -> int:
        """Evaluate every rule on the closed days it has not seen; returns mails sent."""
        a, d, c = t.alert_rules, t.billing_details, t.closed_days
        sent = 0
        with self.engine.connect() as conn:
            rules = conn.execute(select(a)).all()
            closed = list(conn.execute(select(c.c.day).order_by(c.c.day)).scalars())
        for rule in rules:
            days = [day for day in closed if rule.last_day is None or day > rule.last_day]
            if not days:
                continue
            armed, fired_on = rule.armed, rule.last_fired_day
            with self.engine.connect() as conn:
                amounts = dict(conn.execute(
                    select(d.c.day, func.sum(d.c.amount_minor)).where(
                        d.c.workspace_id == rule.workspace_id, d.c.item == rule.item,
                        d.c.day.in_(days)).group_by(d.c.day)).all())
            for day in days:
                amount = int(amounts.get(day, 0))
                step = alert_step(armed, amount, rule.threshold_minor)
                if step is AlertStep.FIRE and self._mail(rule, day, amount):
                    sent += 1
                    armed, fired_on = False, day
                elif step is AlertStep.REARM:
                    armed = True
            with self.engine.begin() as conn:
                # Only if the rule was not changed meanwhile (a change re-arms it).
                conn.execute(update(a).where(
                    a.c.workspace_id == rule.workspace_id, a.c.item == rule.item,
                    a.c.updated_at == rule.updated_at).values(
                        armed=armed, last_day=days[-1], last_fired_day=fired_on))
        return sent

    def _mail(self, rule: Row[Any], day: date, amount_minor: int) -> bool:
        w, m, acc = t.workspaces, t.members, t.accounts
        with self.engine.connect() as conn:
            ws = conn.execute(select(w.c.name, w.c.language).where(w.c.id == rule.workspace_id)).one()
            recipients = list(conn.execute(
                select(acc.c.email).join(m, m.c.account_id == acc.c.id).where(
                    m.c.workspace_id == rule.workspace_id,
                    m.c.role.in_(built_in_roles_allowed(Action.MANAGE_ALERTS)))
                .order_by(acc.c.email)).scalars())
        currency = self.config.currency
        try:
            for to in recipients:
                self.mailer.send(render("high_consumption", ws.language, to,
                                        workspace_name=ws.name, item=rule.item, day=day.isoformat(),
                                        amount=format_minor(amount_minor, currency),
                                        threshold=format_minor(rule.threshold_minor, currency),
                                        currency=currency))
        except MailError as error:
            # Stay armed: the next evaluation of a later day tries again.
            log.warning("alert mail for %s/%s failed: %s", rule.workspace_id, rule.item, error)
            return False
        return True
