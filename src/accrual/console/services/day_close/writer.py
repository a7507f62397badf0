"""Storing the rows of a close while the next part is priced."""

from __future__ import annotations

import queue
import threading

from sqlalchemy import Connection

from accrual.console.services.day_close.rows import CloseRows


class RowWriter:
    """Stores the rows of a close on its connection: on PostgreSQL from a thread of its own,
    one part at a time and in order, while the caller prices the next part (the caller
    does not use the connection meanwhile); elsewhere at once."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.threaded = conn.dialect.name == "postgresql"
        self.queue: queue.Queue[CloseRows | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> RowWriter:
        if self.threaded:
            self.thread = threading.Thread(target=self._run, name="day-close-writer",
                                           daemon=True)
            self.thread.start()
        return self

    def put(self, rows: CloseRows) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is None:
            rows.write(self.conn)
        else:
            self.queue.put(rows)

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
        if self.error is not None and value is None:
            raise self.error

    def _run(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                try:
                    rows.write(self.conn)
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    self.error = error

