"""The PostgreSQL -> PostgreSQL full load reads the source through psql where it is installed and
through psycopg otherwise: both must load the same bytes, a psql that cannot start must hand over
to psycopg, a source killed mid-copy must end the copy with its own error and leave the target as
it was, and the password must never be on psql's command line, in its environment, or left on
disk. The same reading into a MariaDB target must load the same rows whatever the server's
``sql_mode``, and a target that loaded fewer rows than the source sent must be refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdc_platform.db import password_of
from cdc_platform.pipeline.full_load import FullLoadError, copy_table
from cdc_platform.pipeline.pg_client import CLIENT_VARIABLE, PsqlCopyOut, psql_for
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import CopyJob
from tests.faults import killer
from tests.fidelity_cases import PG_CASES, rows_of
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
COPIES = 400
ROWS = COPIES * len(rows_of(PG_CASES, 1))  # the edge table's rows
#: text a CSV reader could take for NULL, or must read inside quotes, in the edge table's ``lookalike``
LOOKALIKES = ["NULL", "null", "", " lead and trail ", '"', '"quoted"', "a,b", "\\N", "NULL ", "line\nbreak",
              "cr\r", "N", None]  # fmt: skip


@pytest.fixture
def pg_job(stack, tmp_path, request):
    """A PostgreSQL table of every edge value plus text that COPY escapes, and its empty target:
    PostgreSQL, or MariaDB when the test asks for it (``indirect`` parameter). Every column is of a
    built-in type the PostgreSQL target shares, so that copy is binary; ``postgresql-text`` adds an
    enum column, which the target holds as text, so the copy is in text."""
    param = getattr(request, "param", "postgresql")
    target, enum = param.removesuffix("-text"), param.endswith("-text")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as pg_tgt, \
            mariadb_database(stack, "tgt") as my_tgt:  # fmt: skip
        columns = ", ".join(f'"{c.column}" {c.source_type}' for c in PG_CASES)
        rows = rows_of(PG_CASES, 1)
        with pg_connect(stack, src) as conn:
            conn.execute(f"CREATE TABLE edge (id int PRIMARY KEY, touch int, {columns}, "
                         "escapes text DEFAULT E'tab\\there\\nnew line\\\\ back\\rcr ü 😀', lookalike text)")  # fmt: skip
            if enum:
                conn.execute("CREATE TYPE mood AS ENUM ('calm', 'tab\tand\\')")
                conn.execute("ALTER TABLE edge ADD COLUMN feeling mood DEFAULT 'tab\tand\\'")
            names = ", ".join(["id", "touch", *(f'"{c.column}"' for c in PG_CASES)])
            for copy in range(COPIES):
                values = [row.replace("(", f"({copy * 100} + ", 1) for row in rows]
                conn.execute(f"INSERT INTO edge ({names}) VALUES {', '.join(values)}")
            conn.execute(
                "UPDATE edge SET lookalike = (%s::text[])[1 + id %% %s]", (LOOKALIKES, len(LOOKALIKES))
            )
        tgt, schema = (pg_tgt, "replica") if target == "postgresql" else (my_tgt, my_tgt)
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, target, tgt)},
            [{"name": unique("relay"), "source": "src", "target": "tgt", "target_schema": schema,
              "mode": "full_load_only", "tables": {"names": ["public.edge"]}}],
        )  # fmt: skip
        spec = next(iter(specs.pipelines.values())).spec
        table = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)[0]
        create_target_table(stack, target, tgt, "edge", table, "postgresql")
        yield specs, CopyJob(table, schema, "edge"), src, tgt


def _read(stack, db, schema) -> list:
    with pg_connect(stack, db) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        return conn.execute(f"SELECT e::text FROM {schema}.edge e ORDER BY id").fetchall()


def _load(stack, specs, job, tgt, monkeypatch, client: str | None):
    return copy_with_reader(stack, specs, job, tgt, monkeypatch, CLIENT_VARIABLE, client)


@pytest.mark.serial  # sets MariaDB's global sql_mode, which every new session takes
@pytest.mark.parametrize("pg_job", ["mariadb"], indirect=True)
def test_into_mariadb_a_sql_mode_with_no_backslash_escapes_loads_the_same_rows(stack, pg_job, monkeypatch):
    """The CSV format of LOAD DATA is written with a backslash (``LINES TERMINATED BY '\\n'``), which
    ``NO_BACKSLASH_ESCAPES`` would read literally: the loading session takes it out of its mode."""
    specs, job, _src, tgt = pg_job
    plain, plain_rows, _ = _load(stack, specs, job, tgt, monkeypatch, client=None)
    with mariadb_global_sql_mode_with(stack, "NO_BACKSLASH_ESCAPES"):
        strict, strict_rows, _ = _load(stack, specs, job, tgt, monkeypatch, client=None)
    assert strict.rows == plain.rows == len(plain_rows) > 0
    assert strict_rows == plain_rows and strict.substituted == plain.substituted


@pytest.mark.parametrize("pg_job", ["mariadb"], indirect=True)
def test_into_mariadb_text_that_looks_like_null_or_needs_quotes_arrives_unchanged(stack, pg_job, monkeypatch):
    """The CSV quotes only what needs it, and PostgreSQL quotes a text equal to the NULL string:
    MariaDB must read ``NULL`` unquoted as NULL and every text exactly, ``'NULL'`` included."""
    specs, job, src, tgt = pg_job
    _stats, rows, _logged = _load(stack, specs, job, tgt, monkeypatch, client=None)
    with pg_connect(stack, src) as conn:
        expected = conn.execute("SELECT id, lookalike FROM edge ORDER BY id").fetchall()
    at = [c.name for c in job.table.columns].index("lookalike")
    assert [(row[0], row[at]) for row in rows] == [tuple(row) for row in expected]
    assert {value for _, value in expected} == set(LOOKALIKES)


@pytest.mark.parametrize("pg_job", ["mariadb"], indirect=True)
def test_into_mariadb_psqls_direct_stream_and_the_psycopg_relay_load_the_same_rows_and_counts(
    stack, pg_job, monkeypatch
):
    """With psql, LOAD DATA reads psql's output itself and the rows are counted beside it; without,
    psycopg's rows are relayed through a FIFO. Same rows, same substitution counts, the source's
    row count; and a psql that cannot start hands over to the relay before the target is touched."""
    specs, job, src, tgt = pg_job
    direct, direct_rows, direct_log = _load(stack, specs, job, tgt, monkeypatch, client=None)
    relayed, relayed_rows, relayed_log = _load(stack, specs, job, tgt, monkeypatch, client="none")
    failed, failed_rows, failed_log = _load(stack, specs, job, tgt, monkeypatch, client="/bin/false")
    assert any("LOAD DATA reads psql's output directly" in m for m in direct_log), direct_log
    assert not any("directly" in m for m in relayed_log + failed_log)
    assert any("/bin/false could not read the table" in m and "reading with psycopg" in m for m in failed_log)
    assert direct_rows == relayed_rows == failed_rows and len(direct_rows) == ROWS
    assert direct.rows == relayed.rows == failed.rows == ROWS
    assert direct.substituted == relayed.substituted == failed.substituted and direct.substituted
    assert direct.bytes and direct.bytes > ROWS


@pytest.mark.parametrize("pg_job", ["mariadb"], indirect=True)
def test_into_mariadb_a_count_that_fails_beside_the_direct_load_fails_the_copy_and_keeps_the_target(
    stack, pg_job, monkeypatch
):
    """The rows are counted on a thread while LOAD DATA reads psql's output: when that count fails
    (here: the source refuses it), the load must not commit without it, and must say why."""
    from cdc_platform.pipeline.full_load import from_postgresql

    specs, job, _src, tgt = pg_job
    monkeypatch.delenv(CLIENT_VARIABLE, raising=False)
    copy_table(specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _m: None)
    before = _target_rows(stack, "mariadb", tgt, job.target_schema)

    def refused(cur, table, target_kind):
        cur.execute("SELECT 1 / 0")  # the source's own error, raised on the counting thread

    monkeypatch.setattr(from_postgresql, "pg_row_and_substitution_counts", refused)
    with pytest.raises(FullLoadError, match="counting the source's rows failed: division by zero"):
        copy_table(
            specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _m: None
        )
    assert _target_rows(stack, "mariadb", tgt, job.target_schema) == before
    with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert [r[0] for r in cur.fetchall()] == ["edge"], "the shadow table is cleaned up"


def _target_rows(stack, target: str, tgt: str, schema: str) -> list:
    if target == "postgresql":
        return _read(stack, tgt, schema)
    with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM `{tgt}`.edge ORDER BY id")
        return cur.fetchall()


def _first_row_only(block: bytes) -> bytes:
    """A binary ``COPY`` stream's header and first row, without the trailer: a stream that ends
    between rows, which ``COPY FROM`` takes as its end without an error."""
    pos = 19 + int.from_bytes(block[15:19], "big")  # signature, flags, header extension
    fields = int.from_bytes(block[pos : pos + 2], "big")
    pos += 2
    for _ in range(fields):
        size = int.from_bytes(block[pos : pos + 4], "big", signed=True)
        pos += 4 + max(size, 0)
    return block[:pos]


@pytest.mark.serial  # sets MariaDB's global sql_mode, which every new session takes
@pytest.mark.parametrize("pg_job", ["postgresql", "postgresql-text", "mariadb"], indirect=True)
def test_a_load_of_fewer_rows_than_the_source_sent_is_refused_and_the_target_kept(stack, pg_job, monkeypatch):
    """Faults injected where each target drops rows without an error or a warning: PostgreSQL's
    text ``COPY`` ends its data at a ``\\.`` line and discards the rest, its binary ``COPY`` ends at a
    stream that stops between two rows; MariaDB's ``LOAD DATA`` under ``NO_BACKSLASH_ESCAPES`` (the
    session's fix undone) reads the CSV as one row. The CSV holds newlines inside values and binary
    rows cannot be counted in the stream, so the count compared is the source's row count (read in
    the copy's snapshot), not the stream's lines."""
    from cdc_platform.pipeline.full_load import common, from_postgresql

    specs, job, _src, tgt = pg_job
    target = specs.connection("tgt").kind.value
    logged: list[str] = []
    copy_table(specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append)
    before = _target_rows(stack, target, tgt, job.target_schema)
    assert len(before) == ROWS
    if target == "postgresql":
        binary = any("copying in PostgreSQL's binary format" in m for m in logged)
        assert binary == (job.table.columns[-1].name != "feeling"), logged
        real_blocks = from_postgresql.pg_copy_blocks

        def cut_short(*args, **kwargs):
            blocks = real_blocks(*args, **kwargs)
            first = next(blocks)
            if binary:
                for _ in blocks:  # read to the end, so the source's client ends cleanly
                    pass
                yield _first_row_only(first)
            else:
                yield first + b"\\.\n"
                yield from blocks

        monkeypatch.setattr(from_postgresql, "pg_copy_blocks", cut_short)
        refused = f"the source sent {ROWS:,} rows and COPY loaded 1;" if binary else "COPY loaded"
    else:
        # the fault this check was written after: the loading session left in the server's
        # NO_BACKSLASH_ESCAPES, where the CSV's line terminator reads as two characters
        monkeypatch.setattr(common, "LOAD_SESSION", "SET SESSION time_zone = '+00:00'")
        refused = f"the source sent {ROWS:,} rows and LOAD DATA loaded "
    with (
        mariadb_global_sql_mode_with(stack, "NO_BACKSLASH_ESCAPES"),
        pytest.raises(FullLoadError, match=refused),
    ):
        copy_table(
            specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _m: None
        )
    assert _target_rows(stack, target, tgt, job.target_schema) == before


@pytest.mark.parametrize("pg_job", ["postgresql", "postgresql-text"], indirect=True)
def test_psql_and_psycopg_load_the_same_bytes_as_the_source(stack, pg_job, monkeypatch):
    specs, job, src, tgt = pg_job
    monkeypatch.delenv(CLIENT_VARIABLE, raising=False)
    assert psql_for(), "the stack installs psql"
    monkeypatch.setenv("PGPASSWORD", "not-the-password")  # libpq would prefer it to the passfile
    by_psql, psql_rows, psql_log = _load(stack, specs, job, tgt, monkeypatch, client=None)
    by_psycopg, psycopg_rows, _ = _load(stack, specs, job, tgt, monkeypatch, client="none")
    assert not [m for m in psql_log if "reading with psycopg" in m]
    text = job.table.columns[-1].name == "feeling"
    assert f"{job.table.qualified}: copying in PostgreSQL's {'text' if text else 'binary'} format" in psql_log
    source = _read(stack, src, "public")
    assert by_psql.rows == by_psycopg.rows == len(source) > COPIES
    assert psql_rows == psycopg_rows == source


@pytest.mark.parametrize("client", ["/bin/false", "/nonexistent/psql"])
def test_a_psql_that_cannot_start_hands_over_to_psycopg(client, stack, pg_job, monkeypatch):
    specs, job, src, tgt = pg_job
    stats, rows, logged = _load(stack, specs, job, tgt, monkeypatch, client=client)
    assert any(f"{client} could not read the table" in m and "reading with psycopg" in m for m in logged)
    assert rows == _read(stack, src, "public") and stats.rows == len(rows)


def test_a_source_killed_mid_copy_ends_it_with_its_error_and_keeps_the_target(stack, tmp_path, monkeypatch):
    monkeypatch.delenv(CLIENT_VARIABLE, raising=False)
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 3000000) g")
        with pg_connect(stack, tgt) as conn:
            conn.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO big VALUES (1, 'kept')")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": unique("kill"), "source": "src", "target": "tgt", "target_schema": "public",
              "mode": "full_load_only", "tables": {"names": ["public.big"]}}],
        )  # fmt: skip
        spec = next(iter(specs.pipelines.values())).spec
        table = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)[0]

        def kill() -> bool:
            with pg_connect(stack) as admin:
                return bool(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'cdc-platform full load' AND query LIKE 'COPY%%' AND datname = %s",
                    (src,),
                ).fetchall())  # fmt: skip

        killer(kill, delay=0.5)
        with pytest.raises(FullLoadError, match="public.big: reading the source failed: "):
            copy_table(specs.connection("src"), specs.connection("tgt"), CopyJob(table, "public", "big"),
                       specs.directory, log=lambda _m: None)  # fmt: skip
        with pg_connect(stack, tgt) as conn:
            assert conn.execute("SELECT id, v FROM big").fetchall() == [(1, "kept")]


def test_the_password_is_not_on_the_command_line_in_the_environment_or_left_on_disk(
    stack, pg_job, monkeypatch
):
    specs, _job, _src, _tgt = pg_job
    source = specs.connection("src")
    password = password_of(source, specs.directory)
    monkeypatch.setenv("PGPASSWORD", password)
    reader = PsqlCopyOut(psql_for() or "psql", source, specs.directory, ["COPY (SELECT 1) TO STDOUT"])
    try:
        assert password not in " ".join(reader.process.args)
        passfile = Path(
            next(a for a in reader.process.args if "passfile=" in a)
            .split("passfile='", 1)[1]
            .split("'", 1)[0]
        )
        assert passfile.exists() and (passfile.stat().st_mode & 0o777) == 0o600
        assert b"".join(reader.blocks()) == b"1\n"
    finally:
        reader.close()
    assert not passfile.exists() and not os.path.exists(passfile.parent)


@pytest.mark.parametrize("pg_job", ["mariadb"], indirect=True)
def test_into_mariadb_ranges_of_pages_loaded_at_once_load_the_same_rows_as_one_stream(
    stack, pg_job, monkeypatch
):
    """``streams: 3`` splits the table into three ranges of its heap pages, each read by its own psql
    in the copy's one snapshot and loaded by its own LOAD DATA session. The edge table's rows were
    updated after they were inserted, so they are spread over the pages out of key order: every row
    must still arrive exactly once, with the one-stream copy's values and substitution counts."""
    from dataclasses import replace

    from cdc_platform.pipeline.full_load import from_postgresql

    specs, job, _src, tgt = pg_job
    monkeypatch.setattr(from_postgresql, "PAGES_PER_STREAM", 1)  # the small table splits too
    one, one_rows, _ = _load(stack, specs, job, tgt, monkeypatch, client=None)
    three, three_rows, logged = _load(stack, specs, replace(job, streams=3), tgt, monkeypatch, client=None)
    assert any("3 ranges of its pages at once" in m for m in logged), logged
    assert three_rows == one_rows and len(three_rows) == ROWS == three.rows == one.rows
    assert three.substituted == one.substituted and three.substituted
    assert three.bytes and one.bytes and three.bytes == one.bytes
