"""The day close: usage → daily statistics → billing details, with the outbox.

One entry point, :class:`DayClose` (wiring, the scheduler, the CLI and the operator
endpoints use it); its steps are the modules beside this one.
"""

from accrual.console.services.day_close.close import CloseResult, DayClose

__all__ = ["CloseResult", "DayClose"]
