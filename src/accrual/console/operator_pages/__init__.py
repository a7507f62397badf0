"""The operator's console pages (`/operator/console/...`), over the operator API's services."""

from pathlib import Path

from accrual.console.operator_pages import catalog, days, rerates

TEMPLATES = Path(__file__).parent / "templates"
routers = [days.router, rerates.router, catalog.router]

__all__ = ["TEMPLATES", "routers"]
