"""The operator's console pages (`/operator/console/...`), over the operator API's services."""

from pathlib import Path

from accrual.console.operator_pages.days import router

TEMPLATES = Path(__file__).parent / "templates"
routers = [router]

__all__ = ["TEMPLATES", "routers"]
