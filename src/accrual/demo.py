"""A demo tenant for a fresh installation: the reference's worked example, billed."""

from __future__ import annotations

from datetime import timedelta

from accrual.app import Runtime
from accrual.clock import day_bounds, site_day

DEMO_EMAIL = "demo@example.com"
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"


def seed_demo(runtime: Runtime) -> dict[str, str] | None:
    """Register the demo tenant, credit 100.00 and bill yesterday's worked example.

    Does nothing when the console already has accounts."""
    console = runtime.console
    if console.accounts.count_accounts():
        return None
    registration = console.accounts.register(DEMO_EMAIL, DEMO_PASSWORD, DEMO_USERNAME,
                                             "Demo workspace", "en")
    runtime.billing.wallet.recharge(registration.billing_account_id, "100.00", "demo-seed")
    now = console.clock.now()
    yesterday = site_day(now, console.config.zone) - timedelta(days=1)
    start, _ = day_bounds(yesterday, console.config.zone)
    ws = registration.workspace_id
    usage = [
        ("timeseries", "6000", 3), ("logs", "2000000", 7), ("trace", "2000000", 3),
        ("rum_pv", "20000", 3), ("trigger", "20000", None),
    ]
    records = [
        {"id": f"demo-{item}", "workspace_id": ws, "item": item,
         "time": (start + timedelta(hours=10)).isoformat(), "quantity": quantity,
         **({"retention_days": tier} if tier else {})}
        for item, quantity, tier in usage
    ]
    console.ingestion.ingest(records)
    console.day_close.close_day(yesterday)
    console.relay.drain()
    return {"email": DEMO_EMAIL, "username": DEMO_USERNAME, "password": DEMO_PASSWORD,
            "workspace_id": ws, "billing_account_id": registration.billing_account_id,
            "ingest_key": registration.ingest_key, "day": yesterday.isoformat()}
