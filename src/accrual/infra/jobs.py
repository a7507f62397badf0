"""Job health: what each periodic job did last, and which of its units are failing.

A job (the day close of a site, a relay, the arrears tick, the mail sender) works
unit by unit (a workspace's day, a message, an account's case, a mail); a unit that
fails is contained: the job goes on with the others, and the failure is recorded
here, with its code (a stable error code, else the exception's type) and when the
unit is due to be tried again. ``/healthz`` and the operator jobs views read this
registry, and the log says the same when it is recorded.

The registry lives in the process; what must survive a restart is kept by the jobs
themselves in their own rows (the outboxes' attempts, next attempt and last error;
a failing workspace's day is kept in ``late_days`` until it is closed).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from accrual.clock import Clock

log = logging.getLogger("accrual.jobs")

# Units shown per job (the count of failing units is always complete).
SHOWN_UNITS = 50
# The error text kept per unit.
ERROR_CHARS = 500


def failure_code(error: BaseException | str) -> str:
    """A stable name for a failure: the error's own ``code`` (``ServiceError`` and its
    kin), else its exception type."""
    if isinstance(error, str):
        return error
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return code
    return type(error).__name__


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:ERROR_CHARS]


def backoff(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff with jitter: about base × 2^(attempts−1), capped, × 0.5–1."""
    delay = min(cap, base * (1 << min(max(attempts - 1, 0), 20)))
    return delay * (0.5 + random.random() / 2)


@dataclass
class UnitFailure:
    unit: str
    code: str
    error: str
    first_failed_at: datetime
    last_failed_at: datetime
    attempts: int
    next_attempt_at: datetime | None

    def view(self) -> dict[str, object]:
        return {"unit": self.unit, "code": self.code, "error": self.error,
                "attempts": self.attempts, "first_failed_at": self.first_failed_at.isoformat(),
                "last_failed_at": self.last_failed_at.isoformat(),
                "next_attempt_at": (self.next_attempt_at.isoformat()
                                    if self.next_attempt_at else None)}


@dataclass
class Job:
    name: str
    clock: Clock
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None  # the job as a whole failed in its last run
    runs: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    failing: dict[str, UnitFailure] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def run(self) -> Iterator[None]:
        """Around one run of the whole job: a run that raises is recorded (and re-raised);
        one that returns is a success when no unit is failing afterwards."""
        started = self.clock.now()
        try:
            yield
        except Exception as error:
            with self._lock:
                self.runs += 1
                self.last_run_at = started
                self.last_error = describe(error)
                self.failures[failure_code(error)] += 1
            log.error("job %s failed as a whole: %s", self.name, describe(error))
            raise
        with self._lock:
            self.runs += 1
            self.last_run_at = started
            self.last_error = None
            if not self.failing:
                self.last_success_at = started

    def unit_failed(self, unit: str, error: BaseException | str, *,
                    next_attempt_at: datetime | None = None, attempts: int | None = None,
                    code: str | None = None) -> UnitFailure:
        """Record that ``unit`` failed (once per attempt) and when it is tried again."""
        now = self.clock.now()
        text = describe(error) if isinstance(error, BaseException) else str(error)[:ERROR_CHARS]
        code = code or failure_code(error)
        with self._lock:
            self.failures[code] += 1
            found = self.failing.get(unit)
            if found is None:
                found = self.failing[unit] = UnitFailure(unit, code, text, now, now, 0, None)
            found.code, found.error, found.last_failed_at = code, text, now
            found.attempts = attempts if attempts is not None else found.attempts + 1
            found.next_attempt_at = next_attempt_at
        log.warning("job %s: %s failed (%s, attempt %d, next attempt %s): %s", self.name, unit,
                    code, found.attempts,
                    next_attempt_at.isoformat() if next_attempt_at else "next run", text)
        return found

    def unit_ok(self, unit: str) -> None:
        """``unit`` succeeded: it is no longer failing."""
        if unit not in self.failing:
            return
        with self._lock:
            gone = self.failing.pop(unit, None)
        if gone is not None:
            log.info("job %s: %s recovered after %d failed attempt(s)", self.name, unit,
                     gone.attempts)

    def units_ok(self, units: Iterator[str] | list[str] | set[str]) -> None:
        if self.failing:
            for unit in units:
                self.unit_ok(unit)

    def failure(self, unit: str) -> UnitFailure | None:
        return self.failing.get(unit)

    def due(self, unit: str, now: datetime) -> bool:
        """Whether a failing unit may be tried again now (a unit not failing always may)."""
        found = self.failing.get(unit)
        return found is None or found.next_attempt_at is None or found.next_attempt_at <= now

    @property
    def degraded(self) -> bool:
        return bool(self.failing) or self.last_error is not None

    def reason(self) -> str | None:
        if self.last_error is not None:
            return f"its last run failed: {self.last_error}"
        if self.failing:
            count = len(self.failing)
            first = next(iter(self.failing.values()))
            return (f"{count} unit(s) failing, e.g. {first.unit}: {first.code}")
        return None

    def view(self) -> dict[str, object]:
        with self._lock:
            failing = sorted(self.failing.values(), key=lambda f: (f.first_failed_at, f.unit))
            return {"job": self.name,
                    "status": "degraded" if self.degraded else "ok",
                    "runs": self.runs,
                    "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
                    "last_success_at": (self.last_success_at.isoformat()
                                        if self.last_success_at else None),
                    "last_error": self.last_error,
                    "failures": dict(sorted(self.failures.items())),
                    "failing_count": len(failing),
                    "failing": [f.view() for f in failing[:SHOWN_UNITS]]}


class JobHealth:
    """The jobs of one side (or of a whole process), by name."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def job(self, name: str) -> Job:
        found = self._jobs.get(name)
        if found is None:
            with self._lock:
                found = self._jobs.setdefault(name, Job(name, self.clock))
        return found

    def jobs(self) -> list[Job]:
        return [self._jobs[name] for name in sorted(self._jobs)]

    def degraded(self) -> list[Job]:
        return [job for job in self.jobs() if job.degraded]

    def view(self) -> list[dict[str, object]]:
        return [job.view() for job in self.jobs()]
