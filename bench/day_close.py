"""Day close and settlement at scale on PostgreSQL, with a 1,000-workspace baseline in the same run.

    .venv/bin/python bench/day_close.py                     # 100,000 workspaces (a few minutes)
    .venv/bin/python bench/day_close.py --quick             # 10,000 workspaces, a smoke test
    .venv/bin/python bench/day_close.py --help

Set-up (not measured): two fresh PostgreSQL databases (dropped at the end); the
tenants (console workspaces; billing accounts, ledger accounts, bindings) and the
usage rows are written with COPY: --workspaces workspaces × --items items ×
--records-per-item records on DAY, and --baseline-workspaces other workspaces
with the same shape on the day before.

Measured:

  close      runtime.console.day_close.close_day(day): usage → daily statistics →
             billing details + outbox, one transaction. The baseline day (1,000
             workspaces) and the full day, medians of --runs runs (the day's
             output is deleted between runs).
  relay      runtime.console.relay.drain(): the outbox delivered to the billing
             center, which applies each detail exactly once (inbox), routes it by
             its binding and settles it (journal entry, postings, charge line).
             For the baseline day it is measured twice: as the center receives it
             (batches from the relay) and one detail per delivery (one transaction
             per detail, the way the center settled before it batched).

Checks after the relay: one charge line and one inbox row per detail, and the
ledger audit (every entry balanced, cached balances equal to their postings).
Prints progress lines, then a JSON summary, also written to bench/results/.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DAY,
    NOW,
    SHANGHAI,
    analyze,
    bulk_tenants,
    copy_rows,
    dispose,
    environment,
    log,
    make_runtime,
    median,
    pg_databases,
    write_summary,
)

BASELINE_DAY = DAY - timedelta(days=1)
# (item, retention tier, quantity range): five items a typical workspace is billed for.
ITEMS: list[tuple[str, int, int]] = [
    ("timeseries", 7, 20_000),
    ("logs", 7, 5_000_000),
    ("trace", 3, 2_000_000),
    ("rum_pv", 3, 50_000),
    ("trigger", 0, 40_000),
    ("session_replay", 0, 5_000),
    ("network_host", 0, 50),
]


def load_usage(runtime: Any, workspaces: Sequence[str], day: Any, items: int,
               per_item: int, seed: int) -> int:
    """usage_records rows for ``day``, written with COPY (set-up, not measured)."""
    rng = random.Random(seed)
    start = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI)
    received = datetime.now(UTC)

    def rows():  # type: ignore[no-untyped-def]
        for w in workspaces:
            for item, tier, top in ITEMS[:items]:
                for n in range(per_item):
                    at = start + timedelta(minutes=rng.randrange(1440))
                    hour = at.replace(minute=0).astimezone(UTC)
                    yield (w, f"{item}-{n}", item, at, day, hour, tier, rng.randrange(1, top),
                           0, "0" * 32, received)

    count = copy_rows(runtime.console.engine, "usage_records",
                      ["workspace_id", "record_id", "item", "occurred_at", "day", "hour_start",
                       "retention_days", "quantity", "companion", "digest", "received_at"],
                      rows())
    analyze(runtime.console.engine, "usage_records")
    return count


def reset_close(runtime: Any, day: Any) -> None:
    """Forget that ``day`` was closed: its details, statistics, outbox rows."""
    with runtime.console.engine.begin() as conn:
        conn.exec_driver_sql(
            "DELETE FROM console_outbox WHERE message_id IN "
            "(SELECT id FROM billing_details WHERE day = %(d)s)", {"d": day})
        conn.exec_driver_sql("DELETE FROM billing_details WHERE day = %(d)s", {"d": day})
        conn.exec_driver_sql("DELETE FROM daily_statistics WHERE day = %(d)s", {"d": day})
        conn.exec_driver_sql("DELETE FROM closed_days WHERE day = %(d)s", {"d": day})
    with runtime.console.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM ANALYZE billing_details, daily_statistics, console_outbox")


def reset_billing(runtime: Any) -> None:
    """The billing center as before any detail arrived."""
    with runtime.billing.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE charges, postings, journal_entries, billing_inbox CASCADE")
        conn.exec_driver_sql("UPDATE ledger_accounts SET balance_minor = 0")
    with runtime.console.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE console_outbox SET sent_at = NULL, attempts = 0")


def timed_close(runtime: Any, day: Any, runs: int, label: str) -> tuple[list[float], int]:
    times, details = [], 0
    for run in range(runs):
        if run:
            reset_close(runtime, day)
        started = time.perf_counter()
        result = runtime.console.day_close.close_day(day)
        times.append(time.perf_counter() - started)
        details = result.charges + result.adjustments
        log(f"close {label} run {run + 1}: {times[-1]:.2f} s, {result.charges:,} charges")
    return times, details


def timed_relay(runtime: Any, expected: int, label: str, *, one_by_one: bool = False) -> float:
    """Drain the console outbox into the billing center; messages/s."""
    from accrual.infra.outbox import Relay

    console = runtime.console
    relay = console.relay
    if one_by_one:
        inbox = runtime.billing.inbox

        def deliver(messages: Sequence[Any]) -> list[str]:
            applied: list[str] = []
            for message in messages:  # one delivery, and so one transaction, per detail
                applied += inbox.deliver([message])
            return applied

        relay = Relay(console.engine, relay._table, deliver, console.clock)
    delivered = shown = 0
    started = time.perf_counter()
    last = started
    while True:
        sent = relay.drain(max_batches=20)
        delivered += max(sent, 0)
        now = time.perf_counter()
        if (now - last > 10 or sent <= 0) and delivered != shown:
            log(f"  relay {label}: {delivered:,}/{expected:,} delivered, "
                f"{delivered / (now - started):,.0f}/s")
            last, shown = now, delivered
        if sent <= 0:
            break
    elapsed = time.perf_counter() - started
    if delivered != expected:
        raise SystemExit(f"relay {label}: delivered {delivered}, expected {expected}: "
                         f"{relay.stats.last_error}")
    return delivered / elapsed


def check_billing(runtime: Any, expected: int) -> dict[str, Any]:
    from accrual.billing.services import ledger

    with runtime.billing.engine.connect() as conn:
        charges = conn.exec_driver_sql("SELECT count(*) FROM charges").scalar_one()
        settled = conn.exec_driver_sql(
            "SELECT count(*) FROM charges WHERE status = 'settled'").scalar_one()
        inbox = conn.exec_driver_sql("SELECT count(*) FROM billing_inbox").scalar_one()
        report = ledger.audit(conn)
    if charges != expected or inbox != expected or not report.ok:
        raise SystemExit(f"billing check failed: charges={charges} inbox={inbox} "
                         f"expected={expected} audit={report}")
    return {"charges": charges, "settled": settled, "journal_entries": report.entries,
            "ledger_audit_ok": report.ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", type=int, default=100_000)
    parser.add_argument("--baseline-workspaces", type=int, default=1_000)
    parser.add_argument("--items", type=int, default=5, choices=range(1, len(ITEMS) + 1))
    parser.add_argument("--records-per-item", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="runs of each close (median)")
    parser.add_argument("--full-runs", type=int, default=1,
                        help="runs of the full-size close (each deletes the previous output)")
    parser.add_argument("--quick", action="store_true", help="10,000 workspaces, one run")
    args = parser.parse_args()
    if args.quick:
        args.workspaces, args.runs, args.full_runs = 10_000, 1, 1

    log(f"day-close benchmark: {args.workspaces:,} workspaces × {args.items} items × "
        f"{args.records_per_item} records on {DAY}; baseline {args.baseline_workspaces:,} "
        f"workspaces on {BASELINE_DAY}")
    summary: dict[str, Any] = {"benchmark": "day_close", "environment": environment(),
                               "parameters": vars(args) | {"day": DAY.isoformat(),
                                                          "baseline_day": BASELINE_DAY.isoformat(),
                                                          "now": NOW.isoformat()}}
    results: dict[str, Any] = {}
    with pg_databases("dayclose") as urls:
        runtime = make_runtime(urls)
        started = time.perf_counter()
        small = bulk_tenants(runtime, args.baseline_workspaces, prefix="bs")
        large = bulk_tenants(runtime, args.workspaces, prefix="bl")
        log(f"tenants written: {len(small) + len(large):,} workspaces")
        n_small = load_usage(runtime, small, BASELINE_DAY, args.items, args.records_per_item, 1)
        n_large = load_usage(runtime, large, DAY, args.items, args.records_per_item, 2)
        log(f"usage written: {n_small + n_large:,} records "
            f"(set-up {time.perf_counter() - started:.1f} s, not measured)")

        times, small_details = timed_close(runtime, BASELINE_DAY, args.runs,
                                           f"{len(small):,} workspaces")
        results["close_baseline"] = {"workspaces": len(small), "details": small_details,
                                     "seconds": median(times), "runs_seconds": times,
                                     "details_per_s": small_details / median(times)}
        rates = []
        for run in range(args.runs):
            if run:
                reset_billing(runtime)
            rates.append(timed_relay(runtime, small_details, f"baseline run {run + 1}"))
        results["relay_baseline_batched"] = {"details": small_details,
                                             "details_per_s": median(rates),
                                             "runs_details_per_s": rates}
        check_billing(runtime, small_details)
        reset_billing(runtime)
        one = timed_relay(runtime, small_details, "baseline, one detail per transaction",
                          one_by_one=True)
        results["relay_baseline_one_per_transaction"] = {"details": small_details,
                                                         "details_per_s": one}
        check_billing(runtime, small_details)
        log(f"relay: batched {median(rates):,.0f} details/s, one per transaction {one:,.0f}/s")
        reset_billing(runtime)
        with runtime.billing.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE charges, postings, journal_entries, billing_inbox CASCADE")
        with runtime.console.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM console_outbox")

        times, large_details = timed_close(runtime, DAY, args.full_runs,
                                           f"{len(large):,} workspaces")
        results["close_full"] = {"workspaces": len(large), "details": large_details,
                                 "seconds": median(times), "runs_seconds": times,
                                 "details_per_s": large_details / median(times)}
        rate = timed_relay(runtime, large_details, "full day")
        results["relay_full_batched"] = {"details": large_details, "details_per_s": rate,
                                         "seconds": large_details / rate}
        results["billing_check"] = check_billing(runtime, large_details)
        dispose(runtime)

    base, full = results["close_baseline"], results["close_full"]
    summary["results"] = results
    summary["scaling"] = {
        "workspaces_ratio": full["workspaces"] / base["workspaces"],
        "close_time_ratio": round(full["seconds"] / base["seconds"], 1),
        "per_workspace_ms_baseline": round(base["seconds"] * 1000 / base["workspaces"], 3),
        "per_workspace_ms_full": round(full["seconds"] * 1000 / full["workspaces"], 3),
        "relay_batched_vs_one_per_transaction": round(
            results["relay_baseline_batched"]["details_per_s"]
            / results["relay_baseline_one_per_transaction"]["details_per_s"], 1),
    }
    write_summary("day_close", summary)


if __name__ == "__main__":
    main()
