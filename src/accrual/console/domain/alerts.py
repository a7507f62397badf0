"""High-consumption alerts (decisions.md 20): when one fires and when it re-arms.

An alert fires once, when an item's daily amount first exceeds its threshold; it
re-arms after a day at or below the threshold (or when the threshold changes).
"""

from __future__ import annotations

from enum import Enum


class AlertStep(Enum):
    FIRE = "fire"  # armed and over the threshold: mail, then disarm
    REARM = "rearm"  # a day at or below the threshold
    HOLD = "hold"  # over the threshold, already fired: stay quiet


def alert_step(armed: bool, amount_minor: int, threshold_minor: int) -> AlertStep:
    """What a closed day's amount does to an alert."""
    if amount_minor > threshold_minor:
        return AlertStep.FIRE if armed else AlertStep.HOLD
    return AlertStep.REARM
