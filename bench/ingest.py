"""Usage ingestion into PostgreSQL: service layer, HTTP, and a row-by-row baseline, in one run.

    .venv/bin/python bench/ingest.py                 # full run (about 2-4 minutes)
    .venv/bin/python bench/ingest.py --quick         # smaller counts, a smoke test
    .venv/bin/python bench/ingest.py --help

Builds a runtime on two fresh PostgreSQL databases (dropped at the end),
registers a few tenants through the service and writes the rest straight into
the databases, then times:

  service   runtime.console.ingestion.ingest(batch) over --records records in
            batches of --batch, spread over --workspaces workspaces and seven items
            within one day; median of --runs runs on an emptied usage table.
  resend    the same batches sent again (every record a duplicate).
  http      POST /console/v1/usage to uvicorn serving runtime.app in a subprocess on
            127.0.0.1, httpx clients with pre-encoded bodies, --http-concurrency in flight.
  baseline  the naive way in the same run: every record validated the same way,
            then one INSERT … ON CONFLICT DO NOTHING statement per record through
            SQLAlchemy (--baseline-records records, scaled to records/s).
  silver    optional peer: django-silver's REST usage updates (see bench/README.md).

Prints progress lines, then a JSON summary, also written to bench/results/.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ADMIN,
    DAY,
    NOW,
    ROOT,
    bulk_tenants,
    dispose,
    environment,
    log,
    make_runtime,
    median,
    pg_databases,
    register_few,
    write_summary,
)

TARGET = 100_000
# (item, retention tiers a collector may name; None: leave it to the workspace's policy)
ITEM_MIX: list[tuple[str, tuple[int | None, ...]]] = [
    ("timeseries", (3, 7, 14, 30)),
    ("logs", (3, 7, 14, None)),
    ("trace", (3, 7, None)),
    ("rum_pv", (3, 7, None)),
    ("trigger", (None,)),
    ("session_replay", (None,)),
    ("network_host", (None,)),
]


def make_records(count: int, workspaces: Sequence[str], seed: int = 7) -> list[dict[str, Any]]:
    """Records as collectors send them: one per host, item and minute of DAY."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        item, tiers = ITEM_MIX[rng.randrange(len(ITEM_MIX))]
        minute = rng.randrange(1440)
        record: dict[str, Any] = {
            "id": f"host-{i // 7:07d}/{item}/{minute:04d}",
            "workspace_id": workspaces[rng.randrange(len(workspaces))],
            "item": item,
            "time": f"{DAY.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:00+08:00",
            "quantity": str(rng.randrange(1, 5_000_000)) if i % 3 else rng.randrange(1, 5_000_000),
        }
        tier = tiers[rng.randrange(len(tiers))]
        if tier is not None:
            record["retention_days"] = tier
        records.append(record)
    return records


def batches(records: Sequence[dict[str, Any]], size: int) -> list[Sequence[dict[str, Any]]]:
    return [records[i:i + size] for i in range(0, len(records), size)]


def empty_usage(runtime: Any) -> None:
    with runtime.console.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE usage_records, usage_day_totals, late_days")


# -- service layer -------------------------------------------------------------


def run_service(runtime: Any, chunks: list[Sequence[dict[str, Any]]], label: str,
                expect: str) -> float:
    total = sum(len(c) for c in chunks)
    started = time.perf_counter()
    for n, chunk in enumerate(chunks, start=1):
        result = runtime.console.ingestion.ingest(chunk)
        got = result.accepted if expect == "accepted" else result.duplicates
        if got != len(chunk) or result.rejected:
            raise SystemExit(f"{label}: batch {n}: expected {len(chunk)} {expect}, got "
                             f"accepted={result.accepted} duplicates={result.duplicates} "
                             f"rejected={result.rejected[:3]}")
        if n % max(1, len(chunks) // 5) == 0 or n == len(chunks):
            so_far = time.perf_counter() - started
            rate = sum(len(c) for c in chunks[:n]) / so_far
            log(f"  {label}: {n}/{len(chunks)} batches, {rate:,.0f} records/s")
    elapsed = time.perf_counter() - started
    return total / elapsed


# -- several processes at once (API workers scale out) ------------------------------


def parallel_worker(urls: tuple[str, str], seed: int, count: int, batch: int,
                    workspaces: list[str], ready: Any, start: Any, done: Any) -> None:
    runtime = make_runtime(urls)
    records = make_records(count, workspaces, seed=seed)
    for r in records:
        r["id"] = f"p{seed}-{r['id']}"
    chunks = batches(records, batch)
    gc.collect()
    gc.freeze()
    ready.put(seed)
    start.wait()
    started = time.perf_counter()
    accepted = 0
    for chunk in chunks:
        accepted += runtime.console.ingestion.ingest(chunk).accepted
    done.put((started, time.perf_counter(), accepted))
    dispose(runtime)


def run_parallel(urls: tuple[str, str], processes: int, count: int, batch: int,
                 workspaces: list[str], run: int) -> float:
    """``processes`` processes ingesting ``count`` records each, all started together."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, start, done = context.Queue(), context.Event(), context.Queue()
    workers = [context.Process(target=parallel_worker, args=(
        urls, 1000 * run + n, count, batch, workspaces, ready, start, done))
        for n in range(processes)]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=300)
    start.set()
    spans = [done.get(timeout=900) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    accepted = sum(s[2] for s in spans)
    if accepted != processes * count:
        raise SystemExit(f"parallel: accepted {accepted} of {processes * count}")
    return processes * count / (max(s[1] for s in spans) - min(s[0] for s in spans))


# -- baseline: one INSERT statement per record ------------------------------------


def run_baseline(runtime: Any, chunks: list[Sequence[dict[str, Any]]]) -> float:
    """Validation as in the service, then one INSERT … ON CONFLICT DO NOTHING per record."""
    from sqlalchemy import select
    from sqlalchemy.dialects.postgresql import insert

    from accrual.catalog.items import RETENTION_DEFAULTS
    from accrual.console.adapters import tables as t
    from accrual.console.domain.usage import Rejection, validate_record

    ingestion = runtime.console.ingestion
    statement = insert(t.usage_records).on_conflict_do_nothing()
    total = sum(len(c) for c in chunks)
    started = time.perf_counter()
    for chunk in chunks:
        now = runtime.console.clock.now()
        with runtime.console.engine.begin() as conn:
            wanted = {r["workspace_id"] for r in chunk}
            known = set(conn.execute(select(t.workspaces.c.id)
                                     .where(t.workspaces.c.id.in_(wanted))).scalars())
            for index, raw in enumerate(chunk):
                if raw["workspace_id"] not in known:
                    raise SystemExit("baseline: unknown workspace")
                row = validate_record(index, raw, now=now, limits=ingestion.limits,
                                      resolve_retention=lambda _w, d, _a: RETENTION_DEFAULTS[d])
                if isinstance(row, Rejection):
                    raise SystemExit(f"baseline: {row}")
                conn.execute(statement, {
                    "workspace_id": row.workspace_id, "record_id": row.record_id,
                    "item": row.item, "occurred_at": row.occurred_at, "day": row.day,
                    "hour_start": row.hour_start, "retention_days": row.retention_days,
                    "quantity": row.quantity, "companion": row.companion, "digest": row.digest,
                    "received_at": now})
    return total / (time.perf_counter() - started)


# -- HTTP -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(console_url: str, billing_url: str, port: int) -> None:
    """Subprocess entry: uvicorn serving runtime.app on the benchmark's databases."""
    import logging

    import uvicorn

    logging.basicConfig(level=logging.WARNING)
    runtime = make_runtime((console_url, billing_url))
    uvicorn.run(runtime.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(urls: tuple[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", urls[0], urls[1], str(port)], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the uvicorn subprocess exited early")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise SystemExit("the uvicorn subprocess did not answer /healthz within 60 s")


def run_http(base: str, bodies: list[tuple[int, bytes]], concurrency: int) -> float:
    import httpx

    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    local = threading.local()

    def post(item: tuple[int, bytes]) -> None:
        count, body = item
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, timeout=300, headers=headers)
        response = client.post("/console/v1/usage", content=body)
        if response.status_code != 200 or response.json()["accepted"] != count:
            raise SystemExit(f"http: {response.status_code} {response.text[:300]}")

    total = sum(count for count, _ in bodies)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, bodies))
    return total / (time.perf_counter() - started)


# -- peer: silver -----------------------------------------------------------------

# The peer harnesses live in the team's shared folder beside the checkout.
SILVER_DIR = Path(os.environ.get("ACCRUAL_PEERS_DIR", ROOT.parent / "shared" / "peers")) / "silver"
SILVER_PY = ROOT / ".peers" / "silver" / "bin" / "python"


def run_silver(runs: int) -> dict[str, Any]:
    """silver's REST usage step of run_bench.sh: seed, then PATCH metered-feature usage
    (in-process DRF APIClient on SQLite), 100 subscriptions × 8 features × 3 updates."""
    if not SILVER_PY.exists() or not SILVER_DIR.exists():
        return {"skipped": f"{SILVER_PY} not installed (see bench/README.md)"}
    work = Path(tempfile.mkdtemp(prefix="silver-bench-"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONDONTWRITEBYTECODE": "1"}
    template = work / "seed.sqlite3"
    try:
        def manage(db: Path, *args: str) -> str:
            done = subprocess.run([str(SILVER_PY), "manage.py", *args], cwd=SILVER_DIR,
                                  env={**env, "SILVER_BENCH_DB": str(db)}, capture_output=True,
                                  text=True, check=True, timeout=900)
            return done.stdout
        manage(template, "migrate", "-v0")
        manage(template, "seed_billing", "--customers", "100")
        rates = []
        for i in range(runs):
            db = work / f"run{i}.sqlite3"
            shutil.copy(template, db)
            out = manage(db, "ingest_api", "--subscriptions", "100", "--updates", "3")
            result = json.loads(out.strip().splitlines()[-1])
            if result.get("errors"):
                return {"skipped": f"silver reported errors: {result['errors']}"}
            rates.append(result["requests_per_s"])
            log(f"  silver REST usage updates run {i + 1}: {result['requests_per_s']:,.0f} records/s")
        return {"records_per_s": median(rates), "runs_records_per_s": rates,
                "requests": 2400, "records_per_request": 1,
                "note": "django-silver 0.11.1, in-process DRF APIClient, SQLite; one usage "
                        "update per request, no deduplication key"}
    except (subprocess.SubprocessError, OSError, ValueError, KeyError) as error:
        return {"skipped": f"silver failed: {error}"}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- main -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--workspaces", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--http-records", type=int, default=200_000)
    parser.add_argument("--http-concurrency", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2,
                        help="also ingest from this many processes at once (1: skip)")
    parser.add_argument("--baseline-records", type=int, default=20_000)
    parser.add_argument("--silver", choices=("auto", "yes", "no"), default="auto",
                        help="run the silver peer (auto: when .peers/silver is installed)")
    parser.add_argument("--quick", action="store_true", help="small counts, one run")
    parser.add_argument("--serve", nargs=3, metavar=("CONSOLE_URL", "BILLING_URL", "PORT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    if args.quick:
        args.records, args.http_records, args.baseline_records = 50_000, 20_000, 2_000
        args.runs, args.workspaces = 1, 200
        if args.silver == "auto":
            args.silver = "no"

    log(f"ingest benchmark: {args.records:,} records in batches of {args.batch:,}, "
        f"{args.workspaces:,} workspaces, {args.runs} runs")
    summary: dict[str, Any] = {"benchmark": "ingest", "environment": environment(),
                               "parameters": vars(args) | {"day": DAY.isoformat(),
                                                          "now": NOW.isoformat()},
                               "target_records_per_s": TARGET}
    results: dict[str, Any] = {}
    with pg_databases("ingest") as urls:
        runtime = make_runtime(urls)
        registered = register_few(runtime, 3)
        workspaces = registered + bulk_tenants(runtime, args.workspaces - len(registered))
        log(f"{len(workspaces):,} workspaces ready ({len(registered)} registered)")
        records = make_records(args.records, workspaces)
        chunks = batches(records, args.batch)
        # The generated records stand in for batches arriving over the network: keep the
        # collector from re-scanning half a million of them (a server holds a few batches).
        gc.collect()
        gc.freeze()
        log(f"{len(records):,} records generated")

        rates = []
        for run in range(args.runs):
            empty_usage(runtime)
            rates.append(run_service(runtime, chunks, f"service run {run + 1}", "accepted"))
            log(f"service run {run + 1}: {rates[-1]:,.0f} records/s")
        results["service"] = {"records_per_s": median(rates), "runs_records_per_s": rates,
                              "records": args.records, "batch": args.batch}
        if args.processes > 1:
            parallel = []
            for run in range(args.runs):
                empty_usage(runtime)
                parallel.append(run_parallel(urls, args.processes,
                                             args.records // args.processes, args.batch,
                                             workspaces, run))
                log(f"service, {args.processes} processes at once, run {run + 1}: "
                    f"{parallel[-1]:,.0f} records/s")
            results["service_parallel"] = {
                "records_per_s": median(parallel), "runs_records_per_s": parallel,
                "processes": args.processes, "records": args.records // args.processes
                * args.processes, "batch": args.batch}
        empty_usage(runtime)
        for chunk in chunks:
            runtime.console.ingestion.ingest(chunk)
        resend = run_service(runtime, chunks, "resend", "duplicates")
        log(f"resend (all duplicates): {resend:,.0f} records/s")
        results["service_resend_duplicates"] = {"records_per_s": resend,
                                                "records": args.records}

        http_records = make_records(args.http_records, workspaces, seed=11)
        for r in http_records:
            r["id"] = "http-" + r["id"]
        bodies = [(len(c), json.dumps({"records": list(c)}).encode())
                  for c in batches(http_records, args.batch)]
        http_rates = []
        process, base = start_server(urls)
        try:
            for run in range(args.runs):
                empty_usage(runtime)
                http_rates.append(run_http(base, bodies, args.http_concurrency))
                log(f"http run {run + 1}: {http_rates[-1]:,.0f} records/s "
                    f"({args.http_concurrency} requests in flight)")
        finally:
            process.terminate()
            process.wait(timeout=30)
        results["http"] = {"records_per_s": median(http_rates), "runs_records_per_s": http_rates,
                           "records": args.http_records, "batch": args.batch,
                           "concurrency": args.http_concurrency,
                           "body_bytes_per_batch": len(bodies[0][1])}

        baseline_rates = []
        baseline_chunks = batches(records[:args.baseline_records], args.batch)
        for run in range(args.runs):
            empty_usage(runtime)
            baseline_rates.append(run_baseline(runtime, baseline_chunks))
            log(f"baseline run {run + 1} (one INSERT per record): "
                f"{baseline_rates[-1]:,.0f} records/s")
        results["baseline_row_by_row"] = {
            "records_per_s": median(baseline_rates), "runs_records_per_s": baseline_rates,
            "records": args.baseline_records}
        dispose(runtime)

    if args.silver != "no":
        log("peer: silver REST usage updates")
        results["peer_silver_rest"] = run_silver(args.runs)
    service = results["service"]["records_per_s"]
    summary["results"] = results
    summary["service_vs_baseline"] = round(service / results["baseline_row_by_row"]["records_per_s"], 1)
    summary["meets_target"] = {"service": service >= TARGET,
                               "http": results["http"]["records_per_s"] >= TARGET}
    write_summary("ingest", summary)


if __name__ == "__main__":
    main()
