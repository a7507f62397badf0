"""The batches of voucher codes the operator made, with how many were activated or
let lapse. The codes themselves were shown once and are kept only as hashes; a batch
is the codes made by one request (same instant, kind, face value, windows and note)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, case, func, select

from accrual.billing.adapters import tables as t
from accrual.clock import Clock

MAX_BATCHES = 200


@dataclass(frozen=True, slots=True)
class VoucherBatch:
    created_at: datetime
    kind: str
    face_minor: int
    currency: str
    validity_days: int
    redeem_by: datetime
    note: str | None
    made: int
    activated: int
    lapsed: int  # not activated by ``redeem_by``, which has passed

    @property
    def open(self) -> int:
        """Codes that can still be activated."""
        return self.made - self.activated - self.lapsed


class VoucherBatches:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def newest(self, limit: int = 50) -> list[VoucherBatch]:
        """The ``limit`` newest batches (at most :data:`MAX_BATCHES`), newest first."""
        limit = max(1, min(limit, MAX_BATCHES))
        c = t.voucher_codes
        now = self.clock.now()
        keys = (c.c.created_at, c.c.kind, c.c.face_minor, c.c.currency, c.c.validity_days,
                c.c.redeem_by, c.c.note)
        activated = func.sum(case((c.c.redeemed_at.is_not(None), 1), else_=0))
        lapsed = func.sum(case((and_(c.c.redeemed_at.is_(None), c.c.redeem_by <= now), 1),
                               else_=0))
        with self.engine.connect() as conn:
            rows = conn.execute(select(*keys, func.count().label("made"),
                                       activated.label("activated"), lapsed.label("lapsed"))
                                .group_by(*keys).order_by(c.c.created_at.desc())
                                .limit(limit)).all()
        return [VoucherBatch(row.created_at, row.kind, int(row.face_minor), row.currency,
                             int(row.validity_days), row.redeem_by, row.note, int(row.made),
                             int(row.activated or 0), int(row.lapsed or 0)) for row in rows]
