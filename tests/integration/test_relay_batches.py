"""The relay walks a long backlog batch by batch, in order, skipping what it may not send yet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update

from accrual.app import Runtime
from accrual.clock import ManualClock
from accrual.console.adapters import tables as t
from accrual.contract.messages import Envelope
from accrual.infra.outbox import Relay, enqueue


def envelopes(count: int, at: datetime) -> list[Envelope]:
    return [Envelope(id=f"m-{n:03d}", type="relay.test", aggregate_id="a", occurred_at=at,
                     payload={"n": n}) for n in range(count)]


class Receiver:
    def __init__(self, refuse: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.refuse = refuse
        self.batches: list[list[str]] = []

    def __call__(self, messages: Sequence[Envelope]) -> list[str]:
        self.batches.append([m.id for m in messages])
        return [m.id for m in messages if m.id not in self.refuse]


def pending(runtime: Runtime) -> list[str]:
    with runtime.console.engine.connect() as conn:
        return list(conn.execute(select(t.outbox.c.message_id).where(t.outbox.c.sent_at.is_(None))
                                 .order_by(t.outbox.c.seq)).scalars())


def fill(runtime: Runtime, clock: ManualClock, count: int) -> list[Envelope]:
    messages = envelopes(count, clock.now())
    with runtime.console.engine.begin() as conn:
        conn.execute(update(t.outbox).values(sent_at=clock.now()))  # what registration left
        enqueue(conn, t.outbox, messages, clock.now())
    return messages


def test_a_backlog_is_drained_in_order_in_one_call(runtime: Runtime, clock: ManualClock) -> None:
    messages = fill(runtime, clock, 11)
    receiver = Receiver()
    relay = Relay(runtime.console.engine, t.outbox, receiver, clock, batch_size=3)
    assert relay.drain() == 11
    assert [m for batch in receiver.batches for m in batch] == [m.id for m in messages]
    assert all(len(batch) <= 3 for batch in receiver.batches)
    assert pending(runtime) == []
    assert relay.drain() == 0


def test_an_unacknowledged_message_stays_pending_and_the_rest_go(
        runtime: Runtime, clock: ManualClock) -> None:
    messages = fill(runtime, clock, 8)
    receiver = Receiver(refuse={messages[1].id})
    relay = Relay(runtime.console.engine, t.outbox, receiver, clock, batch_size=3)
    assert relay.drain() == 7
    assert pending(runtime) == [messages[1].id]
    receiver.refuse = set()
    assert relay.drain() == 1
    assert pending(runtime) == []


def test_messages_backing_off_wait_for_their_time(runtime: Runtime, clock: ManualClock) -> None:
    messages = fill(runtime, clock, 6)
    with runtime.console.engine.begin() as conn:
        conn.execute(update(t.outbox).where(t.outbox.c.message_id.in_(
            [messages[0].id, messages[4].id])).values(next_attempt_at=clock.now()
                                                      + timedelta(minutes=5)))
    receiver = Receiver()
    relay = Relay(runtime.console.engine, t.outbox, receiver, clock, batch_size=2)
    assert relay.drain() == 4
    assert pending(runtime) == [messages[0].id, messages[4].id]
    clock.advance(timedelta(minutes=6))
    assert relay.drain() == 2
    assert [m for batch in receiver.batches for m in batch][-2:] == [messages[0].id,
                                                                    messages[4].id]
