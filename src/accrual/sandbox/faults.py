"""Injected faults: queues of faults, each for a number of the next calls.

A test injects a fault for the next ``calls`` calls (of one operation, or of the
emulator's one faultable API); each call takes one from the head of its queue, and
a fault used up gives way to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

MAX_CALLS = 1000  # the most calls one injected fault may cover

KindT = TypeVar("KindT", bound=str)


@dataclass
class Fault(Generic[KindT]):
    kind: KindT  # each emulator names its own (throttling, internal_error, ...)
    calls: int  # how many of the next calls it still applies to


FaultT = TypeVar("FaultT", bound=Fault[Any])


def take(queue: list[FaultT]) -> FaultT | None:
    """The fault for this call, used up by it; None when the queue is spent."""
    while queue and queue[0].calls <= 0:
        queue.pop(0)
    if not queue:
        return None
    queue[0].calls -= 1
    return queue[0]
