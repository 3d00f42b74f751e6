"""Copy paths from a MySQL/MariaDB source: the server's COPY text lines relayed into COPY (PostgreSQL) or LOAD DATA (MySQL/MariaDB)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cdc_platform.db import pg_connect
from cdc_platform.pipeline.client_process import ClientUnavailable
from cdc_platform.pipeline.full_load.common import Progress, column_list, load_data_local, refuse_other_count
from cdc_platform.pipeline.full_load.pg_deferred_key import indexes_built_after
from cdc_platform.pipeline.load_errors import FullLoadError
from cdc_platform.pipeline.mysql_client import ClientResult, client_for
from cdc_platform.pipeline.mysql_copy_text import (
    LOAD_DATA_FORMAT,
    copy_text_select,
    load_data_columns,
    take_substitutions,
)
from cdc_platform.pipeline.mysql_rows import (
    SNAPSHOT_SCRIPT,
    mysql_batches,
)
from cdc_platform.pipeline.mysql_session import watch_session
from cdc_platform.schema.ddl import qualified, truncate_sql
from cdc_platform.schema.model import CopyJob


def mysql_copy_text_blocks(src, job: CopyJob, specs_dir: Path, batch_size: int, substituted: dict[str, int], log,
                     target_kind: str = "postgresql"):  # fmt: skip
    """Blocks of whole ``COPY`` text lines, rendered by the source server (``mysql_copy_text``) and
    read in one consistent snapshot, each with its row count; what the rules changed counted into
    ``substituted`` (``take_substitutions``).

    Read by the ``mariadb``/``mysql`` client in a second process where it can be (``mysql_client``),
    else by pymysql; the lines are the same bytes either way.
    """
    select = copy_text_select(job.table, target_kind)
    binary = client_for(src, specs_dir)
    if binary:
        try:
            result = ClientResult(binary, src, specs_dir, f"{SNAPSHOT_SCRIPT}; {select.sql}; COMMIT")
        except ClientUnavailable as exc:
            log(f"{job.table.qualified}: {binary} could not read the table ({exc}); reading with pymysql")
        else:
            yield from client_blocks(result, src, job, specs_dir, select, substituted)
            return
    yield from pymysql_blocks(src, job, specs_dir, batch_size, select, substituted)


def client_blocks(result: ClientResult, src, job: CopyJob, specs_dir: Path, select, substituted):
    cut: list[str] = []
    try:
        with watch_session(result.session, result.kill, src, specs_dir, cut, look_after_failure=False):
            for block in result.blocks():
                yield take_substitutions(block, select, substituted), block.count(b"\n")
    except Exception as exc:
        if cut:
            raise FullLoadError(f"{job.table.qualified}: {cut[0]}") from exc
        raise FullLoadError(f"{job.table.qualified}: reading the source failed: {exc}") from exc
    finally:
        result.close()


def pymysql_blocks(src, job: CopyJob, specs_dir: Path, batch_size: int, select, substituted):
    for batch in mysql_batches(src, job, specs_dir, select.sql, batch_size):
        block = b"\n".join([row[0] for row in batch]) + b"\n"
        yield take_substitutions(block, select, substituted), len(batch)


def mysql_to_pg(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """MySQL/MariaDB -> PostgreSQL: lines of ``COPY`` text made by the source server, relayed into
    ``COPY ... FROM STDIN`` after a TRUNCATE in the same transaction (all rows or none)."""
    t = job.table
    substituted: dict[str, int] = {}
    progress = Progress(t.qualified, log)
    rows = nbytes = 0
    target_q = qualified("postgresql", job.target_schema, job.target_name)
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL TIME ZONE 'UTC'")
        dcur.execute("SET LOCAL client_encoding = 'UTF8'")  # the lines are utf8mb4 bytes
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with indexes_built_after(dcur, target_q, t.qualified, log):
            with dcur.copy(f"COPY {target_q} ({column_list('postgresql', t)}) FROM STDIN") as into:
                for block, count in mysql_copy_text_blocks(src, job, specs_dir, batch_size, substituted, log):
                    into.write(block)
                    rows += count
                    nbytes += len(block)
                    progress.tick(rows)
            refuse_other_count(dcur.rowcount, rows, job)
        d.commit()
    return rows, nbytes, substituted


def mysql_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """MySQL/MariaDB -> MySQL/MariaDB: lines made by the source server (``mysql_copy_text``, MySQL's
    own value text) into ``LOAD DATA LOCAL INFILE`` (``load_data_local``); no row passes through
    Python objects."""
    substituted: dict[str, int] = {}
    columns, sets = load_data_columns(job.table)
    sent = [0]

    def blocks() -> Iterable[tuple[bytes, int]]:
        # each line is one row here: the server escapes newlines inside values
        for block, rows in mysql_copy_text_blocks(
            src, job, specs_dir, batch_size, substituted, log, dst.kind.value
        ):
            sent[0] += rows
            yield block, rows

    loaded, nbytes = load_data_local(dst, job, specs_dir, blocks, LOAD_DATA_FORMAT, columns, sets, log,
                                      sent_rows=lambda: sent[0])  # fmt: skip
    return loaded, nbytes, substituted
