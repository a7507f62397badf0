"""R1 (RELIABILITY.md 2.6): concurrent recharges, card purchases and deductions on a hot
account, on real PostgreSQL.

16 worker threads start together (a barrier) and take operations from one
seeded plan: 60 % billing details settled through the inbox (``inbox.deliver``,
one detail or a small batch over several accounts; now and then a detail
delivered again), 30 % offline recharges, 10 % prepaid-card purchases whose face
value often exceeds the cash (``insufficient_balance``), over 20 billing
accounts with 80 % of the operations on one of them. Voucher activation codes
are raced by several threads each.

Afterwards: the ledger audit (each entry sums to zero, cached balances = Σ
postings), no cash, card or voucher balance below zero, accepted +
insufficient_balance = attempted with no other outcome, every detail settled
exactly once, every card key bought at most once, every code redeemed once,
money conserved per account against an oracle of the accepted operations, and
the account's entries replayed in order (the order its row lock gave them):
cash never below zero, never cash while arrears are owed, and every refusal
saw a cash balance the account really had.

``ACCRUAL_R1_SEED`` replays a plan; ``ACCRUAL_RELIABILITY_SCALE`` multiplies the
operations (about 10 for the nightly profile).
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.api.instruments import card_issued_json, voucher_issued_json
from accrual.billing.api.wallet import recharge_json
from accrual.clock import ManualClock
from accrual.contract.errors import Conflict
from accrual.contract.messages import Envelope
from accrual.infra.db import RETRIES
from tests.integration.test_settlement_batches import cheap_passwords, tenant
from tests.reliability.support import (
    billing_detail,
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
OPS = 5000
ACCOUNTS = 20
HOT_SHARE = 0.8
CODES, RACERS = 5, 4
ITEMS = ("logs", "trace", "sms", "rum_pv")
CARD_BONUSES = ((10_000_00, 1_000_00), (30_000_00, 5_000_00), (100_000_00, 20_000_00))
CODE_VOUCHER = 50_00
# What check() counts; every one must stay 0.
CHECKS = ("unbalanced_entries", "balance_mismatches", "negative_cash_card_voucher_balances",
          "positive_prepaid_balances", "deduct_unexpected_outcome",
          "redeliver_unexpected_outcome", "recharge_unexpected_outcome",
          "card_unexpected_outcome", "activate_unexpected_outcome", "details_not_settled",
          "details_settled_wrongly", "details_without_one_entry", "details_not_in_inbox",
          "details_settled_twice", "unexpected_charges", "card_keys_bought_twice",
          "cards_without_purchase", "refused_purchases_with_entry",
          "accepted_purchases_not_stored", "codes_not_redeemed_once", "codes_redeemed_by_two",
          "code_rows_not_redeemed_once", "code_entries_twice", "accounts_not_conserved",
          "cash_below_zero_in_replay", "cash_while_in_arrears", "replay_differs_from_balances",
          "refusals_not_seen_in_replay")
_REFUSED_CASH = re.compile(r"the cash balance \((-?\d+\.\d\d)\)")


@dataclass
class Op:
    kind: str  # deduct | redeliver | recharge | card | activate
    account: int  # index into the accounts
    amount: int = 0  # recharge amount or card face value, minor units
    key: str = ""  # recharge reference or card key
    details: list[tuple[str, int, int, str]] = field(default_factory=list)  # (id, acct, amount, item)
    code: int = -1


@dataclass
class Outcome:
    status: str  # accepted | insufficient_balance | already_used | error
    seconds: float
    retries: dict[str, int]
    value: Any = None


def plan(rng: random.Random, ops: int) -> tuple[list[Op], int]:
    """The seeded mix; the detail ids are unique (redeliveries repeat an earlier one)."""
    def account() -> int:
        return 0 if rng.random() < HOT_SHARE else rng.randrange(1, ACCOUNTS)

    planned: list[Op] = []
    delivered: list[tuple[str, int, int, str]] = []
    for n in range(ops):
        roll = rng.random()
        if roll < 0.6:
            if delivered and rng.random() < 0.03:
                planned.append(Op("redeliver", 0, details=[rng.choice(delivered)]))
                continue
            size = 1 if rng.random() < 0.85 else rng.randint(2, 6)
            details = [(str(uuid.UUID(int=rng.getrandbits(128), version=4)), account(),
                        rng.randint(1, 150_00), rng.choice(ITEMS)) for _ in range(size)]
            delivered.extend(details)
            planned.append(Op("deduct", details[0][1], details=details))
        elif roll < 0.9:
            planned.append(Op("recharge", account(), rng.randint(100_00, 450_00), f"r1-{n}"))
        else:
            face = 10_000_00 if rng.random() < 0.01 else 100_00 * rng.choice((1, 2, 5, 10, 20))
            planned.append(Op("card", account(), face, f"k1-{n}"))
    codes = CODES * (ops // OPS or 1)
    for code in range(codes):
        # The racers of one code sit next to each other, so they start together.
        at = rng.randrange(len(planned) + 1)
        racers = [0, 0, *(rng.randrange(1, ACCOUNTS) for _ in range(RACERS - 2))]
        planned[at:at] = [Op("activate", a, code=code) for a in racers]
    return planned, codes


def bonus_of(face: int) -> int:
    return max((bonus for threshold, bonus in CARD_BONUSES if face >= threshold), default=0)


def test_r1_concurrent_movements_on_a_hot_account(pg_runtime: Runtime, clock: ManualClock,
                                                   cheap_passwords: None) -> None:
    runtime = pg_runtime
    center = runtime.billing
    started = time.perf_counter()
    run_seed = seed_from("ACCRUAL_R1_SEED")
    ops_wanted = OPS * scale()
    assert pool_capacity(runtime) >= WORKERS, "the billing engine's pool is smaller than the workers"
    tenants = [tenant(runtime, clock, f"r1-{n}") for n in range(ACCOUNTS)]
    workspaces = [w for w, _ in tenants]
    accounts = [a for _, a in tenants]
    ops, code_count = plan(random.Random(run_seed), ops_wanted)
    codes = center.instruments.create_codes("voucher_standard", money(CODE_VOUCHER),
                                            code_count, validity_days=30).codes
    barriers = [threading.Barrier(RACERS, timeout=10) for _ in range(code_count)]
    messages: dict[str, Envelope] = {}
    for op in ops:
        for detail, owner, amount, item in op.details:
            messages.setdefault(detail, billing_detail(workspaces[owner], amount, item=item,
                                                       detail_id=detail))

    def run(op: Op) -> tuple[str, Any]:
        inbox, wallet, instruments = center.inbox, center.wallet, center.instruments
        if op.kind in ("deduct", "redeliver"):
            batch = [messages[d] for d, *_ in op.details]
            applied = inbox.deliver(batch)
            return ("accepted" if applied == [m.id for m in batch] else "error"), applied
        if op.kind == "recharge":
            answer = recharge_json(wallet.recharge(accounts[op.account], money(op.amount),
                                                   op.key))
            return ("accepted" if answer["created"] else "error"), answer["entry_id"]
        if op.kind == "card":
            try:
                card = card_issued_json(instruments.buy_card(accounts[op.account],
                                                             money(op.amount), op.key))
            except Conflict as refused:
                if refused.code == "insufficient_balance":
                    return "insufficient_balance", refused.message
                raise
            return ("accepted" if card["created"] else "error"), card
        try:
            voucher = voucher_issued_json(instruments.activate(accounts[op.account],
                                                               codes[op.code]))
        except Conflict as used:
            if used.code == "code_already_used":
                return "already_used", None
            raise
        return "accepted", voucher

    outcomes: list[Outcome | None] = [None] * len(ops)
    cursor = iter(range(len(ops)))
    cursor_lock = threading.Lock()
    start = threading.Barrier(WORKERS)

    def worker() -> None:
        start.wait()
        while True:
            with cursor_lock:
                index = next(cursor, None)
            if index is None:
                return
            if ops[index].kind == "activate":
                try:  # the racers of one code start together
                    barriers[ops[index].code].wait()
                except threading.BrokenBarrierError:
                    pass  # a racer came late: the race still runs, less tightly
            before = RETRIES.this_thread()
            began = time.perf_counter()
            try:
                status, value = run(ops[index])
            except Exception as error:  # noqa: BLE001 (counted: must be none)
                status, value = "error", repr(error)
            elapsed = time.perf_counter() - began
            after = RETRIES.this_thread()
            retried = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
            outcomes[index] = Outcome(status, elapsed, retried, value)

    RETRIES.reset()
    run_started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="r1") as pool:
        for future in [pool.submit(worker) for _ in range(WORKERS)]:
            future.result()
    run_seconds = time.perf_counter() - run_started
    retries_total = RETRIES.counts()
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(ops)

    figures = check(runtime, accounts, ops, done, code_count)
    by_kind: dict[str, list[Outcome]] = {}
    for op, outcome in zip(ops, done, strict=True):
        by_kind.setdefault(op.kind, []).append(outcome)
    statuses = {kind: dict(Counter(o.status for o in found)) for kind, found in by_kind.items()}
    per_op = [sum(o.retries.values()) for o in done]
    errors = [o.value for o in done if o.status == "error"][:5]
    violations = figures.pop("violations")
    report = {
        "seed": run_seed, "workers": WORKERS, "accounts": ACCOUNTS, "hot_share": HOT_SHARE,
        "scale": scale(), "pool_capacity": pool_capacity(runtime),
        "ops": len(ops), "details": len(messages), "codes": code_count, "racers_per_code": RACERS,
        "ops_per_s": round(len(ops) / run_seconds, 1), "run_s": round(run_seconds, 2),
        "outcomes": statuses,
        "latency_ms": {kind: latency_ms(o.seconds for o in found)
                       for kind, found in sorted(by_kind.items())},
        "retries": {"total": sum(retries_total.values()), "by_sqlstate": retries_total,
                    "max_per_op": max(per_op, default=0),
                    "ops_retried": sum(1 for n in per_op if n)},
        "lock_wait_p99_ms": "not measured (no per-statement lock timing in the service layer)",
        **figures,
        "violations": violations, "violation_count": sum(violations.values()),
        "first_errors": errors,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    record("R1", "hot_account", report)
    assert not errors, errors
    assert not any(violations.values()), violations


def check(runtime: Runtime, accounts: list[str], ops: list[Op], done: list[Outcome],
          code_count: int) -> dict[str, Any]:
    """Every invariant of the run, as counts of what breaks it (all must be 0)."""
    engine = runtime.billing.engine
    c, e, p, a, i, vc = (t.charges, t.journal_entries, t.postings, t.ledger_accounts,
                         t.instruments, t.voucher_codes)
    violations: Counter[str] = Counter(dict.fromkeys(CHECKS, 0))
    with engine.connect() as conn:
        violations.update(ledger_violations(conn))
        charges = {row.detail_id: row for row in conn.execute(
            select(c.c.detail_id, c.c.account_id, c.c.amount_minor, c.c.status, c.c.entry_id))}
        keys = Counter(conn.execute(select(e.c.idempotency_key)).scalars())
        inbox = set(conn.execute(select(t.inbox.c.message_id)).scalars())
        cards = conn.execute(select(i.c.id, i.c.account_id, i.c.face_minor, i.c.entry_id)
                             .where(i.c.source == "purchase")).all()
        entry_keys = dict(conn.execute(select(e.c.id, e.c.idempotency_key)).all())
        redeemed = conn.execute(select(vc.c.id, vc.c.redeemed_by, vc.c.instrument_id)).all()
        held = {(row.owner, row.kind): int(row.balance_minor) for row in conn.execute(
            select(a.c.owner, a.c.kind, a.c.balance_minor))}
        owners = dict(conn.execute(select(i.c.id, i.c.account_id)).all())
        moves = conn.execute(
            select(e.c.id, e.c.account_id, a.c.owner, a.c.kind, p.c.amount_minor)
            .join(p, p.c.entry_id == e.c.id).join(a, a.c.id == p.c.ledger_account_id)
            .order_by(e.c.id)).all()

    # Accepted + insufficient_balance = attempted; nothing else happened.
    attempted = Counter(op.kind for op in ops)
    for op, outcome in zip(ops, done, strict=True):
        allowed = {"card": {"accepted", "insufficient_balance"},
                   "activate": {"accepted", "already_used"}}.get(op.kind, {"accepted"})
        if outcome.status not in allowed:
            violations[f"{op.kind}_unexpected_outcome"] += 1

    # Every detail settled exactly once, by the account it belongs to, for its amount.
    expected_details = {d: (owner, amount) for op in ops for d, owner, amount, _ in op.details}
    for detail, (owner, amount) in expected_details.items():
        row = charges.get(detail)
        if row is None or row.status != "settled" or row.entry_id is None:
            violations["details_not_settled"] += 1
            continue
        if (row.account_id, int(row.amount_minor)) != (accounts[owner], amount):
            violations["details_settled_wrongly"] += 1
        if keys[f"detail/{detail}"] != 1 or entry_keys.get(row.entry_id) != f"detail/{detail}":
            violations["details_without_one_entry"] += 1
        if detail not in inbox:
            violations["details_not_in_inbox"] += 1
    violations["details_settled_twice"] = sum(
        n - 1 for key, n in keys.items() if key.startswith("detail/") and n > 1)
    violations["unexpected_charges"] = len(set(charges) - set(expected_details))

    # Each card key bought at most once, and a card exactly for each accepted purchase.
    accepted_cards = {op.key: (op, o.value) for op, o in zip(ops, done, strict=True)
                      if op.kind == "card" and o.status == "accepted"}
    refused_cards = [(op, o.value) for op, o in zip(ops, done, strict=True)
                     if op.kind == "card" and o.status == "insufficient_balance"]
    card_keys = Counter(entry_keys[row.entry_id] for row in cards)
    violations["card_keys_bought_twice"] = sum(n - 1 for n in card_keys.values() if n > 1)
    violations["cards_without_purchase"] = len(cards) - len(accepted_cards)
    for op, _ in refused_cards:
        if keys[f"card/{accounts[op.account]}/{op.key}"]:
            violations["refused_purchases_with_entry"] += 1
    for key, (op, card) in accepted_cards.items():
        if keys[f"card/{accounts[op.account]}/{key}"] != 1 or \
                card["face_value"] != money(op.amount):
            violations["accepted_purchases_not_stored"] += 1

    # Each code redeemed exactly once: one winner, the others refused (or, for the
    # winner's own account, given the same voucher back).
    winners: dict[int, list[tuple[Op, dict[str, Any]]]] = {}
    same_account_refused = 0
    for op, outcome in zip(ops, done, strict=True):
        if op.kind == "activate" and outcome.status == "accepted":
            winners.setdefault(op.code, []).append((op, outcome.value))
    for code in range(code_count):
        created = [(op, v) for op, v in winners.get(code, []) if v["created"]]
        again = [(op, v) for op, v in winners.get(code, []) if not v["created"]]
        if len(created) != 1:
            violations["codes_not_redeemed_once"] += 1
            continue
        winner, voucher = created[0]
        if any(op.account != winner.account or v["number"] != voucher["number"]
               for op, v in again):
            violations["codes_redeemed_by_two"] += 1
        # The winner's own account racing it may be told "already used" rather than given
        # the same voucher (its copy saw the code free, then the entry taken): reported.
        same_account_refused += sum(
            1 for op, o in zip(ops, done, strict=True) if op.kind == "activate"
            and op.code == code and op.account == winner.account and o.status == "already_used")
    redeemed_rows = [r for r in redeemed if r.redeemed_by is not None]
    if len(redeemed_rows) != code_count or len({r.instrument_id for r in redeemed_rows}) \
            != code_count:
        violations["code_rows_not_redeemed_once"] += 1
    violations["code_entries_twice"] = sum(
        n - 1 for key, n in keys.items() if key.startswith("code/") and n > 1)

    # Conservation per account. The center's own accounts (bank_clearing, revenue,
    # promotions, breakage) are where money comes from and goes to; the account holds
    # cash + cards + vouchers + prepaid (prepaid < 0 is arrears), and
    #   cash + cards + vouchers − arrears
    #     = Σ recharges + Σ vouchers granted (bonus, codes) − Σ charges − Σ breakage
    # (no breakage here: the clock stands still). A card bought moves cash into the card.
    oracle = Counter[str]()
    for op, outcome in zip(ops, done, strict=True):
        if outcome.status != "accepted":
            continue
        if op.kind == "recharge":
            oracle[accounts[op.account]] += op.amount
        elif op.kind == "card":
            oracle[accounts[op.account]] += bonus_of(op.amount)
        elif op.kind == "activate" and outcome.value["created"]:
            oracle[accounts[op.account]] += CODE_VOUCHER
    for owner, amount in expected_details.values():
        oracle[accounts[owner]] -= amount
    holdings = Counter[str]()
    for (owner, kind), balance in held.items():
        if kind in ("cash", "prepaid"):
            holdings[owner] += balance
        elif owner in owners:
            holdings[owners[owner]] += balance
    mismatched = {acct: (holdings[acct], oracle[acct]) for acct in accounts
                  if holdings[acct] != oracle[acct]}
    violations["accounts_not_conserved"] = len(mismatched)

    # Replay each account's entries in id order (the order its row lock gave them).
    per_entry: dict[int, tuple[str, Counter[str]]] = {}
    for row in moves:
        if row.kind in ("cash", "prepaid") and row.owner == row.account_id:
            per_entry.setdefault(row.id, (row.account_id, Counter()))[1][row.kind] += \
                int(row.amount_minor)
    running = {acct: Counter[str]() for acct in accounts}
    seen_cash: dict[str, set[int]] = {acct: {0} for acct in accounts}
    for entry in sorted(per_entry):
        owner, delta = per_entry[entry]
        balances = running[owner]
        balances.update(delta)
        seen_cash[owner].add(balances["cash"])
        if balances["cash"] < 0:
            violations["cash_below_zero_in_replay"] += 1
        if balances["cash"] > 0 and balances["prepaid"] < 0:
            violations["cash_while_in_arrears"] += 1
    for acct in accounts:
        if (running[acct]["cash"], running[acct]["prepaid"]) != \
                (held[(acct, "cash")], held[(acct, "prepaid")]):
            violations["replay_differs_from_balances"] += 1
    for op, message in refused_cards:
        found = _REFUSED_CASH.search(message or "")
        cash = int(Decimal(found.group(1)) * 100) if found else None
        if cash is None or cash >= op.amount or cash not in seen_cash[accounts[op.account]]:
            violations["refusals_not_seen_in_replay"] += 1

    hot = accounts[0]
    kinds = Counter(kind for _, kind in held)
    return {
        "attempted": dict(attempted),
        "accepted_card_purchases": len(accepted_cards),
        "insufficient_balance": len(refused_cards),
        "journal_entries": sum(keys.values()),
        "code_winner_account_refused_in_flight": same_account_refused,
        "instruments": {"cards": kinds["card"], "vouchers": kinds["voucher_standard"]
                        + kinds["voucher_discount"]},
        "hot_account_final": {"holdings": money(holdings[hot]), "oracle": money(oracle[hot])},
        "not_conserved": {k: [money(x) for x in v] for k, v in list(mismatched.items())[:5]},
        "violations": dict(violations),
    }
