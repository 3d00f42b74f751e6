"""Full loads from and to SQL Server, through pyodbc.

* SQL Server -> PostgreSQL / MySQL / MariaDB / SQL Server: a forward-only cursor read in batches
  (``fetchmany``), written by the target's own bulk path (PostgreSQL ``COPY ... write_row``, MySQL
  batched INSERTs into a shadow table, SQL Server ``fast_executemany``).
* PostgreSQL / MySQL / MariaDB -> SQL Server: the source's streaming read (a named cursor under the
  exported snapshot for PostgreSQL, an unbuffered cursor in a consistent snapshot for MySQL),
  written with ``fast_executemany`` INSERT batches after ``TRUNCATE TABLE`` in one transaction: a
  failed load leaves the target as it was (SQL Server's TRUNCATE is transactional).

Values follow cdc_platform/schema/rules.py: SQL Server's 100-ns digit is rounded to microseconds on
the server (``CAST(... AS datetime2(6))``) and counted; PostgreSQL's special values and dates outside
SQL Server's range become NULL and are counted, as are MySQL zero-in-date values.

No SQL Server runs on the machine this was written on: these paths are tested with a recording
DB-API connection standing in for pyodbc, against the real PostgreSQL and MariaDB on the other side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path

from cdc_platform.db import odbc_connect
from cdc_platform.pipeline.pg_rows import pg_rule_rows, unflag
from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.schema.rules import decimal_bounds, decimal_fits, rule_for, strip_nul

#: temporal types whose SQL Server values may carry a seventh fractional digit
SUB_MICROSECOND = {"time": "time(6)", "timestamp": "datetime2(6)"}

Row = list
Fixer = Callable[[object], object]


def sqlserver_select(table: Table) -> tuple[str, list[str]]:
    """The SELECT of a SQL Server source table and the columns whose 100-ns digit it rounds.

    Each such column is followed by a 0/1 flag saying whether its value had that digit, so the
    rounding is counted, not silent. datetimeoffset is read as its UTC wall time."""
    items, rounded = [], []
    for c in table.columns:
        col = quote("sqlserver", c.name)
        kind = c.type.name
        if kind in SUB_MICROSECOND or kind == "timestamptz":
            utc = f"SWITCHOFFSET({col}, '+00:00')" if kind == "timestamptz" else col
            cast = SUB_MICROSECOND.get(kind, "datetime2(6)")
            items.append(f"CAST({utc} AS {cast})")
            items.append(f"CASE WHEN DATEPART(nanosecond, {col}) % 1000 <> 0 THEN 1 ELSE 0 END")
            rounded.append(c.name)
        else:
            items.append(col)
    return f"SELECT {', '.join(items)} FROM {qualified('sqlserver', table.schema, table.name)}", rounded


def sqlserver_rows(src, job: CopyJob, specs_dir: Path, batch_size: int, target_kind: str,
                   substituted: dict[str, int], connect=None) -> Iterator[Row]:  # fmt: skip
    """Rows of a SQL Server table in the form ``target_kind`` receives them (rules applied, counted)."""
    t = job.table
    select, rounded = sqlserver_select(t)
    fixers = _sqlserver_fixers(t, target_kind, substituted)
    conn = (connect or odbc_connect)(src, specs_dir, autocommit=False)
    try:
        cur = conn.cursor()
        # READ COMMITTED, like Debezium's own SQL Server snapshot by default; with CDC, changes made
        # during the read are replayed by the sink afterwards, so the target converges
        cur.execute(select)
        while True:
            batch = cur.fetchmany(batch_size)
            if not batch:
                break
            for raw in batch:
                yield unflag(list(raw), t, rounded, substituted, fixers)
        conn.commit()
    finally:
        conn.close()


def _sqlserver_fixers(table: Table, target_kind: str, substituted: dict[str, int]) -> dict[int, Fixer]:
    fixers: dict[int, Fixer] = {}
    for i, c in enumerate(table.columns):
        kind = c.type.name
        if kind == "timestamptz" and target_kind == "postgresql":
            fixers[i] = lambda v: v.replace(tzinfo=dt.timezone.utc)
        elif kind in ("varchar", "char", "text") and target_kind == "postgresql":

            def drop_nul(v, name=c.name):
                stripped = strip_nul(v)
                if stripped is None:
                    return v
                substituted[name] = substituted.get(name, 0) + 1
                return stripped

            fixers[i] = drop_nul
        elif kind == "uuid" and target_kind != "sqlserver":
            fixers[i] = lambda v: str(v).lower()
    return fixers


def write_sqlserver(dst, job: CopyJob, specs_dir: Path, rows: Iterable[Row], batch_size: int,
                    tick: Callable[[int], None], connect=None) -> int:  # fmt: skip
    """TRUNCATE and INSERT in one transaction, ``fast_executemany`` batches: all rows or none."""
    target = qualified("sqlserver", job.target_schema, job.target_name)
    columns = ", ".join(quote("sqlserver", c.name) for c in job.table.columns)
    insert = f"INSERT INTO {target} ({columns}) VALUES ({', '.join('?' * len(job.table.columns))})"
    conn = (connect or odbc_connect)(dst, specs_dir, autocommit=False)
    count = 0
    try:
        cur = conn.cursor()
        cur.fast_executemany = True
        cur.execute(f"TRUNCATE TABLE {target}")
        batch: list[Row] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_size:
                cur.executemany(insert, batch)
                count += len(batch)
                batch = []
                tick(count)
        if batch:
            cur.executemany(insert, batch)
            count += len(batch)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    return count


# -- PostgreSQL -> SQL Server ------------------------------------------------------------------------
def _sqlserver_text(ctype) -> bool:
    return ctype.name in ("json", "jsonb", "uuid", "interval", "char")


def pg_rows_for_sqlserver(src, job: CopyJob, specs_dir: Path, snapshot: str | None, batch_size: int,
                          substituted: dict[str, int]) -> Iterator[Row]:  # fmt: skip
    rows = pg_rule_rows(src, job, specs_dir, snapshot, batch_size, "sqlserver", substituted, _sqlserver_text)
    fixers = _pg_fixers(job.table)
    for row in rows:
        yield [fixers[i](v) if i in fixers and v is not None else v for i, v in enumerate(row)]


def _pg_fixers(table: Table) -> dict[int, Fixer]:
    """psycopg values -> what pyodbc binds to the SQL Server column exactly."""
    fixers: dict[int, Fixer] = {}
    for i, c in enumerate(table.columns):
        kind = c.type.name
        if kind == "timestamptz":  # datetimeoffset(6): the UTC wall time, offset +00:00
            fixers[i] = lambda v: v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        elif kind == "binary":
            fixers[i] = bytes
    return fixers


# -- MySQL/MariaDB -> SQL Server -----------------------------------------------------------------------
def mysql_decimal_fixer(table: Table, substituted: dict[str, int]) -> dict[int, Fixer]:
    """A MySQL DECIMAL wider than SQL Server's 38 digits: values that do not fit become NULL, counted."""
    fixers: dict[int, Fixer] = {}
    for i, c in enumerate(table.columns):
        if c.type.name == "numeric" and rule_for("mysql", "sqlserver", c.type):
            precision, scale = decimal_bounds("sqlserver", c.type)

            def fit(v, name=c.name, precision=precision, scale=scale):
                if isinstance(v, Decimal) and decimal_fits(v, precision, scale):
                    return v
                substituted[name] = substituted.get(name, 0) + 1
                return None

            fixers[i] = fit
    return fixers
