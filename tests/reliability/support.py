"""What the reliability tests share: sizes, percentiles, ledger checks and the report.

Every test writes its figures into ``reliability_report.json`` at the repository
root (or the file named by ``ACCRUAL_RELIABILITY_REPORT``), merged by test and
part, ``{"R1": {"run": {...}}, "R8": {"sqlite": {...}}, ...}``, written
atomically; and prints a one-line summary (shown with ``pytest -s``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from accrual.app import Runtime
from accrual.billing.adapters import tables as t
from accrual.billing.services import ledger
from accrual.contract.messages import BILLING_DETAIL, BillingDetail, Envelope
from tests.conftest import BACKEND, START

ROOT = Path(__file__).resolve().parents[2]
REPORT = Path(os.environ.get("ACCRUAL_RELIABILITY_REPORT") or ROOT / "reliability_report.json")
DAY = date(2026, 11, 25)
_write_lock = threading.Lock()


def scale() -> int:
    """``ACCRUAL_RELIABILITY_SCALE``: 1 on CI, about 10 for the nightly profile."""
    value = int(os.environ.get("ACCRUAL_RELIABILITY_SCALE", "1"))
    assert value >= 1, "ACCRUAL_RELIABILITY_SCALE is a whole number >= 1"
    return value


def seed_from(variable: str) -> int:
    """The seed named by ``variable``, or a fresh one (logged in the report to replay)."""
    given = os.environ.get(variable)
    return int(given) if given else int.from_bytes(os.urandom(4), "big")


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_ms(seconds: Iterable[float]) -> dict[str, float | int]:
    values = sorted(seconds)
    return {"count": len(values),
            **{f"p{p}": round(percentile(values, p) * 1000, 2) for p in (50, 95, 99)},
            "max": round(values[-1] * 1000, 2) if values else 0.0}


def money(minor: int) -> str:
    """Minor units as the API writes amounts: ``-12.34``."""
    return str(Decimal(minor).scaleb(-2).quantize(Decimal("0.01")))


def billing_detail(workspace_id: str, amount_minor: int, *, detail_id: str,
                   item: str = "logs", day: date = DAY, revision: int = 0,
                   adjusts: str | None = None) -> Envelope:
    """A billing-detail message as a console sends it (see tests/integration)."""
    body = BillingDetail(
        id=detail_id, site="cn1", workspace_id=workspace_id, billing_account_id=None, day=day,
        item=item, retention_days=7, quantity="1", unit_size="1", unit_price=money(amount_minor),
        amount=money(amount_minor), currency="CNY", price_book_version="current@2023-11-02",
        kind="charge" if revision == 0 else "adjustment", revision=revision,
        adjusts=adjusts, reason=None if revision == 0 else "reliability test",
        created_at=START)
    return Envelope(id=detail_id, type=BILLING_DETAIL, aggregate_id=workspace_id,
                    occurred_at=START, payload=body.model_dump(mode="json"))


def ledger_violations(conn: Connection) -> dict[str, int]:
    """The ledger-wide checks every run ends with; all must be 0."""
    report = ledger.audit(conn)
    a = t.ledger_accounts
    negative = conn.execute(select(func.count()).select_from(a).where(
        a.c.kind != "prepaid", a.c.balance_minor < 0)).scalar_one()
    positive_prepaid = conn.execute(select(func.count()).select_from(a).where(
        a.c.kind == "prepaid", a.c.balance_minor > 0)).scalar_one()
    return {"unbalanced_entries": report.unbalanced_entries,
            "balance_mismatches": report.balance_mismatches,
            "negative_cash_card_voucher_balances": int(negative),
            "positive_prepaid_balances": int(positive_prepaid)}


def entry_postings(conn: Connection, key: str) -> dict[str, int]:
    """The postings of the entry with idempotency key ``key``: {instrument id, or the
    kind of a customer or center account: amount}."""
    e, p, a = t.journal_entries, t.postings, t.ledger_accounts
    rows = conn.execute(select(a.c.owner, a.c.kind, p.c.amount_minor)
                        .join(p, p.c.ledger_account_id == a.c.id)
                        .join(e, e.c.id == p.c.entry_id)
                        .where(e.c.idempotency_key == key)).all()
    found: dict[str, int] = {}
    for owner, kind, amount in rows:
        name = kind if owner == ledger.SYSTEM or kind in ledger.CUSTOMER_KINDS else owner
        found[name] = found.get(name, 0) + int(amount)
    return found


def pool_capacity(runtime: Runtime) -> int:
    pool: Any = runtime.billing.engine.pool
    return int(pool.size()) + int(getattr(pool, "_max_overflow", 0))


@contextlib.contextmanager
def _file_lock() -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"accrual-reliability-{os.getuid()}.lock"
    with _write_lock, open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(test: str, part: str, figures: dict[str, Any]) -> None:
    """Merge ``figures`` into the report under ``test`` → ``part`` and print a summary."""
    figures = {"backend": BACKEND, **figures}
    with _file_lock():
        try:
            data = json.loads(REPORT.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        section = data.get(test)
        if not isinstance(section, dict):
            section = data[test] = {}
        section[part] = figures
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed before the replace)
            "w", dir=REPORT.parent, prefix=".reliability_report.", suffix=".tmp", delete=False)
        try:
            with handle:
                json.dump(data, handle, indent=2, sort_keys=True, default=str)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, REPORT)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            raise
    print(f"\n[{test}/{part}] " + summary(figures))  # noqa: T201 - the figures are the report


def summary(figures: dict[str, Any]) -> str:
    shown = []
    for key in ("backend", "seed", "ops", "ops_per_s", "keys", "examples", "steps",
                "operations", "operations_tested", "cases", "requests", "5xx", "invalid_accepted",
                "undocumented_statuses", "check_failures", "problems", "validation_p99_ms",
                "limits_hit", "wall_s", "retries", "violations", "failures"):
        if key in figures:
            shown.append(f"{key}={json.dumps(figures[key], default=str, sort_keys=True)}")
    return " ".join(shown)
