"""Money moving on billing accounts, with the arrears rule applied every time.

Every movement that can change what an account owes (settling billing details,
recharges, gateway credits) goes through :class:`Movements`: the ledger writes the
entries (``ledger.post_many``, the one posting path; ``settling`` for billing
details, which posts through it too), then the arrears rule
(``Arrears.after_movement``) runs for the accounts they moved, in the same
transaction, under the row locks the posting took. No caller has to remember it.
Movements that cannot change arrears (buying a card from cash, granting a voucher,
writing off an expired one) may post through ``ledger`` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from accrual.billing.services import ledger, settling
from accrual.billing.services.arrears import Arrears
from accrual.contract.messages import Envelope


class Movements:
    def __init__(self, arrears: Arrears) -> None:
        self.arrears = arrears

    def post_many(self, conn: Connection, entries: Sequence[ledger.Entry], now: datetime, *,
                  with_instruments: bool = False) -> list[ledger.Posted]:
        """``ledger.post_many``, then the arrears rule for every owner of ``entries``
        (a replayed entry included: the rule is idempotent)."""
        posted = ledger.post_many(conn, entries, now, with_instruments=with_instruments)
        self.arrears.after_movement(conn, sorted({entry.owner for entry in entries}))
        return posted

    def post(self, conn: Connection, entry: ledger.Entry, now: datetime, *,
             with_instruments: bool = False) -> ledger.Posted:
        return self.post_many(conn, [entry], now, with_instruments=with_instruments)[0]

    def settle(self, conn: Connection, messages: Sequence[Envelope], currency: str,
               now: datetime) -> set[str]:
        """Settle billing details (``settling.settle``), then the arrears rule for the
        accounts they moved; those accounts."""
        moved = settling.settle(conn, messages, currency, now)
        if moved:
            self.arrears.after_movement(conn, sorted(moved))
        return moved
