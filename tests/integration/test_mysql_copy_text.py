"""The MariaDB -> PostgreSQL and MariaDB -> MariaDB full loads read ``COPY`` text lines made by the
source server, through the ``mariadb`` client where it can and through pymysql otherwise: both must
load the same values and count the same substitutions, a client that cannot start must hand over to
pymysql, and the password must never be on the client's command line or left on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdc_platform.pipeline.full_load import FullLoadError
from cdc_platform.pipeline.mysql_client import CLIENT_VARIABLE, ClientResult, client_for
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import CopyJob
from tests.fidelity_cases import MARIADB_CASES, rows_of
from tests.pipeline_support import connection, copy_with_reader, create_target_table, write_specs
from tests.support import (
    mariadb_connect,
    mariadb_database,
    mariadb_global_sql_mode_with,
    pg_connect,
    pg_database,
    unique,
)

pytestmark = pytest.mark.integration
COPIES = 400  # the edge rows repeated, so the result spans many client read blocks


@pytest.fixture
def edge_job(stack, tmp_path, request):
    """A MariaDB table of every edge value (zero dates, NUL, escapes, latin1, blobs) and its empty
    target: PostgreSQL, or MariaDB when the test asks for it (``indirect`` parameter)."""
    target = getattr(request, "param", "postgresql")
    with mariadb_database(stack, "src") as src, pg_database(stack, "tgt") as pg_tgt, \
            mariadb_database(stack, "tgt") as my_tgt:  # fmt: skip
        columns = ", ".join(f"`{c.column}` {c.source_type}" for c in MARIADB_CASES)
        rows = rows_of(MARIADB_CASES, 1)
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute(f"CREATE TABLE edge (id int PRIMARY KEY, touch int, {columns})")
            for copy in range(COPIES):
                values = [row.replace("(", f"({copy * 100} + ", 1) for row in rows]
                cur.execute(f"INSERT INTO edge VALUES {', '.join(values)}")
        tgt, schema = (pg_tgt, "replica") if target == "postgresql" else (my_tgt, my_tgt)
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "mariadb", src), "tgt": connection(stack, target, tgt)},
            [{"name": unique("text"), "source": "src", "target": "tgt", "target_schema": schema,
              "mode": "full_load_only", "tables": {"names": [f"{src}.edge"]}}],
        )  # fmt: skip
        spec = next(iter(specs.pipelines.values())).spec
        table = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)[0]
        create_target_table(stack, target, tgt, "edge", table, "mariadb")
        yield specs, CopyJob(table, schema, "edge"), tgt


def _load(stack, specs, job, tgt, monkeypatch, client: str | None):
    return copy_with_reader(stack, specs, job, tgt, monkeypatch, CLIENT_VARIABLE, client)


@pytest.mark.parametrize("edge_job", ["postgresql", "mariadb"], indirect=True)
def test_the_client_and_pymysql_load_the_same_values_and_counts(stack, edge_job, monkeypatch):
    specs, job, tgt = edge_job
    to_pg = specs.connection("tgt").kind.value == "postgresql"
    monkeypatch.delenv(CLIENT_VARIABLE, raising=False)
    assert client_for(specs.connection("src"), specs.directory), "the stack installs the mariadb client"
    by_client, client_rows, client_log = _load(stack, specs, job, tgt, monkeypatch, client=None)
    by_pymysql, pymysql_rows, _ = _load(stack, specs, job, tgt, monkeypatch, client="none")
    assert not [m for m in client_log if "reading with pymysql" in m]
    assert by_client.rows == by_pymysql.rows == COPIES * 6 == len(client_rows)
    assert client_rows == pymysql_rows
    # zero dates in three columns, on each of the copies; NUL in two, which only PostgreSQL refuses
    assert by_client.substituted == by_pymysql.substituted
    nul = {"c_text": COPIES, "c_longtext": COPIES} if to_pg else {}
    assert by_client.substituted == {
        "c_date": 2 * COPIES,
        "c_datetime": 2 * COPIES,
        "c_timestamp": COPIES,
        **nul,
    }
    if not to_pg:  # MySQL's own values, NUL and all
        assert any(isinstance(v, str) and "\x00" in v for row in client_rows for v in row)


@pytest.mark.serial  # sets MariaDB's global sql_mode, which every new session takes
@pytest.mark.parametrize("edge_job", ["mariadb"], indirect=True)
def test_a_server_whose_sql_mode_has_no_backslash_escapes_loads_the_same_values(stack, edge_job, monkeypatch):
    """LOAD DATA's format is written with backslashes (tab, newline, the escape character), which
    ``NO_BACKSLASH_ESCAPES`` would read literally: the loading session takes it out of its mode."""
    specs, job, tgt = edge_job
    plain, plain_rows, _ = _load(stack, specs, job, tgt, monkeypatch, client=None)
    with mariadb_global_sql_mode_with(stack, "NO_BACKSLASH_ESCAPES"):
        strict, strict_rows, _ = _load(stack, specs, job, tgt, monkeypatch, client=None)
    assert strict.rows == plain.rows == COPIES * 6
    assert strict_rows == plain_rows and strict.substituted == plain.substituted


@pytest.mark.parametrize("edge_job", ["mariadb"], indirect=True)
def test_a_load_of_fewer_rows_than_the_source_sent_is_refused_and_the_target_kept(
    stack, edge_job, monkeypatch
):
    """Fault injected: LOAD DATA told to skip the first line, which it does without a warning."""
    from cdc_platform.pipeline import full_load
    from cdc_platform.pipeline.full_load import from_mysql

    specs, job, tgt = edge_job
    _stats, before, _ = _load(stack, specs, job, tgt, monkeypatch, client=None)
    monkeypatch.setattr(from_mysql, "LOAD_DATA_FORMAT", from_mysql.LOAD_DATA_FORMAT + " IGNORE 1 LINES")
    with pytest.raises(
        FullLoadError, match=f"the source sent {COPIES * 6:,} rows and LOAD DATA loaded {COPIES * 6 - 1:,}"
    ):
        full_load.copy_table(specs.connection("src"), specs.connection("tgt"), job, specs.directory,
                             log=lambda _m: None)  # fmt: skip
    with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{tgt}`.edge ORDER BY id")
        assert cur.fetchall() == before


def test_into_postgresql_a_copy_that_took_fewer_rows_than_the_lines_sent_is_refused(
    stack, edge_job, monkeypatch
):
    """Fault injected: a ``\\.`` line after the first block, where PostgreSQL's ``COPY`` ends its
    data and discards the rest without an error."""
    from cdc_platform.pipeline import full_load
    from cdc_platform.pipeline.full_load import from_mysql

    specs, job, tgt = edge_job
    _stats, before, _ = _load(stack, specs, job, tgt, monkeypatch, client=None)
    real = from_mysql.mysql_copy_text_blocks

    def cut_short(*args, **kwargs):
        for i, (block, rows) in enumerate(real(*args, **kwargs)):
            yield (block, rows) if i else (block + b"\\.\n", rows + 1)

    monkeypatch.setattr(from_mysql, "mysql_copy_text_blocks", cut_short)
    with pytest.raises(FullLoadError, match=f"the source sent {COPIES * 6 + 1:,} rows and COPY loaded "):
        full_load.copy_table(specs.connection("src"), specs.connection("tgt"), job, specs.directory,
                             log=lambda _m: None)  # fmt: skip
    with pg_connect(stack, tgt) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        assert conn.execute("SELECT count(*) FROM replica.edge").fetchone()[0] == len(before)


@pytest.mark.parametrize("client", ["/bin/false", "/nonexistent/mariadb"])
def test_a_client_that_cannot_start_hands_over_to_pymysql(client, stack, edge_job, monkeypatch):
    specs, job, tgt = edge_job
    stats, rows, logged = _load(stack, specs, job, tgt, monkeypatch, client=client)
    assert any(f"{client} could not read the table" in m and "reading with pymysql" in m for m in logged)
    assert stats.rows == len(rows) == COPIES * 6


def test_the_password_is_neither_on_the_command_line_nor_left_on_disk(stack, edge_job):
    specs, _job, _tgt = edge_job
    src = specs.connection("src")
    from cdc_platform.db import password_of

    password = password_of(src, specs.directory)
    result = ClientResult(client_for(src, specs.directory) or "mariadb", src, specs.directory, "SELECT 1")
    try:
        assert password not in " ".join(result.process.args)
        options = next(
            Path(a.split("=", 1)[1]) for a in result.process.args if a.startswith("--defaults-file=")
        )
        assert options.exists() and (options.stat().st_mode & 0o777) == 0o600
        assert b"".join(result.blocks()) == b"1\n"
    finally:
        result.close()
    assert not options.exists() and not os.path.exists(options.parent)
