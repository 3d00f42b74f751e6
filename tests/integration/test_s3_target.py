"""S3 as a target on the real stack (moto's S3 server): the full load writes the Parquet snapshot,
Debezium captures inserts, updates and deletes, the S3 writer sensor (ticked through Dagster) writes
change files, and the merged files equal the source table row by row, for PostgreSQL and MariaDB
sources. A writer that dies between writing a file and committing its offsets writes no row twice."""

from __future__ import annotations

import math
import pickle
import signal
import subprocess
import sys
import time

import boto3
import dagster as dg
import pytest
from click.testing import CliRunner

from cdc_platform.cli import cli
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.pipeline.lifecycle import Intent, control_of
from cdc_platform.pipeline.plan import PipelineNames, table_topic
from cdc_platform.s3.changes import S3Table
from cdc_platform.s3.latest import all_rows, read_latest
from cdc_platform.s3.snapshot import source_rows
from cdc_platform.s3.storage import TableLocation, list_files, s3_filesystem
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import CopyJob
from tests.faults import SlowWriter, TcpRelay, wait_task_state
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, pg_inserter, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket(stack, monkeypatch):
    monkeypatch.setenv("LAKE_KEY", "testing")
    monkeypatch.setenv("LAKE_SECRET", "testing")
    name = unique("lake").replace("_", "-")
    boto3.client("s3", endpoint_url=stack.s3_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=name)  # fmt: skip
    return {"kind": "s3", "bucket": name, "prefix": "cdc", "endpoint_url": stack.s3_url,
            "access_key_id": {"env": "LAKE_KEY"}, "secret_access_key": {"env": "LAKE_SECRET"}}  # fmt: skip


def comparable(value):
    """NaN equals NaN here, and -0.0 stays distinct from 0.0."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    return value


class Lake:
    """The pipeline's S3 side: its sensor ticked as the daemon ticks it, and its files read back."""

    def __init__(self, stack, specs, name: str, table: str):
        self.specs, self.name = specs, name
        self.defs = component_defs(specs)
        self.instance = dg.DagsterInstance.ephemeral()
        self.sensor = self.defs.get_sensor_def("cdc_s3_writer")
        self.settings = CdcSettingsResource(
            specs_dir=str(specs.directory), kafka_bootstrap=stack.kafka_bootstrap
        )
        spec = specs.pipelines[name].spec
        self.location = TableLocation.of(specs.connection("lake"), spec.target_schema, table)
        self.fs = s3_filesystem(specs.connection("lake"), specs.directory)
        self.materializations: list[dg.AssetMaterialization] = []
        self.cursor: str | None = None

    def tick(self, carry_cursor: bool = False):
        """One tick; ``carry_cursor``: with the previous tick's cursor, as the daemon ticks it."""
        context = dg.build_sensor_context(instance=self.instance, resources={"cdc_settings": self.settings},
                                          cursor=self.cursor if carry_cursor else None)  # fmt: skip
        result = self.sensor(context)
        if isinstance(result, dg.SensorResult) and result.cursor is not None:
            self.cursor = result.cursor
        if isinstance(result, dg.SensorResult):
            self.materializations += [
                e for e in result.asset_events if isinstance(e, dg.AssetMaterialization)
            ]
        return result

    def source_now(self, source: str, qualified: str) -> list[dict]:
        spec = self.specs.pipelines[self.name].spec
        (table,) = [t for t in discover_pipeline_tables(spec, self.specs.connection(source), self.specs.directory)
                    if t.qualified == qualified]  # fmt: skip
        names = [c.name for c in table.columns]
        rows = source_rows(
            self.specs.connection(source), CopyJob(table, "x", "x"), self.specs.directory, None, 1000, {}
        )
        return sorted(({n: comparable(v) for n, v in zip(names, row, strict=True)} for row in rows),
                      key=lambda r: r["id"])  # fmt: skip

    def latest(self) -> list[dict]:
        rows = read_latest(self.fs, self.location, ["id"]).to_pylist()
        return sorted(({k: comparable(v) for k, v in row.items()} for row in rows), key=lambda r: r["id"])

    def until_equal(self, source: str, qualified: str, timeout: float = 90.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        expected, got = None, None
        while time.monotonic() < deadline:
            self.tick()
            expected, got = self.source_now(source, qualified), self.latest()
            if expected == got:
                return got
            time.sleep(1)
        missing = [r for r in expected or [] if r not in (got or [])]
        extra = [r for r in got or [] if r not in (expected or [])]
        raise AssertionError(f"S3 never matched the source: missing={missing[:5]} extra={extra[:5]}")


KILLED_WRITER = """
import os, pickle, signal, sys
import cdc_platform.s3.changes as changes
target, specs_dir, bootstrap, pipeline, table = pickle.loads(open(sys.argv[1], "rb").read())
changes._commit = lambda consumer, offsets: os.kill(os.getpid(), signal.SIGKILL)
changes.flush_tables(target, specs_dir, bootstrap, pipeline, "mariadb", [table], print)
"""

PG_TABLE = """CREATE TABLE t (id int PRIMARY KEY, amount numeric(12,2), exact numeric, ratio float8, ok boolean,
  day date, at timestamptz, local timestamp, raw bytea, doc jsonb, ref uuid, clock time, span interval,
  code char(4), note text)"""
PG_ROWS = """INSERT INTO t VALUES
  (1, 12.50, 1e30, 'NaN', true, '2024-02-29', '2024-05-01 12:00:00.123456+02', '2024-05-01 12:00:00',
   '\\x00ff', '{"a": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '24:00:00', '1 day 2 hours', 'ab', 'first'),
  (2, 'NaN', 'NaN', '-Infinity', false, 'infinity', '-infinity', '0044-03-15 BC', NULL, NULL, NULL, NULL, NULL,
   NULL, NULL),
  (3, -0.01, 0.000000000000000000001, '-0', NULL, '0001-01-01', '9999-12-31 23:59:59.999999+00',
   '1970-01-01 00:00:00', '', 'null', NULL, '00:00:00.000001', '-1 mons', 'abcd', '')"""


def test_postgres_to_s3_full_load_and_changes_merge_to_the_source(
    stack, connect, tmp_path, bucket, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute(PG_TABLE)
            conn.execute(PG_ROWS)
        name = unique("lake")
        specs = write_specs(tmp_path, {"src": connection(stack, "postgresql", src), "lake": bucket},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        lake = Lake(stack, specs, name, "t")
        assets = next(a for a in lake.defs.assets if isinstance(a, dg.AssetsDefinition))
        assert not any(k.path[-1] == "sink_connector" for k in assets.keys)
        try:
            result = materialize(stack, specs, name, assets=assets, instance=lake.instance)
            table_event = next(e for e in result.get_asset_materialization_events()
                               if e.asset_key.path[-1] == "t").step_materialization_data.materialization  # fmt: skip
            assert table_event.metadata["dagster/row_count"].value == 3
            # NaN in a decimal column, and dates Parquet readers cannot take, are counted NULLs
            assert table_event.metadata["values_substituted"].value == 4
            assert [i.path.split("/")[-2:] for i in list_files(lake.fs, lake.location.root)] == [
                ["snapshot", "part-00000.parquet"]
            ]
            snapshot = lake.latest()
            assert snapshot == lake.source_now("src", "public.t")
            first = snapshot[0]
            assert first["ratio"] == "NaN" and first["exact"] == "1000000000000000000000000000000"
            assert first["clock"] == "24:00:00" and first["span"] == "P1DT2H" and first["code"] == "ab"
            assert (
                snapshot[1]["amount"] is None
                and snapshot[1]["day"] is None
                and snapshot[2]["ratio"] == "-0.0"
            )

            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t SELECT g, g / 7.0, g, g / 3.0, g % 2 = 0, date '2024-01-01' + g, "
                             "now(), localtimestamp, decode(md5(g::text), 'hex'), jsonb_build_object('g', g), "
                             "gen_random_uuid(), '12:30', make_interval(days => g), 'x', repeat('n', g % 50) "
                             "FROM generate_series(4, 300) g")  # fmt: skip
                conn.execute("UPDATE t SET note = 'updated', ratio = 'Infinity' WHERE id % 10 = 0")
                conn.execute("UPDATE t SET day = 'infinity' WHERE id = 11")
                conn.execute("DELETE FROM t WHERE id % 15 = 0 OR id = 2")
            lake.until_equal("src", "public.t")
            changed = [m for m in lake.materializations if m.asset_key.path[-1] == "t"]
            assert changed and sum(m.metadata["rows"].value for m in changed) == 297 + 30 + 1 + 21
            assert changed[-1].metadata["lag_messages"].value == 0
            assert (
                sum(m.metadata.get("values_substituted/day", dg.MetadataValue.int(0)).value for m in changed)
                >= 1
            )
            ops = {r["_cdc_op"] for r in all_rows(lake.fs, lake.location).to_pylist()}
            assert ops == {"r", "c", "u", "d"}
        finally:
            teardown(stack, connect, specs, name)


def test_a_writer_killed_between_upload_and_commit_writes_no_row_twice(stack, connect, tmp_path, bucket):
    with mariadb_database(stack, "src") as src:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id int PRIMARY KEY, price decimal(10,3), seen datetime(6), "
                        "at timestamp(6) NULL, flag bit(1), bits bit(5), note varchar(20), d date)")  # fmt: skip
            cur.execute("INSERT INTO t VALUES (1, 1.5, '2024-01-01 10:00:00.5', '2024-01-01 10:00:00', 1, b'10101', "
                        "'a\\0b', '2024-01-01')")  # fmt: skip
            conn.commit()
        name = unique("lake")
        specs = write_specs(tmp_path, {"src": connection(stack, "mariadb", src), "lake": bucket},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": [f"{src}.t"]}}])  # fmt: skip
        lake = Lake(stack, specs, name, "t")
        assets = next(a for a in lake.defs.assets if isinstance(a, dg.AssetsDefinition))
        try:
            materialize(stack, specs, name, assets=assets, instance=lake.instance)
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                for i in range(2, 202):
                    cur.execute("INSERT INTO t VALUES (%s, %s, now(6), now(6), %s, b'00011', %s, '2024-02-01')",
                                (i, i / 8, i % 2, f"row {i}"))  # fmt: skip
                cur.execute("UPDATE t SET note = 'changed' WHERE id BETWEEN 2 AND 51")
                cur.execute("DELETE FROM t WHERE id BETWEEN 60 AND 69")
                conn.commit()
            time.sleep(3)  # the changes reach Kafka

            # a real death: the writer process is SIGKILLed where it would commit, after its upload
            spec = specs.pipelines[name].spec
            (table,) = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)
            job = S3Table(table.qualified, table_topic(specs.connection("src"), PipelineNames(name), table.qualified),
                          table, lake.location)  # fmt: skip
            args = tmp_path / "flush.pickle"
            args.write_bytes(
                pickle.dumps((specs.connection("lake"), specs.directory, stack.kafka_bootstrap, name, job))
            )
            died = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(args)], capture_output=True, text=True,
                                  timeout=120)  # fmt: skip
            assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr
            written = list_files(lake.fs, lake.location.changes_dir(0))
            assert len(written) == 1, "the dead writer uploaded its file"
            lake.until_equal("src", f"{src}.t")
            recovered = [m for m in lake.materializations if "recovered_uncommitted_through" in m.metadata]
            assert recovered[0].metadata["recovered_uncommitted_through"].value == int(
                written[0].path.rsplit("-", 1)[1].split(".")[0]
            )
            assert recovered, "the next tick committed what the dead writer had written"
            rows = [r for r in all_rows(lake.fs, lake.location).to_pylist() if r["_cdc_op"] != "r"]
            seqs = [r["_cdc_seq"] for r in rows]
            assert len(seqs) == len(set(seqs)) == 200 + 50 + 10, "every change exactly once"
            assert lake.latest()[0]["note"] == "a\x00b"  # Parquet text keeps NUL
        finally:
            teardown(stack, connect, specs, name)


def unrefreshed_defs(specs) -> dg.Definitions:
    """The component's definitions as a user has them who never ran `cdc-platform refresh`."""
    from cdc_platform.dagster.component import CdcPipelineComponent

    component = CdcPipelineComponent.from_attributes_dict(attributes={"specs_dir": str(specs.directory)})
    return component.build_defs_from_state(None, specs.directory / "no-stored-catalog")  # type: ignore[arg-type]


WIDE = "CREATE TABLE t (id int PRIMARY KEY, d30 decimal(30,0), d38 decimal(38,8), d65 decimal(65,30), d10 decimal(10,2))"


def _wide_values(rng) -> tuple:
    def number(integer: int, fraction: int) -> str:
        sign = rng.choice(["", "-"])
        whole = str(rng.randrange(10 ** (integer - 1), 10**integer)) if integer else "0"
        return f"{sign}{whole}.{rng.randrange(10**fraction):0{fraction}d}" if fraction else sign + whole

    return (number(30, 0), number(30, 8), number(35, 30), number(8, 2))


def _mariadb_wide_rows(stack, db) -> list[dict]:
    """The source read independently of the platform: pymysql's exact Decimals."""
    with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, d30, d38, d65, d10 FROM t ORDER BY id")
        return [dict(zip(("id", "d30", "d38", "d65", "d10"), row, strict=True)) for row in cur.fetchall()]


def test_mariadb_decimals_of_65_digits_reach_s3_exactly_and_stream_without_a_refresh(
    stack, connect, tmp_path, bucket
):
    """Issue 37: decimals wider than 28 digits through CDC, on a pipeline nobody refreshed."""
    import random

    rng = random.Random(37)
    with mariadb_database(stack, "src") as src:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute(WIDE)
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s)",
                            [(i, *_wide_values(rng)) for i in range(1, 301)])  # fmt: skip
            cur.execute("INSERT INTO t VALUES (301, %s, %s, %s, NULL)",
                        ("-" + "9" * 30, "9" * 30 + ".99999999", "-" + "9" * 35 + "." + "9" * 30))  # fmt: skip
            conn.commit()
        name = unique("lake")
        specs = write_specs(tmp_path, {"src": connection(stack, "mariadb", src), "lake": bucket},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": [f"{src}.t"]}}])  # fmt: skip
        defs = unrefreshed_defs(specs)
        instance = dg.DagsterInstance.ephemeral()
        sensor = defs.get_sensor_def("cdc_s3_writer")
        settings = CdcSettingsResource(specs_dir=str(specs.directory), kafka_bootstrap=stack.kafka_bootstrap)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        location = TableLocation.of(specs.connection("lake"), "replica", "t")
        fs = s3_filesystem(specs.connection("lake"), specs.directory)
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s)",
                                [(i, *_wide_values(rng)) for i in range(302, 1001)])  # fmt: skip
                for i in rng.sample(range(1, 1001), 400):
                    cur.execute("UPDATE t SET d30 = %s, d38 = %s, d65 = %s, d10 = %s WHERE id = %s",
                                (*_wide_values(rng), i))  # fmt: skip
                cur.execute("DELETE FROM t WHERE id % 9 = 0")
                # the widest values each column holds, through CDC (rounded to 28 digits they overflowed)
                cur.execute("UPDATE t SET d30 = %s, d38 = %s, d65 = %s WHERE id IN (1, 2)",
                            ("9" * 30, "-" + "9" * 30 + ".99999999", "9" * 35 + "." + "9" * 30))  # fmt: skip
                conn.commit()
            expected = _mariadb_wide_rows(stack, src)
            time.sleep(2)  # the changes reach Kafka
            before = CliRunner().invoke(cli, ["status", name, "--specs", str(specs.directory)])
            assert (
                "S3 writer: 1 table(s) deployed;" in before.output and " 0 captured" not in before.output
            ), before.output
            deadline, got, events, cursor = time.monotonic() + 120, [], [], None
            while time.monotonic() < deadline:
                context = dg.build_sensor_context(
                    instance=instance, cursor=cursor, resources={"cdc_settings": settings}
                )
                result = sensor(context)
                cursor = result.cursor if isinstance(result, dg.SensorResult) else cursor
                events += result.asset_events if isinstance(result, dg.SensorResult) else []
                got = sorted(read_latest(fs, location, ["id"]).to_pylist(), key=lambda r: r["id"])
                if got == expected:
                    break
                time.sleep(1)
            missing = [r for r in expected if r not in got]
            extra = [r for r in got if r not in expected]
            assert got == expected, (
                f"{len(missing)} missing, {len(extra)} extra; e.g. {missing[:2]} / {extra[:2]}; last tick: {result}"
            )
            written = [e for e in events if isinstance(e, dg.AssetMaterialization)]
            assert sum(e.metadata["rows"].value for e in written) == 699 + 400 + 2 + len(range(9, 1001, 9))
            (check,) = [e for e in events if isinstance(e, dg.AssetCheckEvaluation)]  # reported once: it held
            assert check.passed and check.check_name == "changes_written", check.description
            after = CliRunner().invoke(cli, ["status", name, "--specs", str(specs.directory)])
            assert "S3 writer: 1 table(s) deployed; 0 captured change(s) not written yet" in after.output, (
                after.output
            )
        finally:
            teardown(stack, connect, specs, name)


def test_a_change_the_writer_cannot_write_stops_only_its_table_and_says_so(stack, connect, tmp_path, bucket):
    """Fault injected for real: the source widens a decimal column the Parquet files hold as
    decimal(10,2), then writes a value only the wider column holds. That table's changes stop at that
    change (those before it written, none skipped), its ``changes_written`` check fails as ERROR naming
    the column and the value's form, on each tick's report and on demand; the other table keeps flowing."""
    with mariadb_database(stack, "src") as src:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE narrow (id int PRIMARY KEY, price decimal(10,2))")
            cur.execute("CREATE TABLE fine (id int PRIMARY KEY, note varchar(20))")
            cur.execute("INSERT INTO narrow VALUES (1, 1.50)")
            cur.execute("INSERT INTO fine VALUES (1, 'a')")
            conn.commit()
        name = unique("lake")
        specs = write_specs(tmp_path, {"src": connection(stack, "mariadb", src), "lake": bucket},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": [f"{src}.narrow", f"{src}.fine"]}}])  # fmt: skip
        defs = unrefreshed_defs(specs)
        instance = dg.DagsterInstance.ephemeral()
        sensor = defs.get_sensor_def("cdc_s3_writer")
        settings = CdcSettingsResource(specs_dir=str(specs.directory), kafka_bootstrap=stack.kafka_bootstrap)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        lake = specs.connection("lake")
        fs = s3_filesystem(lake, specs.directory)
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO narrow VALUES (2, 2.50)")
                cur.execute("ALTER TABLE narrow MODIFY price decimal(20,2)")
                cur.execute("INSERT INTO narrow VALUES (3, 123456789012345.25)")
                cur.execute("INSERT INTO narrow VALUES (4, 4.00)")
                for i in range(2, 52):
                    cur.execute("INSERT INTO fine VALUES (%s, %s)", (i, f"row {i}"))
                conn.commit()
            deadline, events, cursor = time.monotonic() + 90, [], None
            fine_rows = []
            while time.monotonic() < deadline:
                context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                                  resources={"cdc_settings": settings})  # fmt: skip
                result = sensor(context)
                cursor = result.cursor if isinstance(result, dg.SensorResult) else cursor
                events += result.asset_events if isinstance(result, dg.SensorResult) else []
                fine_rows = read_latest(fs, TableLocation.of(lake, "replica", "fine"), ["id"]).to_pylist()
                failed = [e for e in events if isinstance(e, dg.AssetCheckEvaluation) and not e.passed]
                if len(fine_rows) == 51 and failed:
                    break
                time.sleep(1)
            assert len(fine_rows) == 51, "the other table kept flowing"
            (failure,) = [e for e in events if isinstance(e, dg.AssetCheckEvaluation) and not e.passed]
            assert failure.asset_key.path[-1] == "narrow" and failure.severity == dg.AssetCheckSeverity.ERROR
            assert "column 'price'" in failure.description, failure.description
            assert "a decimal of 15 integer and 2 fractional digits" in failure.description, (
                failure.description
            )
            assert "123456789012345" not in failure.description, "the value itself is never shown"
            narrow = sorted(read_latest(fs, TableLocation.of(lake, "replica", "narrow"), ["id"]).to_pylist(),
                            key=lambda r: r["id"])  # fmt: skip
            assert [r["id"] for r in narrow] == [1, 2], "written up to the change, nothing after it"

            # the next ticks do not report it again (the cursor remembers), and nothing is skipped
            for _ in range(2):
                context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                                  resources={"cdc_settings": settings})  # fmt: skip
                again = sensor(context)
                cursor = again.cursor if isinstance(again, dg.SensorResult) else cursor
                assert not [
                    e for e in getattr(again, "asset_events", []) if isinstance(e, dg.AssetCheckEvaluation)
                ]
            # on demand, through Dagster's asset job: the same judgement from a dry run
            checks = [c for c in defs.asset_checks if c.node_def.name == f"{name}_changes_written"]
            narrow_key = failure.asset_key
            run = dg.materialize([*checks, assets], selection=dg.AssetSelection.checks_for_assets(narrow_key),
                                 resources={"cdc_settings": settings, "kafka_connect": connect}, instance=instance, raise_on_error=False)  # fmt: skip
            (evaluation,) = run.get_asset_check_evaluations()
            assert not evaluation.passed and "column 'price'" in evaluation.description
        finally:
            teardown(stack, connect, specs, name)


def test_schema_changes_reach_s3_files_and_readers_see_one_table(
    stack, connect, tmp_path, bucket, monkeypatch
):
    """Under a writer of ~150 rows/s: a new column, a widened numeric and a dropped column are followed
    by the cdc_schema_changes sensor (no DDL; the deployed record changes, so the writer's next files
    carry the new shape). Rows written between a change and the sensor's tick wait in Kafka (the
    writer refuses to drop a column it does not know yet) and none is lost; the older files read with
    NULL for the new column and the widened decimals exactly; the latest view equals the source."""
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute(
                "CREATE TABLE t (id bigint PRIMARY KEY, amount numeric(10,2), price int, qty int, "
                "label varchar(10))"
            )
            conn.execute("INSERT INTO t SELECT g, g / 100.0, g, g, 'l' FROM generate_series(1, 100) g")
        name = unique("lake")
        specs = write_specs(tmp_path, {"src": connection(stack, "postgresql", src), "lake": bucket},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        lake = Lake(stack, specs, name, "t")
        assets = next(a for a in lake.defs.assets if isinstance(a, dg.AssetsDefinition))
        schema_sensor = lake.defs.get_sensor_def("cdc_schema_changes")
        resources = {"kafka_connect": connect, "cdc_settings": lake.settings}

        def follow() -> str:
            result = schema_sensor(dg.build_sensor_context(instance=lake.instance, resources=resources))
            return result.skip_reason.skip_message if result.skip_reason else ""

        def write(i: int) -> None:
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t (id, amount) SELECT g, g / 100.0 FROM generate_series(%s::bigint, "
                             "%s::bigint + 9) g", (1000 + i * 10, 1000 + i * 10))  # fmt: skip

        writer = SlowWriter(write, 0)
        try:
            materialize(stack, specs, name, assets=assets, instance=lake.instance)
            writer.start()
            lake.tick()
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ADD COLUMN note text")
                conn.execute("UPDATE t SET note = 'n' || id WHERE id % 3 = 0")
            lake.tick()  # the writer meets the new column before the sensor: it waits, writing nothing wrong
            assert "applied" in follow()
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ALTER COLUMN amount TYPE numeric(16,4)")
            assert "applied" in follow()
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET amount = 123456789012.3456 WHERE id % 4 = 0")
                conn.execute(
                    "ALTER TABLE t ALTER COLUMN qty TYPE bigint, ALTER COLUMN label TYPE varchar(200)"
                )
            assert "applied" in follow()
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET qty = 5000000000000, label = repeat('x', 150) WHERE id % 6 = 0")
                conn.execute("ALTER TABLE t DROP COLUMN price")
            assert "applied" in follow()
            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0 and writer.next_id > 5

            def source_rows() -> list[dict]:
                return lake.source_now("src", "public.t")

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                lake.tick()
                expected = source_rows()
                got = [{k: v for k, v in row.items() if k != "price"} for row in lake.latest()]
                if got == expected:
                    break
                time.sleep(1)
            assert got == expected, [r for r in expected if r not in got][:5]
            assert len(got) == 100 + writer.next_id * 10
            rows = all_rows(lake.fs, lake.location)
            assert {"note", "price", "amount"} <= set(rows.column_names)
            # the dropped column is kept in the files: values before the drop, NULL after it
            prices = {r["id"]: r["price"] for r in lake.latest()}
            assert prices[7] == 7 and all(prices[i] is None for i in prices if i >= 1000)
            assert str(rows.schema.field("amount").type) == "decimal128(16, 4)"
            assert str(rows.schema.field("qty").type) == "int64"

            # a change that is not a widening is held: the source connector pauses, the writer waits
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ALTER COLUMN amount TYPE text")
            assert "held" in follow()
            assert control_of(name).intent is Intent.PAUSED
            wait_task_state(connect, f"{name}-source", "PAUSED")
            refused = CliRunner().invoke(cli, ["apply-drift", name, "--specs", str(specs.directory), "--yes"])
            assert refused.exit_code != 0 and "cannot change a column's type" in refused.output, (
                refused.output
            )
        finally:
            writer.stop_event.set()
            teardown(stack, connect, specs, name)


S3_OUTAGE_SECONDS = 30


def test_an_s3_endpoint_outage_of_30_s_loses_no_change_and_writes_none_twice(
    stack, connect, tmp_path, bucket
):
    """Issue 34: the S3 endpoint unreachable for 30 s under a writer (the connection refused, open ones
    cut, as when it restarts; moto keeps its objects behind the relay). Each tick fails within seconds,
    the tables' check says why, nothing is committed, and the first tick after it writes every change
    once."""
    host, port = stack.s3_url.removeprefix("http://").split(":")
    relay = TcpRelay(host, int(port))
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g")
        name = unique("lake")
        specs = write_specs(tmp_path, {"src": connection(stack, "postgresql", src),
                                       "lake": {**bucket, "endpoint_url": relay.url}},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        lake = Lake(stack, specs, name, "t")
        assets = next(a for a in lake.defs.assets if isinstance(a, dg.AssetsDefinition))
        writer = SlowWriter(pg_inserter(stack, src), 101)
        try:
            materialize(stack, specs, name, assets=assets, instance=lake.instance)
            writer.start()
            time.sleep(2)
            lake.tick(carry_cursor=True)
            relay.cut()
            cut_until, outcomes, longest = time.monotonic() + S3_OUTAGE_SECONDS, [], 0.0
            while time.monotonic() < cut_until:
                started = time.monotonic()
                try:
                    result = lake.tick(carry_cursor=True)
                except Exception as exc:  # noqa: BLE001 - a failed tick is what the daemon records too
                    outcomes.append(f"tick failed: {exc}")
                else:
                    outcomes += [e.description for e in result.asset_events or []
                                 if isinstance(e, dg.AssetCheckEvaluation)]  # fmt: skip
                longest = max(longest, time.monotonic() - started)
                time.sleep(2)
            relay.restore()
            restored = time.monotonic()
            assert longest < 30, (
                f"a tick took {longest:.1f} s with the endpoint down (the sensor's limit is 60 s)"
            )
            assert any("the S3 writer's flush failed" in o for o in outcomes), outcomes
            assert any("tick failed: the S3 writer wrote nothing" in o for o in outcomes), outcomes
            assert "testing" not in " ".join(outcomes), "no key in what the writer reports"
            result = lake.tick(carry_cursor=True)
            first_tick_after = time.monotonic() - restored
            back = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
            assert back and back[0].passed, "the first tick after the outage writes, and says so"
            assert any(m.metadata["rows"].value > 0 for m in result.asset_events
                       if isinstance(m, dg.AssetMaterialization)), "changes written at the first tick"  # fmt: skip
            writer.stop_event.set()
            writer.join()
            lake.until_equal("src", "public.t")
            rows = [r for r in all_rows(lake.fs, lake.location).to_pylist() if r["_cdc_op"] != "r"]
            seqs = [r["_cdc_seq"] for r in rows]
            assert len(seqs) == len(set(seqs)) == writer.next_id - 101, "every change exactly once"
            print(f"S3 down {S3_OUTAGE_SECONDS} s: {writer.next_id - 101} changes; longest tick while down "
                  f"{longest:.1f} s; written {first_tick_after:.1f} s after it came back")  # fmt: skip
        finally:
            writer.stop_event.set()
            if not relay.listening:
                relay.restore()
            teardown(stack, connect, specs, name)
            relay.cut()
