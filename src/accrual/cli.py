"""The `accrual` command: run, migrate, close-day, prices."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated

import typer
from rich.console import Console as RichConsole
from rich.table import Table

from accrual.app import Runtime, build
from accrual.settings import Settings

app = typer.Typer(help="Accrual: metering and billing for multi-workspace SaaS.",
                  no_args_is_help=True)
out = RichConsole(soft_wrap=True)


def _runtime() -> Runtime:
    runtime = build(Settings())
    runtime.migrate()
    return runtime


@app.command()
def run() -> None:
    """Migrate, seed a demo tenant on empty databases, and serve both sides."""
    import uvicorn

    from accrual.demo import seed_demo

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = _runtime()
    settings = runtime.settings
    demo = seed_demo(runtime) if settings.seed_demo else None
    base = f"http://{settings.host}:{settings.port}"
    out.print(f"[bold]Accrual[/bold] site {settings.site} ({settings.site_group}, "
              f"{settings.site_zone().key}) → billing center {settings.currency}")
    out.print(f"  API        {base}   docs {base}/docs   OpenAPI {base}/openapi.json")
    out.print(f"  databases  {settings.console_url()}  |  {settings.billing_url()}")
    note = " (generated, kept in the data dir)" if runtime.admin_token_generated else ""
    out.print(f"  operator token  {runtime.admin_token}{note}")
    if demo:
        out.print(f"  demo console login  {demo['email']} / {demo['password']}")
        out.print(f"  demo billing login  {demo['username']} / {demo['password']}")
        out.print(f"  demo workspace {demo['workspace_id']}  ingest key {demo['ingest_key']}")
        out.print(f"  demo billing account {demo['billing_account_id']} "
                  f"(100.00 credited, {demo['day']} billed)")
    else:
        out.print("  demo tenant: demo@example.com / demo (password demo-password), if seeded earlier")
    uvicorn.run(runtime.app, host=settings.host, port=settings.port, log_level="info",
                forwarded_allow_ips=settings.forwarded_allow_ips)


@app.command()
def migrate() -> None:
    """Bring both databases to the newest schema."""
    _runtime()
    out.print("both databases are up to date")


@app.command("close-day")
def close_day(day: Annotated[str, typer.Argument(help="The site-local day, YYYY-MM-DD")]) -> None:
    """Close a day for every workspace and deliver its details to the billing center."""
    runtime = _runtime()
    result = runtime.console.day_close.close_day(date.fromisoformat(day))
    delivered = runtime.console.relay.drain()
    out.print(f"{result.day}: {result.charges} charges, {result.adjustments} adjustments, "
              f"{delivered} messages delivered" + (" (already closed)" if result.already_closed else ""))


@app.command()
def rerate(
    first: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD")],
    reason: Annotated[str, typer.Option(help="Why: kept in the audit record")],
    actor: Annotated[str, typer.Option(help="Who: kept in the audit record")],
) -> None:
    """Price closed days again with the price book now configured; only the differences
    become adjustment details, delivered to the billing center."""
    from rich.progress import Progress

    runtime = _runtime()
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    with Progress(console=out) as progress:
        task = progress.add_task("re-rating", total=(end - start).days + 1)
        result = runtime.console.rerates.run(
            start, end, reason=reason, actor=actor,
            progress=lambda day, n: progress.update(
                task, completed=(day - start).days + 1, description=f"{day}: {n} adjustments"))
        progress.update(task, completed=(end - start).days + 1)
    delivered = runtime.console.relay.drain()
    out.print(f"re-rate #{result.id}: {result.days} closed days, {result.adjustments} "
              f"adjustments, {result.amount} in all; {delivered} messages delivered")


@app.command()
def prices(currency: str | None = None, site_group: str | None = None) -> None:
    """List the price book."""
    runtime = build(Settings())
    table = Table("book", "from", "currency", "group", "item", "tier", "unit price")
    for r in runtime.console.book.rows:
        if (currency and r.currency != currency) or (site_group and r.site_group != site_group):
            continue
        table.add_row(r.book, r.effective_from.isoformat(), r.currency, r.site_group, r.item,
                      str(r.retention_days), str(r.unit_price))
    out.print(table)


sandbox_app = typer.Typer(help="Local emulators of the cloud marketplaces.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("aws")
def sandbox_aws(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8100,
    window_hours: Annotated[int, typer.Option(help="Metering time window: 6 or 24")] = 6,
    token_ttl_seconds: Annotated[int, typer.Option(help="Registration token lifetime")] = 3600,
    dedupe: Annotated[str, typer.Option(help="DuplicateRecord key: hour or exact")] = "hour",
    max_allocations: Annotated[int, typer.Option(help="Allocations per record: 500 or 2500")] = 500,
) -> None:
    """Serve the AWS Marketplace emulator alone (boto3 endpoint: <base>/sandbox/aws)."""
    from datetime import timedelta

    import uvicorn

    from accrual.clock import SystemClock
    from accrual.sandbox.aws import AwsSandbox, SandboxConfig, create_app

    if window_hours not in (6, 24) or dedupe not in ("hour", "exact") or max_allocations not in (
            500, 2500) or not 1 <= token_ttl_seconds <= 7 * 86400:
        raise typer.BadParameter("window 6|24, dedupe hour|exact, allocations 500|2500, "
                                 "token TTL 1 s to 7 days")
    config = SandboxConfig(window=timedelta(hours=window_hours),
                           token_ttl=timedelta(seconds=token_ttl_seconds),
                           dedupe="hour" if dedupe == "hour" else "exact",
                           max_allocations=max_allocations)
    sandbox = AwsSandbox(SystemClock(), f"http://{host}:{port}", config=config)
    out.print(f"[bold]AWS Marketplace sandbox[/bold]  boto3 endpoint_url {sandbox.endpoint_url}")
    out.print(f"  control API {sandbox.endpoint_url}/control   docs http://{host}:{port}/docs")
    uvicorn.run(create_app(sandbox), host=host, port=port, log_level="info")


@sandbox_app.command("huawei")
def sandbox_huawei(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8101,
    access_key: Annotated[str, typer.Option(help="The seller's access key")] = "sandbox-access-key",
    secret_key: Annotated[str, typer.Option(help="The seller's secret key")] = "sandbox-secret-key",
    hex_case: Annotated[str, typer.Option(help="Activity signature hex: lower or upper")] = "lower",
    hmac_key: Annotated[str, typer.Option(help="HMAC key: access_key or secret_key")] = "access_key",
    require_body_sign: Annotated[bool, typer.Option(help="Check the ISV's Body-Sign")] = True,
) -> None:
    """Serve the Huawei KooGallery emulator alone (usage push endpoint: <base>/sandbox/huawei)."""
    import uvicorn

    from accrual.clock import SystemClock
    from accrual.sandbox.huawei import HuaweiSandbox, SandboxConfig, create_app

    if hex_case not in ("lower", "upper") or hmac_key not in ("access_key", "secret_key") or not (
            access_key and secret_key):
        raise typer.BadParameter("hex case lower|upper, HMAC key access_key|secret_key, "
                                 "non-empty keys")
    config = SandboxConfig(hex_case="upper" if hex_case == "upper" else "lower",
                           hmac_key="secret_key" if hmac_key == "secret_key" else "access_key",
                           require_body_sign=require_body_sign)
    sandbox = HuaweiSandbox(SystemClock(), f"http://{host}:{port}", access_key=access_key,
                            secret_key=secret_key, config=config)
    out.print(f"[bold]Huawei KooGallery sandbox[/bold]  endpoint {sandbox.endpoint_url}")
    out.print(f"  control API {sandbox.endpoint_url}/control   docs http://{host}:{port}/docs")
    uvicorn.run(create_app(sandbox), host=host, port=port, log_level="info")


@sandbox_app.command("aliyun")
def sandbox_aliyun(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8102,
) -> None:
    """Serve the Alibaba Cloud Marketplace emulators alone: China at <base>/sandbox/aliyun,
    International at <base>/sandbox/aliyun-intl."""
    import uvicorn

    from accrual.clock import SystemClock
    from accrual.sandbox.aliyun import CHINA, INTERNATIONAL, AliyunSandbox, create_app

    base = f"http://{host}:{port}"
    sites = [AliyunSandbox(SystemClock(), base, profile) for profile in (CHINA, INTERNATIONAL)]
    out.print("[bold]Alibaba Cloud Marketplace sandbox[/bold]")
    for site in sites:
        out.print(f"  {site.profile.name}: SDK endpoint {site.sdk_endpoint} (protocol http), "
                  f"AccessKeyId {site.config.access_key_id} secret "
                  f"{site.config.access_key_secret}, control API "
                  f"{site.endpoint_url}/control")
    uvicorn.run(create_app(*sites), host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()


@sandbox_app.command("azure")
def sandbox_azure(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8103,
    dedupe: Annotated[str, typer.Option(
        help="Duplicate key: resource_dimension, resource or resource_dimension_plan")
    ] = "resource_dimension",
    live_quirks: Annotated[bool, typer.Option(help="Answer as the live API was observed to, "
                                                   "not as documented")] = False,
) -> None:
    """Serve the Azure Marketplace emulator alone (API and Entra under <base>/sandbox/azure)."""
    import uvicorn

    from accrual.clock import SystemClock
    from accrual.sandbox.azure import AzureSandbox, SandboxConfig, create_app
    from accrual.sandbox.azure.state import Dedupe

    keys: dict[str, Dedupe] = {"resource_dimension": "resource_dimension",
                               "resource": "resource",
                               "resource_dimension_plan": "resource_dimension_plan"}
    if dedupe not in keys:
        raise typer.BadParameter("dedupe is resource_dimension, resource or "
                                 "resource_dimension_plan")
    config = SandboxConfig(dedupe=keys[dedupe], live_quirks=live_quirks)
    sandbox = AzureSandbox(SystemClock(), f"http://{host}:{port}", config=config)
    out.print(f"[bold]Azure Marketplace sandbox[/bold]  API {sandbox.endpoint_url}  "
              f"Entra {sandbox.login_url}")
    out.print(f"  control API {sandbox.endpoint_url}/control   docs http://{host}:{port}/docs")
    uvicorn.run(create_app(sandbox), host=host, port=port, log_level="info")
