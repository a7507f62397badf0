"""R2 (RELIABILITY.md 2.6): idempotent writes, on real PostgreSQL.

Each write is sent 1–5 times with one key; about half of the keys send their
copies concurrently (threads released together by a barrier), the others one
after another, while other keys run on the same accounts. 5 % of the keys are
also sent once with another amount: whichever copy arrives first wins, every
copy with the other amount gets 409 ``idempotency_conflict`` and creates nothing.

- offline recharges (``wallet.recharge``, key = the reference),
- online recharge orders (``payments.create_order``, key = the Idempotency-Key),
  each then paid by the sandbox gateway's notify, itself sent 1–3 times at once,
- prepaid-card purchases (``instruments.buy_card``, key = the Idempotency-Key).

Checked per key: exactly one journal entry (one order, one card), exactly one
copy answered ``created``, every replay answered like the first copy (the
returned dicts minus what legitimately differs: ``created``, and the recharge's
view of the account's *current* balances), no copy with the same amount
refused. Reported: duplicates created and replay mismatches (both must be 0),
conflicts, and how often concurrent copies collided in flight (a unique-key
race that ``in_transaction`` retried, or a 409 — which must not happen to a
copy with the same amount).

``ACCRUAL_R2_SEED`` replays a plan; ``ACCRUAL_RELIABILITY_SCALE`` multiplies the keys.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.api.instruments import card_issued_json, voucher_issued_json
from accrual.billing.api.wallet import recharge_json
from accrual.billing.payments.service import RechargeOrder
from accrual.billing.services.instruments import Instruments
from accrual.clock import ManualClock
from accrual.contract.errors import Conflict
from accrual.infra.db import RETRIES
from accrual.money import format_minor
from tests.integration.test_settlement_batches import cheap_passwords, tenant
from tests.reliability.support import (
    latency_ms,
    ledger_violations,
    money,
    pool_capacity,
    record,
    scale,
    seed_from,
)

__all__ = ["cheap_passwords"]

WORKERS = 16
ACCOUNTS = 4
CONFLICT_SHARE = 0.05
CONCURRENT_SHARE = 0.5
# Balance fields of a recharge's answer: the account as it is now, not the entry.
RECHARGE_VIEW = ("cash", "vouchers", "prepaid_cards", "arrears")


@dataclass
class Copy:
    key: int  # index into the plan's keys
    amount: int  # minor units
    seconds: float = 0.0
    status: str = ""  # ok | conflict | error
    answer: Any = None
    retries: dict[str, int] = field(default_factory=dict)


@dataclass
class Key:
    name: str
    account: int
    amount: int
    concurrent: bool
    copies: list[Copy] = field(default_factory=list)

    @property
    def conflicting(self) -> bool:
        return any(c.amount != self.amount for c in self.copies)


def plan(rng: random.Random, keys: int, prefix: str, amount: Callable[[], int],
         other: Callable[[int], int]) -> list[Key]:
    planned = []
    for n in range(keys):
        key = Key(f"{prefix}-{n}", rng.randrange(ACCOUNTS), amount(),
                  rng.random() < CONCURRENT_SHARE)
        key.copies = [Copy(n, key.amount) for _ in range(rng.randint(1, 5))]
        if key.concurrent and len(key.copies) == 1:
            key.copies.append(Copy(n, key.amount))
        if rng.random() < CONFLICT_SHARE:
            key.copies.insert(rng.randrange(len(key.copies) + 1), Copy(n, other(key.amount)))
        planned.append(key)
    return planned


def race(keys: list[Key], send: Callable[[Key, Copy], Any]) -> float:
    """Send every copy: a concurrent key's copies as adjacent tasks that wait on one
    barrier (so they start together; FIFO hand-out means they cannot starve), a
    sequential key's copies in order in one task. The run's wall time."""
    def attempt(key: Key, copy: Copy) -> None:
        before = RETRIES.this_thread()
        began = time.perf_counter()
        try:
            copy.answer, copy.status = send(key, copy), "ok"
        except Conflict as conflict:
            copy.answer, copy.status = conflict.code, "conflict"
        except Exception as error:  # noqa: BLE001 (counted: must be none)
            copy.answer, copy.status = repr(error), "error"
        copy.seconds = time.perf_counter() - began
        after = RETRIES.this_thread()
        copy.retries = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}

    def together(key: Key, copy: Copy, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # a copy came late: it still runs, less tightly
        attempt(key, copy)

    def in_order(key: Key) -> None:
        for copy in key.copies:
            attempt(key, copy)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="r2") as pool:
        futures = []
        for key in keys:
            if key.concurrent:
                barrier = threading.Barrier(len(key.copies), timeout=10)
                futures += [pool.submit(together, key, c, barrier) for c in key.copies]
            else:
                futures.append(pool.submit(in_order, key))
        for future in futures:
            future.result()
    return time.perf_counter() - started


MUST_BE_ZERO = ("duplicates_created", "replay_mismatches", "keys_without_exactly_one_entry",
                "keys_never_created", "same_amount_refused", "conflicts_not_refused", "errors")


def judge(keys: list[Key], stored: dict[str, tuple[int, int]],
          same: Callable[[Any, Any], bool]) -> dict[str, Any]:
    """Compare every copy with what the database kept for its key: ``stored`` maps a key
    to (rows kept, amount kept)."""
    figures: Counter[str] = Counter(dict.fromkeys(
        (*MUST_BE_ZERO, "inflight_409", "conflicts_sent", "conflicts_answered_409",
         "inflight_copies", "inflight_collisions"), 0))
    for key in keys:
        rows, kept = stored.get(key.name, (0, 0))
        figures["keys"] += 1
        figures["copies"] += len(key.copies)
        figures["conflicting_keys"] += key.conflicting
        if rows != 1:
            figures["keys_without_exactly_one_entry"] += 1
            figures["duplicates_created"] += max(rows - 1, 0)
            continue
        winners = [c for c in key.copies if c.amount == kept]
        losers = [c for c in key.copies if c.amount != kept]
        created = [c for c in winners if c.status == "ok" and c.answer[1]]
        figures["duplicates_created"] += max(len(created) - 1, 0)
        if not created:
            figures["keys_never_created"] += 1
        for copy in winners:
            if copy.status == "conflict":
                figures["same_amount_refused"] += 1
                if key.concurrent:
                    figures["inflight_409"] += 1
            elif copy.status != "ok":
                figures["errors"] += 1
            elif created and not same(copy.answer[0], created[0].answer[0]):
                figures["replay_mismatches"] += 1
        for copy in losers:
            figures["conflicts_sent"] += 1
            if copy.status == "conflict" and copy.answer == "idempotency_conflict":
                figures["conflicts_answered_409"] += 1
            else:
                figures["conflicts_not_refused"] += 1
        if key.concurrent:
            figures["inflight_copies"] += len(key.copies)
            figures["inflight_collisions"] += sum(1 for c in key.copies if c.retries)
    result: dict[str, Any] = dict(figures)
    inflight = figures["inflight_copies"]
    result["inflight_collision_rate"] = round(figures["inflight_collisions"] / inflight, 4) \
        if inflight else 0.0
    result["inflight_409_rate"] = round(figures["inflight_409"] / inflight, 4) \
        if inflight else 0.0
    return result


def finish(runtime: Runtime, part: str, run_seed: int, keys: list[Key], wall: float,
           figures: dict[str, Any], started: float, **extra: Any) -> None:
    with runtime.billing.engine.connect() as conn:
        ledger = ledger_violations(conn)
    copies = [c for k in keys for c in k.copies]
    per_op = [sum(c.retries.values()) for c in copies]
    violations = {name: figures.get(name, 0) for name in MUST_BE_ZERO} | ledger
    record("R2", part, {
        "seed": run_seed, "workers": WORKERS, "accounts": ACCOUNTS, "scale": scale(),
        "pool_capacity": pool_capacity(runtime),
        "ops": len(copies), "ops_per_s": round(len(copies) / wall, 1), "run_s": round(wall, 2),
        "latency_ms": latency_ms(c.seconds for c in copies),
        "retries": {"total": sum(per_op), "by_sqlstate": dict(sum(
            (Counter(c.retries) for c in copies), Counter())),
            "max_per_op": max(per_op, default=0)},
        **figures, **extra,
        "violations": violations, "wall_s": round(time.perf_counter() - started, 2),
        "first_errors": [c.answer for c in copies if c.status == "error"][:5]})
    assert not any(violations.values()), violations


def _accounts(runtime: Runtime, clock: ManualClock, name: str) -> list[str]:
    return [tenant(runtime, clock, f"{name}-{n}")[1] for n in range(ACCOUNTS)]


def _keys() -> int:
    return 300 * scale()


def test_r2_offline_recharges_once_per_reference(pg_runtime: Runtime, clock: ManualClock,
                                                  cheap_passwords: None) -> None:
    runtime, started = pg_runtime, time.perf_counter()
    run_seed = seed_from("ACCRUAL_R2_SEED")
    rng = random.Random(run_seed)
    accounts = _accounts(runtime, clock, "r2r")
    keys = plan(rng, _keys(), "transfer", lambda: rng.randint(1, 500_00), lambda a: a + 1)
    wallet = runtime.billing.wallet

    def send(key: Key, copy: Copy) -> tuple[dict[str, Any], bool]:
        answer = recharge_json(wallet.recharge(accounts[key.account], money(copy.amount),
                                               key.name))
        return answer, bool(answer["created"])

    wall = race(keys, send)
    e, p, a = t.journal_entries, t.postings, t.ledger_accounts
    with runtime.billing.engine.connect() as conn:
        rows = conn.execute(
            select(e.c.reference, e.c.account_id, func.count(func.distinct(e.c.id)),
                   func.sum(p.c.amount_minor))
            .join(p, p.c.entry_id == e.c.id).join(a, a.c.id == p.c.ledger_account_id)
            .where(e.c.kind == "recharge", a.c.kind == "bank_clearing")
            .group_by(e.c.reference, e.c.account_id)).all()
    stored = {reference: (int(n), -int(total)) for reference, _, n, total in rows}

    def same(answer: dict[str, Any], first: dict[str, Any]) -> bool:
        keep = [k for k in first if k not in ("created", *RECHARGE_VIEW)]
        return {k: answer[k] for k in keep} == {k: first[k] for k in keep}

    figures = judge(keys, stored, same)
    # The balances in a replayed answer are the account's balances now; reported only.
    figures["replays_with_a_newer_balance_view"] = sum(
        1 for k in keys for c in k.copies if c.status == "ok" and not c.answer[1]
        and any(c.answer[0][f] != _first(k).get(f) for f in RECHARGE_VIEW))
    finish(runtime, "offline_recharges", run_seed, keys, wall, figures, started)


def _first(key: Key) -> dict[str, Any]:
    return next((c.answer[0] for c in key.copies if c.status == "ok" and c.answer[1]), {})


def test_r2_online_orders_once_per_idempotency_key(pg_runtime: Runtime, clock: ManualClock,
                                                    cheap_passwords: None) -> None:
    runtime, started = pg_runtime, time.perf_counter()
    run_seed = seed_from("ACCRUAL_R2_SEED")
    rng = random.Random(run_seed + 1)
    accounts = _accounts(runtime, clock, "r2o")
    keys = plan(rng, _keys(), "order", lambda: rng.randint(1, 500_00), lambda a: a + 100)
    payments = runtime.billing.payments
    gateway: Any = payments.gateway
    assert gateway is not None, "the test runtime has the sandbox gateway"

    def send(key: Key, copy: Copy) -> tuple[RechargeOrder, bool]:
        return payments.create_order(accounts[key.account], money(copy.amount), key.name,
                                     return_url="/billing/recharge/done")

    wall = race(keys, send)
    o = t.recharge_orders
    with runtime.billing.engine.connect() as conn:
        rows = conn.execute(select(o.c.idempotency_key, func.count(), func.max(o.c.amount_minor))
                            .group_by(o.c.account_id, o.c.idempotency_key)).all()
    stored = {name: (int(n), int(amount)) for name, n, amount in rows}
    figures = judge(keys, stored, lambda answer, first: answer == first)

    # Pay each order once, the gateway's notify sent 1–3 times at once.
    notifies: list[Key] = []
    orders: dict[str, RechargeOrder] = {}
    for key in keys:
        order = next((c.answer[0] for c in key.copies if c.status == "ok"), None)
        if order is None:
            continue
        orders[key.name] = order
        sends = Key(key.name, key.account, 0, True)
        sends.copies = [Copy(key.copies[0].key, 0) for _ in range(rng.randint(1, 3))]
        notifies.append(sends)

    def pay(key: Key, _copy: Copy) -> tuple[str, bool]:
        order = orders[key.name]
        assert order.redirect_url is not None
        token = order.redirect_url.rsplit("/", 1)[1]
        headers, body = gateway.notify_for(token, {
            "order_id": order.order_id, "currency": order.currency,
            "amount": format_minor(order.amount_minor, order.currency)})
        outcome = payments.notify(headers, body)
        return outcome, outcome == "credited"

    wall += race(notifies, pay)
    e = t.journal_entries
    with runtime.billing.engine.connect() as conn:
        credits = Counter(conn.execute(select(e.c.reference).where(
            e.c.kind == "online_recharge")).scalars())
        paid = dict(conn.execute(select(o.c.id, o.c.status)).all())
    outcomes = Counter(c.answer[0] if c.status == "ok" else c.status
                       for k in notifies for c in k.copies)
    paid_twice = sum(1 for n in credits.values() if n > 1)
    not_paid = sum(1 for order in orders.values()
                   if credits[order.order_id] != 1 or paid[order.order_id] != "paid")
    figures["notifies"] = dict(outcomes)
    finish(runtime, "online_orders", run_seed, keys, wall, figures, started,
           notify_copies=sum(len(k.copies) for k in notifies),
           orders_credited_twice=paid_twice, orders_not_credited_once=not_paid)
    assert paid_twice == 0 and not_paid == 0
    assert set(outcomes) <= {"credited", "duplicate"}, outcomes


def test_r2_card_purchases_once_per_idempotency_key(pg_runtime: Runtime, clock: ManualClock,
                                                     cheap_passwords: None) -> None:
    runtime, started = pg_runtime, time.perf_counter()
    run_seed = seed_from("ACCRUAL_R2_SEED")
    rng = random.Random(run_seed + 2)
    accounts = _accounts(runtime, clock, "r2c")
    keys = plan(rng, _keys() // 3, "card", lambda: 100_00 * rng.choice((1, 2, 5)),
                lambda face: face + 100_00)
    # Enough cash for every purchase, whatever the seed puts on one account (10,000 was
    # not: a seed with many dear keys on one account got insufficient_balance refusals).
    funds = sum(max(c.amount for c in key.copies) for key in keys)
    for n, account in enumerate(accounts):
        runtime.billing.wallet.recharge(account, money(funds), f"funds-{n}")
    instruments = runtime.billing.instruments

    def send(key: Key, copy: Copy) -> tuple[dict[str, Any], bool]:
        card = card_issued_json(instruments.buy_card(accounts[key.account], money(copy.amount),
                                                     key.name))
        return card, bool(card["created"])

    wall = race(keys, send)
    i, e = t.instruments, t.journal_entries
    with runtime.billing.engine.connect() as conn:
        rows = conn.execute(select(e.c.idempotency_key, i.c.face_minor)
                            .join(e, e.c.id == i.c.entry_id)
                            .where(i.c.source == "purchase")).all()
        cash = dict(conn.execute(select(t.ledger_accounts.c.owner,
                                        t.ledger_accounts.c.balance_minor).where(
            t.ledger_accounts.c.kind == "cash")).all())
    stored: dict[str, tuple[int, int]] = {}
    for entry_key, face in rows:
        name = entry_key.rsplit("/", 1)[1]
        count, _ = stored.get(name, (0, 0))
        stored[name] = (count + 1, int(face))
    figures = judge(keys, stored, lambda card, first: {k: v for k, v in card.items()
                                                      if k != "created"}
                    == {k: v for k, v in first.items() if k != "created"})
    spent = Counter[str]()
    for key in keys:
        spent[accounts[key.account]] += stored.get(key.name, (0, 0))[1]
    cash_off = sum(1 for account in accounts
                   if int(cash[account]) != funds - spent[account])
    finish(runtime, "card_purchases", run_seed, keys, wall, figures, started,
           accounts_with_wrong_cash=cash_off)
    assert cash_off == 0


@pytest.mark.parametrize("write", ["buy_card", "grant_card", "issue_voucher"])
def test_a_copy_that_finds_the_key_taken_late_makes_no_second_instrument(
        pg_runtime: Runtime, clock: ManualClock, cheap_passwords: None, write: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two copies of one card purchase (or card grant, or voucher issue) with one key,
    the second held back right after it checked whether the key was used, until the
    first has returned (or for 2 s, should the first be waiting for a lock the second
    holds). Whichever order that gives, one copy makes the card or voucher and the other
    answers with the same one, ``created`` false; there is one instrument for the key.

    (Before the key was checked under the account's lock, the held-back copy passed its
    check, found the key taken only in ``ledger.post``, which then writes nothing, and
    still stored a second card with no money on it, answering ``created`` true.)"""
    runtime = pg_runtime
    _, account = tenant(runtime, clock, "late-copy")
    runtime.billing.wallet.recharge(account, "1000", "funds")
    instruments = runtime.billing.instruments
    send = {"buy_card": lambda: card_issued_json(
                instruments.buy_card(account, "100", "same-key")),
            "grant_card": lambda: card_issued_json(
                instruments.grant_card(account, "100", "same-ref")),
            "issue_voucher": lambda: voucher_issued_json(instruments.issue_voucher(
                account, "voucher_standard", "100", "same-ref"))}[write]
    second_checked, first_done = threading.Event(), threading.Event()
    new_id = Instruments._new_id

    def held_back(conn: Any, prefix: str) -> str:
        if threading.current_thread().name == "second-copy":
            second_checked.set()
            first_done.wait(2)
        return new_id(conn, prefix)

    monkeypatch.setattr(Instruments, "_new_id", staticmethod(held_back))
    answers: dict[str, Any] = {}

    def second() -> None:
        try:
            answers["second"] = send()
        except Exception as error:  # noqa: BLE001 (shown by the assertion below)
            answers["second"] = error

    thread = threading.Thread(target=second, name="second-copy")
    thread.start()
    assert second_checked.wait(10)
    try:
        answers["first"] = send()
    finally:
        first_done.set()
        thread.join(20)
    first, late = answers["first"], answers["second"]
    assert isinstance(late, dict), late
    with runtime.billing.engine.connect() as conn:
        made = conn.execute(select(t.instruments.c.id, t.instruments.c.entry_id)
                            .where(t.instruments.c.account_id == account)).all()
        assert not any(ledger_violations(conn).values())
    assert len(made) == 1, (f"one key, {len(made)} instruments: {made}; the copies got "
                            f"{first} and {late}")
    assert sorted((first["created"], late["created"])) == [False, True], (first, late)
    assert first["number"] == late["number"] == made[0].id
