"""The operator's console pages (`/operator/console/...`), over the operator API's services."""

from pathlib import Path

from accrual.console.operator_pages import days, rerates

TEMPLATES = Path(__file__).parent / "templates"
routers = [days.router, rerates.router]

__all__ = ["TEMPLATES", "routers"]
