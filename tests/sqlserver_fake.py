"""A recording stand-in for a pyodbc connection to SQL Server.

No SQL Server runs on this machine, so the full-load paths to and from it are exercised against
this fake: it records every statement, parameter batch, commit and rollback, and serves preset rows
to ``fetchmany``. It checks nothing a server would check (types, constraints); what it proves is
the SQL we send, the values we bind and the transaction we wrap them in.
"""

from __future__ import annotations


class RecordingCursor:
    def __init__(self, conn: RecordingOdbc):
        self.conn = conn
        self.fast_executemany = False
        self._pending: list[tuple] = []

    def execute(self, sql: str, *params):
        self.conn.log.append(("execute", sql, params))
        if sql.lstrip().upper().startswith("SELECT"):
            self._pending = list(self.conn.rows)
        return self

    def executemany(self, sql: str, rows):
        rows = [list(r) for r in rows]
        if self.conn.fail_on_batch is not None and len(self.conn.batches) == self.conn.fail_on_batch:
            raise RuntimeError("the server refused the batch")
        self.conn.log.append(("executemany", sql, len(rows)))
        self.conn.batches.append(rows)
        assert self.fast_executemany, "every batch is sent with fast_executemany"

    def fetchmany(self, size: int):
        batch, self._pending = self._pending[:size], self._pending[size:]
        return batch


class RecordingOdbc:
    def __init__(self, rows: list[tuple] | None = None, fail_on_batch: int | None = None):
        self.rows = rows or []
        self.fail_on_batch = fail_on_batch
        self.log: list[tuple] = []
        self.batches: list[list[list]] = []
        self.committed = self.rolled_back = self.closed = False
        self.autocommit: bool | None = None

    def __call__(self, conn, specs_dir, *, autocommit: bool = False, timeout: int = 10):
        """Stands in for ``cdc_platform.db.odbc_connect``."""
        self.autocommit = autocommit
        return self

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def commit(self) -> None:
        self.committed = True

    def rollback(self) -> None:
        self.rolled_back = True

    def close(self) -> None:
        self.closed = True

    @property
    def statements(self) -> list[str]:
        return [sql for kind, sql, _ in self.log if kind == "execute"]

    @property
    def written(self) -> list[list]:
        return [row for batch in self.batches for row in batch]
