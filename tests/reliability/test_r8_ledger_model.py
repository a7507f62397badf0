"""R8 conservation (RELIABILITY.md 2.6): a Hypothesis state machine with an Auditor.

Each example opens a fresh billing account in one runtime and drives it with
random steps: recharges, billing details settled through the inbox (any item,
``sms`` and ``synthetic_test`` included), negative corrections of earlier
lines, prepaid-card purchases, vouchers issued or activated by code, replays
of earlier keys, and the clock moving on with expiry. The Auditor is an
in-memory reference ledger written from the documented rules, not from the
code under test:

- a charge is paid by standard vouchers, discount vouchers, cards (soonest
  expiry first), cash, and then the negative prepaid balance (arrears);
  vouchers never pay ``sms`` or ``synthetic_test``; expired instruments pay
  nothing;
- a negative correction pays arrears first, then goes back to what paid that
  line (net of what went back before), in reverse order cash → cards →
  discount vouchers → standard vouchers; an instrument that has expired since
  gets its share back too, written off to breakage at once in an entry of its
  own (so that share is gone, and never written off twice); the rest to cash;
- a top-up pays arrears first; a card is bought from cash or refused with
  ``insufficient_balance``; at expiry what is left on an instrument goes to
  breakage.

Which of two instruments of the same rank gets its money back first is not
specified, so the Auditor accepts any order within a rank and follows the one
the database took. After every step: every entry sums to zero, every cached
balance is the sum of its postings, no cash, card or voucher balance is below
zero, the account's entries are exactly the ones the steps should have made,
and the overview and every instrument balance equal the Auditor's.

Sizes: 50 examples of 30 steps on CI; ``ACCRUAL_RELIABILITY_SCALE`` multiplies
the examples (and makes 50 steps), ``ACCRUAL_R8_EXAMPLES`` / ``ACCRUAL_R8_STEPS``
set them, ``ACCRUAL_R8_SEED`` replays a run.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.api.instruments import card_issued_json, voucher_issued_json
from accrual.billing.api.wallet import overview_json, recharge_json
from accrual.clock import ManualClock
from accrual.contract.errors import Conflict
from accrual.contract.messages import detail_id
from tests.integration.test_settlement_batches import cheap_passwords, tenant
from tests.reliability.support import (
    DAY,
    billing_detail,
    entry_postings,
    ledger_violations,
    money,
    record,
    scale,
    seed_from,
)

__all__ = ["cheap_passwords"]

STANDARD, DISCOUNT, CARD = "voucher_standard", "voucher_discount", "card"
CASH, PREPAID, REVENUE, BREAKAGE = "cash", "prepaid", "revenue", "breakage"
PAY_ORDER = {STANDARD: 0, DISCOUNT: 1, CARD: 2}
GIVE_BACK_ORDER = {CASH: 0, CARD: 1, DISCOUNT: 2, STANDARD: 3}
NOT_FOR_VOUCHERS = {"sms", "synthetic_test"}
ITEMS = ("logs", "trace", "sms", "synthetic_test")
DAYS = (DAY, DAY, DAY - timedelta(days=1))
CARD_DAYS, VOUCHER_DAYS = 365, 90
# decisions.md 16, the CNY center: (purchase at least, discount voucher), minor units.
CARD_BONUSES = ((10_000_00, 1_000_00), (30_000_00, 5_000_00), (100_000_00, 20_000_00))
# Beyond this many orders within ranks, only the totals per rank are compared.
MAX_ORDERS = 5000

LineKey = tuple[date, str]  # (day, item) of the example's one workspace


@dataclass
class Held:
    """A card or voucher as the Auditor sees it."""

    id: str
    kind: str
    balance: int
    expires_at: datetime
    created_at: datetime
    written_off: bool = False

    def usable(self, now: datetime) -> bool:
        return not self.written_off and self.expires_at > now


@dataclass
class Line:
    """One (workspace, day, item) line: its revisions and what paid it."""

    revision: int = -1
    net: dict[str, int] = field(default_factory=dict)  # Σ postings on each payer per line

    def returnable(self, source: str) -> int:
        return -self.net.get(source, 0)


@dataclass
class Auditor:
    """The reference ledger of one billing account."""

    cash: int = 0
    prepaid: int = 0
    held: dict[str, Held] = field(default_factory=dict)
    lines: dict[LineKey, Line] = field(default_factory=dict)
    entries: int = 0
    breakage: int = 0
    revenue: int = 0

    @property
    def arrears(self) -> int:
        return max(-self.prepaid, 0)

    def overview(self, now: datetime) -> dict[str, str]:
        cards = sum(h.balance for h in self.held.values() if h.kind == CARD and h.usable(now))
        vouchers = sum(h.balance for h in self.held.values()
                       if h.kind != CARD and h.usable(now))
        return {"currency": "CNY", "cash": money(self.cash), "vouchers": money(vouchers),
                "prepaid_cards": money(cards), "arrears": money(self.arrears)}

    # -- movements -----------------------------------------------------------

    def recharge(self, amount: int) -> dict[str, int]:
        to_arrears = min(amount, self.arrears)
        return _nonzero({"bank_clearing": -amount, CASH: amount - to_arrears,
                         PREPAID: to_arrears})

    def charge(self, amount: int, item: str, now: datetime) -> dict[str, int]:
        postings = {REVENUE: amount}
        remaining = amount
        usable = sorted(
            (h for h in self.held.values() if h.usable(now) and h.balance > 0
             and not (h.kind != CARD and item in NOT_FOR_VOUCHERS)),
            key=lambda h: (PAY_ORDER[h.kind], h.expires_at, h.created_at, h.id))
        for held in usable:
            take = min(remaining, held.balance)
            if take:
                postings[held.id] = -take
                remaining -= take
        take = min(remaining, max(self.cash, 0))
        postings[CASH] = -take
        postings[PREPAID] = -(remaining - take)
        return _nonzero(postings)

    def give_back_options(self, amount: int, line: Line, now: datetime
                          ) -> list[dict[str, int]]:
        """The postings a correction of ``amount`` on ``line`` may have: one per order of
        the sources within each rank, which the rules leave open."""
        ranks: dict[int, list[str]] = {}
        for source in line.net:
            kind = CASH if source == CASH else self.held[source].kind
            if line.returnable(source) > 0:
                ranks.setdefault(GIVE_BACK_ORDER[kind], []).append(source)
        per_rank = [list(itertools.permutations(sorted(ranks[r]))) for r in sorted(ranks)]
        options: list[dict[str, int]] = []
        for chosen in itertools.islice(itertools.product(*per_rank), MAX_ORDERS):
            postings = {REVENUE: -amount}
            remaining = amount
            take = min(remaining, self.arrears)
            postings[PREPAID] = take
            remaining -= take
            for source in itertools.chain.from_iterable(chosen):
                take = min(remaining, line.returnable(source))
                postings[source] = postings.get(source, 0) + take
                remaining -= take
            postings[CASH] = postings.get(CASH, 0) + remaining
            option = _nonzero(postings)
            if option not in options:
                options.append(option)
        return options

    def apply(self, postings: dict[str, int], line: Line | None = None) -> None:
        for name, amount in postings.items():
            if name == REVENUE:
                self.revenue += amount
            elif name == BREAKAGE:
                self.breakage += amount
            elif name == PREPAID:
                self.prepaid += amount
            elif name == "bank_clearing" or name == "promotions":
                pass
            elif name == CASH:
                self.cash += amount
            else:
                self.held[name].balance += amount
            if line is not None and name not in (REVENUE, BREAKAGE, PREPAID):
                line.net[name] = line.net.get(name, 0) + amount
        self.entries += 1


def _nonzero(postings: dict[str, int]) -> dict[str, int]:
    found = {k: v for k, v in postings.items() if v}
    assert sum(found.values()) == 0, found
    return found


def _bonus(face: int) -> int:
    return max((bonus for threshold, bonus in CARD_BONUSES if face >= threshold), default=0)


@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    refused_cards: int = 0
    write_offs: int = 0
    corrections_to_breakage: int = 0
    replays: int = 0
    replay_conflicts: int = 0


class LedgerMachine(RuleBasedStateMachine):
    """One example = one fresh billing account; set ``runtime``, ``clock`` and ``stats``."""

    runtime: Runtime
    clock: ManualClock
    stats: Stats

    def __init__(self) -> None:
        super().__init__()
        stats = type(self).stats
        stats.examples += 1
        self.center = self.runtime.billing
        self.workspace, self.account = tenant(self.runtime, self.clock, f"r8-{stats.examples}")
        self.model = Auditor()
        self.recharges: list[tuple[str, int, int]] = []  # (reference, amount, entry id)
        self.cards: list[tuple[str, int, str]] = []  # (key, face, card number)
        self.codes: list[tuple[str, str]] = []  # (activation code, voucher number)
        self.serial = 0
        self.latest: LineKey | None = None

    def _next(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def _step(self, name: str) -> None:
        self.stats.steps += 1
        self.stats.rules[name] = self.stats.rules.get(name, 0) + 1

    def _postings(self, key: str) -> dict[str, int]:
        with self.center.engine.connect() as conn:
            return entry_postings(conn, key)

    # -- rules -------------------------------------------------------------------

    @rule(amount=st.one_of(st.integers(1, 100_000), st.sampled_from([10_000_00, 20_000_00])))
    def recharge(self, amount: int) -> None:
        self._step("recharge")
        reference = self._next("transfer")
        expected = self.model.recharge(amount)
        answer = recharge_json(self.center.wallet.recharge(self.account, money(amount),
                                                           reference))
        assert answer["created"] is True and answer["amount"] == money(amount)
        assert self._postings(f"recharge/{self.account}/{reference}") == expected
        self.model.apply(expected)
        shown = {k: answer[k] for k in ("currency", "cash", "vouchers", "prepaid_cards",
                                        "arrears")}
        assert shown == self.model.overview(self.clock.now())
        self.recharges.append((reference, amount, int(answer["entry_id"])))

    @rule(amount=st.integers(1, 40_000), item=st.sampled_from(ITEMS), day=st.sampled_from(DAYS))
    def deduct(self, amount: int, item: str, day: date) -> None:
        self._step("deduct")
        line = self.model.lines.setdefault((day, item), Line())
        message = self._detail(line, day, item, amount)
        expected = self.model.charge(amount, item, self.clock.now())
        assert self.center.inbox.deliver([message]) == [message.id]
        assert self._postings(f"detail/{message.id}") == expected
        self.model.apply(expected, line)
        self.latest = (day, item)

    @precondition(lambda self: bool(self.model.lines))
    @rule(data=st.data(), amount=st.integers(1, 60_000))
    def correct(self, data: st.DataObject, amount: int) -> None:
        """A negative adjustment of a line charged before."""
        line = data.draw(st.sampled_from(sorted(self.model.lines)), label="line")
        self._correct("correct", line, amount)

    @precondition(lambda self: self.latest is not None)
    @rule(amount=st.integers(1, 30_000))
    def correct_latest_again(self, amount: int) -> None:
        """Another correction of the line charged or corrected last."""
        assert self.latest is not None
        self._correct("correct_latest_again", self.latest, amount)

    def _correct(self, name: str, key: LineKey, amount: int) -> None:
        self._step(name)
        day, item = key
        line = self.model.lines[key]
        now = self.clock.now()
        options = self.model.give_back_options(amount, line, now)
        message = self._detail(line, day, item, -amount)
        assert self.center.inbox.deliver([message]) == [message.id]
        actual = self._postings(f"detail/{message.id}")
        assert actual in options, (f"correction of {money(amount)} on {day} {item}: the "
                                   f"database posted {actual}; the rules allow {options}")
        self.model.apply(actual, line)
        # What went back to an instrument that has expired is written off from it at once.
        for source, back in actual.items():
            if source in self.model.held and not self.model.held[source].usable(now):
                write_off = {source: -back, BREAKAGE: back}
                assert self._postings(f"expiry/{source}/{message.id}") == write_off
                self.model.apply(write_off)
                self.stats.corrections_to_breakage += 1
        self.latest = key

    @rule(face=st.sampled_from([100_00, 100_00, 200_00, 500_00, 10_000_00]))
    def buy_card(self, face: int) -> None:
        self._step("buy_card")
        key = self._next("card")
        now = self.clock.now()
        if self.model.cash < face:
            with pytest.raises(Conflict) as refused:
                self.center.instruments.buy_card(self.account, money(face), key)
            assert refused.value.code == "insufficient_balance"
            self.stats.refused_cards += 1
            return
        card = card_issued_json(self.center.instruments.buy_card(self.account, money(face), key))
        assert card["created"] is True and card["face_value"] == money(face)
        assert card["balance"] == card["paid_with_cash"] == money(face)
        assert card["expires_at"] == (now + timedelta(days=CARD_DAYS)).isoformat()
        number = card["number"]
        assert self._postings(f"card/{self.account}/{key}") == {CASH: -face, number: face}
        self.model.held[number] = Held(number, CARD, 0, now + timedelta(days=CARD_DAYS), now)
        self.model.apply({CASH: -face, number: face})
        bonus = _bonus(face)
        assert (card["bonus_voucher"] is not None) == (bonus > 0)
        if bonus:
            voucher = card["bonus_voucher"]
            self.model.held[voucher] = Held(voucher, DISCOUNT, 0,
                                            now + timedelta(days=VOUCHER_DAYS), now)
            self.model.apply({"promotions": -bonus, voucher: bonus})
        self.cards.append((key, face, number))

    @rule(kind=st.sampled_from([STANDARD, DISCOUNT]), amount=st.integers(1, 30_000),
          days=st.sampled_from([1, 1, 3, 30, 90]))
    def issue_voucher(self, kind: str, amount: int, days: int) -> None:
        self._step("issue_voucher")
        now = self.clock.now()
        voucher = voucher_issued_json(self.center.instruments.issue_voucher(
            self.account, kind, money(amount), self._next("voucher"), validity_days=days))
        assert voucher["created"] is True and voucher["kind"] == kind
        self._hold(voucher, kind, amount, now + timedelta(days=days), now)

    @rule(kind=st.sampled_from([STANDARD, DISCOUNT]), amount=st.integers(1, 30_000),
          days=st.sampled_from([1, 30]), again=st.booleans())
    def activate_code(self, kind: str, amount: int, days: int, again: bool) -> None:
        """A new activation code redeemed; or one this account redeemed before, again:
        the same voucher back and nothing more."""
        self._step("activate_code")
        if again and self.codes:
            code, number = self.codes[amount % len(self.codes)]
            repeated = voucher_issued_json(self.center.instruments.activate(self.account, code))
            assert repeated["created"] is False and repeated["number"] == number
            return
        now = self.clock.now()
        [code] = self.center.instruments.create_codes(kind, money(amount), 1,
                                                      validity_days=days).codes
        voucher = voucher_issued_json(self.center.instruments.activate(self.account, code))
        assert voucher["created"] is True and voucher["source"] == "code"
        self._hold(voucher, kind, amount, now + timedelta(days=days), now)
        self.codes.append((code, voucher["number"]))

    @precondition(lambda self: bool(self.recharges or self.cards))
    @rule(data=st.data(), conflicting=st.booleans())
    def replay_same_key(self, data: st.DataObject, conflicting: bool) -> None:
        """An earlier recharge reference or card key again: the same result and no new
        entry; with another amount, 409 ``idempotency_conflict`` and no entry."""
        self._step("replay_same_key")
        self.stats.replays += 1
        choices = [("recharge", r) for r in self.recharges] + [("card", c) for c in self.cards]
        what, earlier = data.draw(st.sampled_from(choices), label="earlier")
        if what == "recharge":
            reference, amount, entry_id = earlier
            if conflicting:
                self.stats.replay_conflicts += 1
                with pytest.raises(Conflict) as conflict:
                    self.center.wallet.recharge(self.account, money(amount + 1), reference)
                assert conflict.value.code == "idempotency_conflict"
                return
            again = recharge_json(self.center.wallet.recharge(self.account, money(amount),
                                                              reference))
            assert again["created"] is False and again["entry_id"] == entry_id
            assert again["amount"] == money(amount) and again["reference"] == reference
            return
        key, face, number = earlier
        if conflicting:
            self.stats.replay_conflicts += 1
            with pytest.raises(Conflict) as conflict:
                self.center.instruments.buy_card(self.account, money(face + 100_00), key)
            assert conflict.value.code == "idempotency_conflict"
            return
        card = card_issued_json(self.center.instruments.buy_card(self.account, money(face), key))
        assert card["created"] is False and card["number"] == number
        assert card["face_value"] == money(face)

    @rule(days=st.sampled_from([1, 1, 2, 5, 31, 100, 400]))
    def advance_clock(self, days: int) -> None:
        """Time passes; what expired is written off."""
        self._step("advance_clock")
        self.clock.advance(timedelta(days=days))
        now = self.clock.now()
        while self.center.instruments.expire_due():
            pass
        for held in self.model.held.values():
            if not held.written_off and held.expires_at <= now:
                if held.balance:
                    self.stats.write_offs += 1
                    self.model.apply({held.id: -held.balance, BREAKAGE: held.balance})
                held.written_off = True

    # -- helpers -----------------------------------------------------------------

    def _detail(self, line: Line, day: date, item: str, amount: int) -> Any:
        line.revision += 1
        first = detail_id("cn1", self.workspace, day, item, 7, 0)
        return billing_detail(
            self.workspace, amount, item=item, day=day, revision=line.revision,
            detail_id=detail_id("cn1", self.workspace, day, item, 7, line.revision),
            adjusts=first if line.revision else None)

    def _hold(self, voucher: dict[str, Any], kind: str, amount: int, expires_at: datetime,
              now: datetime) -> None:
        assert voucher["face_value"] == voucher["balance"] == money(amount)
        assert voucher["expires_at"] == expires_at.isoformat()
        number = voucher["number"]
        self.model.held[number] = Held(number, kind, 0, expires_at, now)
        self.model.apply({"promotions": -amount, number: amount})

    # -- invariants --------------------------------------------------------------

    @invariant()
    def ledger_holds(self) -> None:
        """The account's entries sum to zero and its balances (cash, prepaid, each card and
        voucher) are the sums of their postings; none but prepaid is below zero. (The
        whole ledger is audited at the end of each example: see ``teardown``.)"""
        e, p, a = t.journal_entries, t.postings, t.ledger_accounts
        owners = [self.account, *self.model.held]
        with self.center.engine.connect() as conn:
            unbalanced = conn.execute(
                select(p.c.entry_id).join(e, e.c.id == p.c.entry_id)
                .where(e.c.account_id == self.account).group_by(p.c.entry_id)
                .having(func.sum(p.c.amount_minor) != 0)).all()
            sums = (select(p.c.ledger_account_id, func.sum(p.c.amount_minor).label("total"))
                    .group_by(p.c.ledger_account_id).subquery())
            rows = conn.execute(
                select(a.c.kind, a.c.balance_minor, func.coalesce(sums.c.total, 0))
                .select_from(a.outerjoin(sums, sums.c.ledger_account_id == a.c.id))
                .where(a.c.owner.in_(owners))).all()
        assert not unbalanced, unbalanced
        assert all(int(cached) == int(total) for _, cached, total in rows), rows
        assert all(int(cached) >= 0 for kind, cached, _ in rows if kind != PREPAID), rows

    def teardown(self) -> None:
        with self.center.engine.connect() as conn:
            violations = ledger_violations(conn)
        assert not any(violations.values()), violations

    @invariant()
    def the_database_agrees_with_the_auditor(self) -> None:
        assert overview_json(self.center.wallet.overview(self.account)) == \
            self.model.overview(self.clock.now())
        a, e = t.ledger_accounts, t.journal_entries
        with self.center.engine.connect() as conn:
            balances = dict(conn.execute(select(a.c.owner, a.c.balance_minor).where(
                a.c.owner.in_(list(self.model.held)))).all()) if self.model.held else {}
            own = dict(conn.execute(select(a.c.kind, a.c.balance_minor)
                                    .where(a.c.owner == self.account)).all())
            entries = conn.execute(select(func.count()).select_from(e)
                                   .where(e.c.account_id == self.account)).scalar_one()
        assert {k: int(v) for k, v in balances.items()} == \
            {h.id: h.balance for h in self.model.held.values()}
        assert (int(own[CASH]), int(own[PREPAID])) == (self.model.cash, self.model.prepaid)
        assert entries == self.model.entries


def _sizes() -> tuple[int, int]:
    factor = scale()
    examples = int(os.environ.get("ACCRUAL_R8_EXAMPLES") or 50 * factor)
    steps = int(os.environ.get("ACCRUAL_R8_STEPS") or (30 if factor == 1 else 50))
    return examples, steps


def test_r8_ledger_conservation(runtime: Runtime, clock: ManualClock,
                                cheap_passwords: None) -> None:
    examples, steps = _sizes()
    run_seed = seed_from("ACCRUAL_R8_SEED")
    stats = Stats()
    machine = type("Machine", (LedgerMachine,),
                   {"runtime": runtime, "clock": clock, "stats": stats})
    test = get_state_machine_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large]))
    started = time.perf_counter()
    failure: str | None = None
    try:
        seed(run_seed)(test)()
    except BaseException as error:
        failure = f"{type(error).__name__}: {error}"[:4000]
        raise
    finally:
        with runtime.billing.engine.connect() as conn:
            violations = ledger_violations(conn)
        record("R8", runtime.billing.engine.dialect.name, {
            "seed": run_seed, "max_examples": examples, "stateful_step_count": steps,
            "examples": stats.examples, "steps": stats.steps, "rules": stats.rules,
            "refused_card_purchases": stats.refused_cards, "write_offs": stats.write_offs,
            "corrections_with_breakage": stats.corrections_to_breakage,
            "replays": stats.replays, "replay_conflicts": stats.replay_conflicts,
            "wall_s": round(time.perf_counter() - started, 2),
            "violations": sum(violations.values()), "failures": 0 if failure is None else 1,
            "failure": failure,
            "replay": "ACCRUAL_R8_SEED=<seed>; the shrunk failing example is kept in "
                      ".hypothesis/ and replayed first"})

