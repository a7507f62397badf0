"""Counting rules: raw usage → billable units, and the daily post-rules.

Pure and dependency-free so that collectors can compute billable units the
same way the metering engine does (reference-billing.md §2.3, decisions.md 4–7).

A usage record's ``quantity`` is in billable units unless its attributes carry
what a rule needs; then the rule converts:

- ``logs``: ``size_bytes`` (each of the ``quantity`` records has this size) and
  ``storage`` (``es``, default, or ``sls``): a record over the limit (10 KB on
  ES, 2 KB on SLS) counts ``floor(size / limit)``, any other counts 1;
- ``profile``: ``size_bytes`` of the analysis file, limit 300 KB;
- ``session_replay``: ``duration_seconds`` of the session, limit 4 h;
- ``trigger``: ``kind`` (detection kind) and ``window_minutes``: each run weighs
  its kind's calls plus ``ceil((window − 15) / 15)`` when the window exceeds
  15 minutes;
- ``trace``: ``spans`` reported alongside; the day bills ``max(spans / 10, traces)``;
- ``rum_pv``: ``resource``, ``long_task``, ``error``, ``action`` counts; the day
  bills ``max((resource + long_task + error + action) / 100, pv)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_ATTRIBUTE_VALUE = 10**15


@dataclass(frozen=True, slots=True)
class CountingSettings:
    """The counting constants decisions.md 4 makes settings."""

    kilobyte: int = 1024
    es_log_limit_kb: int = 10
    sls_log_limit_kb: int = 2
    profile_limit_kb: int = 300
    replay_limit_seconds: int = 4 * 3600
    trigger_free_window_minutes: int = 15
    trigger_window_step_minutes: int = 15


DEFAULT_COUNTING = CountingSettings()

TRIGGER_WEIGHTS: dict[str, int] = {
    "mutation": 5, "interval": 5, "outlier": 5, "log": 5,
    "intelligent_host": 10, "intelligent_log": 10, "intelligent_apm": 10,
    "intelligent_rum": 100,
    "query": 1, "generate_metrics": 1, "func": 1,
}
RUM_SIDE_COUNTS = ("resource", "long_task", "error", "action")

# Attributes each item's rules read; anything else is kept but not interpreted.
RULE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "logs": ("size_bytes", "storage"),
    "profile": ("size_bytes",),
    "session_replay": ("duration_seconds",),
    "trigger": ("kind", "window_minutes"),
    "trace": ("spans",),
    "rum_pv": RUM_SIDE_COUNTS,
}


# Items whose day is billed by a post-rule over a companion count.
POST_RULE_ITEMS = frozenset({"trace", "rum_pv"})


class RuleError(ValueError):
    """An attribute a rule needs is malformed; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Units:
    billable: int  # billable units of the item
    companion: int = 0  # spans (trace) or side events (rum_pv), for the post-rule


def split_count(size: int, limit: int) -> int:
    """floor(size / limit) with a minimum of 1 (decisions.md 4)."""
    return max(1, size // limit)


def trigger_weight(kind: str) -> int:
    return TRIGGER_WEIGHTS.get(kind, 1)


def window_surcharge(window_minutes: int, settings: CountingSettings = DEFAULT_COUNTING) -> int:
    """Extra calls for a detection window over 15 minutes: ceil((w − 15) / 15)."""
    excess = window_minutes - settings.trigger_free_window_minutes
    if excess <= 0:
        return 0
    step = settings.trigger_window_step_minutes
    return -(-excess // step)


def trigger_calls(kind: str, window_minutes: int | None,
                  settings: CountingSettings = DEFAULT_COUNTING) -> int:
    """Calls one run of a detection weighs (decisions.md 6: the surcharge is per run)."""
    return trigger_weight(kind) + (window_surcharge(window_minutes, settings)
                                   if window_minutes is not None else 0)


def _whole(attributes: Mapping[str, Any], name: str) -> int | None:
    value = attributes.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise RuleError(f"attribute {name} must be a whole number")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()) or len(value) > 16:
            raise RuleError(f"attribute {name} must be a whole number")
        value = int(value)
    elif isinstance(value, Decimal):
        if value != value.to_integral_value() or not value.is_finite():
            raise RuleError(f"attribute {name} must be a whole number")
        value = int(value)
    if not isinstance(value, int) or value < 0 or value > MAX_ATTRIBUTE_VALUE:
        raise RuleError(f"attribute {name} must be a whole number from 0 to {MAX_ATTRIBUTE_VALUE}")
    return value


def record_units(item: str, quantity: int, attributes: Mapping[str, Any] | None,
                 settings: CountingSettings = DEFAULT_COUNTING) -> Units:
    """Billable units of one usage record (``quantity`` raw things of ``item``)."""
    if not attributes:
        return Units(quantity)
    kb = settings.kilobyte
    if item == "logs":
        size = _whole(attributes, "size_bytes")
        storage = attributes.get("storage", "es")
        if storage not in ("es", "sls"):
            raise RuleError("attribute storage must be 'es' or 'sls'")
        if size is None:
            return Units(quantity)
        limit = (settings.es_log_limit_kb if storage == "es" else settings.sls_log_limit_kb) * kb
        return Units(quantity * split_count(size, limit))
    if item == "profile":
        size = _whole(attributes, "size_bytes")
        return Units(quantity if size is None
                     else quantity * split_count(size, settings.profile_limit_kb * kb))
    if item == "session_replay":
        seconds = _whole(attributes, "duration_seconds")
        return Units(quantity if seconds is None
                     else quantity * split_count(seconds, settings.replay_limit_seconds))
    if item == "trigger":
        kind = attributes.get("kind")
        window = _whole(attributes, "window_minutes")
        if kind is None and window is None:
            return Units(quantity)
        if kind is not None and (not isinstance(kind, str) or not 0 < len(kind) <= 64):
            raise RuleError("attribute kind must be a detection kind name")
        return Units(quantity * trigger_calls(kind or "", window, settings))
    if item == "trace":
        return Units(quantity, _whole(attributes, "spans") or 0)
    if item == "rum_pv":
        return Units(quantity, sum(_whole(attributes, name) or 0 for name in RUM_SIDE_COUNTS))
    return Units(quantity)


def daily_quantity(item: str, billable: Decimal | int, companion: Decimal | int) -> Decimal:
    """The day's billed quantity after the post-rules."""
    billable, companion = Decimal(billable), Decimal(companion)
    if item == "trace":
        return max(companion / 10, billable)
    if item == "rum_pv":
        return max(companion / 100, billable)
    return billable
