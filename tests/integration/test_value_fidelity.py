"""No value changes silently: edge values of each source engine, four pairs, full load and CDC.

For every pair, the same edge values are written once before the pipeline is materialized (they
travel through the full load) and once after (they travel through CDC, then are updated so the
update's before and after images travel too). Each value must arrive exactly, or, where the pair
has a rule (cdc_platform/schema/rules.py), as NULL in both paths and counted on the table's asset.
The outcomes form the README's fidelity matrix: with CDC_WRITE_MATRIX=1 the test writes it there,
otherwise it fails when the README's matrix is out of date.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from decimal import Decimal
from pathlib import Path

import boto3
import dagster as dg
import pytest

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.quality.checksum import reconcile_pipeline_table
from cdc_platform.s3.latest import read_latest
from cdc_platform.s3.storage import TableLocation, s3_filesystem
from cdc_platform.schema.rules import rules_for
from cdc_platform.schema.types import CanonicalType
from tests.fidelity_cases import (
    MARIADB_CASES,
    MATRIX_END,
    MATRIX_START,
    PG_CASES,
    mysql_read_expr,
    normalise,
    pg_read_expr,
    render_matrix,
    rows_of,
)
from tests.pipeline_support import connection, materializations, materialize, teardown, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
CDC_OFFSET = 1000
PAIRS = (
    "postgresql->postgresql",
    "postgresql->mariadb",
    "mariadb->postgresql",
    "mariadb->mariadb",
    "postgresql->s3",
    "mariadb->s3",
    # the S3 target with table_format iceberg: its current-state table, merged from the change log
    "postgresql->iceberg",
    "mariadb->iceberg",
)


def _read_pg(stack, db, schema, cases, interval_style):
    exprs = ", ".join(pg_read_expr(c, f'"{c.column}"') for c in cases)
    with pg_connect(stack, db) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET intervalstyle = '{interval_style}'")
        rows = conn.execute(f'SELECT id, touch, {exprs} FROM "{schema}".edge ORDER BY id').fetchall()
    return {r[0]: (r[1], [normalise(c, v) for c, v in zip(cases, r[2:], strict=True)]) for r in rows}


def _read_mariadb(stack, db, cases):
    exprs = ", ".join(mysql_read_expr(c, f"`{c.column}`") for c in cases)
    with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, touch, {exprs} FROM `{db}`.edge ORDER BY id")
        rows = cur.fetchall()
    return {r[0]: (r[1], [normalise(c, v) for c, v in zip(cases, r[2:], strict=True)]) for r in rows}


def s3_text(case, value) -> str | None:
    """A value read from the merged S3 files, as the source's own text read shows it (then normalised
    like every other value): the comparison stays the strict one of the database targets."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | Decimal):
        return value.isoformat() if isinstance(value, dt.date) else format(value, "f")
    return str(value)


class _Lake:
    """An S3 target on the stack's S3 server; its writer sensor ticked as the daemon ticks it, on a
    pipeline nobody refreshed."""

    def __init__(self, stack, directory: Path, iceberg: bool = False):
        os.environ.setdefault("LAKE_KEY", "testing")
        os.environ.setdefault("LAKE_SECRET", "testing")
        self.stack, self.bucket = stack, unique("fid").replace("_", "-")
        boto3.client("s3", endpoint_url=stack.s3_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=self.bucket)  # fmt: skip
        self.connection = {"kind": "s3", "bucket": self.bucket, "prefix": "cdc", "endpoint_url": stack.s3_url,
                           "access_key_id": {"env": "LAKE_KEY"}, "secret_access_key": {"env": "LAKE_SECRET"}}  # fmt: skip
        if iceberg:
            self.connection["table_format"] = "iceberg"
        self.iceberg = iceberg
        self.cursor = None

    def start(self, specs, name: str) -> None:
        from cdc_platform.dagster.component import CdcPipelineComponent

        component = CdcPipelineComponent.from_attributes_dict(attributes={"specs_dir": str(specs.directory)})
        defs = component.build_defs_from_state(None, specs.directory / "never-refreshed")  # type: ignore[arg-type]
        self.assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        self.merge_assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.node_def.name.endswith(
            "_current_state")]  # fmt: skip
        self.sensor = defs.get_sensor_def("cdc_s3_writer")
        self.instance = dg.DagsterInstance.ephemeral()
        self.settings = CdcSettingsResource(
            specs_dir=str(specs.directory), kafka_bootstrap=self.stack.kafka_bootstrap
        )
        lake = specs.connection("tgt")
        self.location = TableLocation.of(lake, "replica", "edge")
        self.fs = s3_filesystem(lake, specs.directory)
        self.problems: list[str] = []

    def read(self, cases, source_kind: str) -> dict:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"cdc_settings": self.settings})  # fmt: skip
        result = self.sensor(context)
        if isinstance(result, dg.SensorResult):
            self.cursor = result.cursor or self.cursor
            self.problems += [e.description for e in result.asset_events
                              if isinstance(e, dg.AssetCheckEvaluation) and not e.passed]  # fmt: skip
        if self.iceberg:
            from cdc_platform.s3.iceberg_catalog import lake_catalog

            dg.materialize(
                self.merge_assets, instance=self.instance, resources={"cdc_settings": self.settings}
            )
            specs = self.settings.specs()
            catalog = lake_catalog(specs.connection("tgt"), specs.directory)
            rows = catalog.load_table(("replica", "edge")).scan().to_arrow().to_pylist()
        else:
            rows = read_latest(self.fs, self.location, ["id"]).to_pylist()
        return {r["id"]: (r["touch"], [normalise(c, s3_text(c, r[c.column])) for c in cases]) for r in rows}


def _substitute(becomes: str, case, source_value):
    """What a rule makes of ``source_value``, normalised like a value read from the target."""
    if becomes == "NULL":
        return None
    if becomes == "0":
        return normalise(case, "0")
    if "NUL" in becomes and isinstance(source_value, str):
        return source_value.replace("\x00", "")
    raise AssertionError(f"the test does not know the rule result {becomes!r}")


def _run_pair(stack, connect, tmp_path, pair: str, outcomes: dict, problems: list[str]) -> None:
    source_kind, target_kind = pair.split("->")
    iceberg = target_kind == "iceberg"
    target_kind = "s3" if iceberg else target_kind
    cases = PG_CASES if source_kind == "postgresql" else MARIADB_CASES
    columns = ", ".join(f'"{c.column}" {c.source_type}' if source_kind == "postgresql" else f"`{c.column}` {c.source_type}"
                        for c in cases)  # fmt: skip
    ddl = f"CREATE TABLE edge (id int PRIMARY KEY, touch int, {columns})"
    full_rows, cdc_rows = rows_of(cases, 1), rows_of(cases, CDC_OFFSET + 1)
    with pg_database(stack, "fsrc") as pg_src, pg_database(stack, "ftgt") as pg_tgt, \
            mariadb_database(stack, "fsrc") as my_src, mariadb_database(stack, "ftgt") as my_tgt:  # fmt: skip
        src_db = pg_src if source_kind == "postgresql" else my_src
        tgt_db = pg_tgt if target_kind == "postgresql" else my_tgt
        schema = "replica" if target_kind in ("postgresql", "s3") else my_tgt
        lake = _Lake(stack, tmp_path / pair.replace(">", ""), iceberg) if target_kind == "s3" else None

        def write(statements):
            if source_kind == "postgresql":
                with pg_connect(stack, src_db) as conn:
                    for stmt in statements:
                        conn.execute(stmt)
            else:
                with mariadb_connect(stack, src_db) as conn, conn.cursor() as cur:
                    cur.execute("SET SESSION sql_mode = ''")  # zero dates, as a permissive source allows
                    for stmt in statements:
                        cur.execute(stmt)

        write([ddl, "CREATE TABLE other (id int PRIMARY KEY, v int)",
               f"INSERT INTO edge VALUES {', '.join(full_rows)}"])  # fmt: skip
        name = unique("fid")
        table_prefix = "public" if source_kind == "postgresql" else src_db
        specs = write_specs(
            tmp_path / pair.replace(">", ""),
            {"src": connection(stack, source_kind, src_db),
             "tgt": lake.connection if lake else connection(stack, target_kind, tgt_db)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": schema,
              "tables": {"names": [f"{table_prefix}.edge", f"{table_prefix}.other"]}}],
        )  # fmt: skip
        if lake:
            lake.start(specs, name)
        result = materialize(stack, specs, name, assets=lake.assets if lake else None,
                             instance=lake.instance if lake else None)  # fmt: skip
        try:
            write([f"INSERT INTO edge VALUES {', '.join(cdc_rows)}", f"UPDATE edge SET touch = 1 WHERE id > {CDC_OFFSET}",
                   "INSERT INTO other VALUES (1, 1)"])  # fmt: skip
            expected_ids = {CDC_OFFSET + 1 + i for i in range(len(cdc_rows))}

            def read_source():
                if source_kind == "postgresql":
                    return _read_pg(stack, src_db, "public", cases, "iso_8601")
                return _read_mariadb(stack, src_db, cases)

            def read_target():
                if lake:
                    return lake.read(cases, source_kind)
                if target_kind == "postgresql":
                    style = "iso_8601" if source_kind == "postgresql" else "postgres"
                    return _read_pg(stack, tgt_db, "replica", cases, style)
                return _read_mariadb(stack, tgt_db, cases)

            deadline, target = time.monotonic() + 120, {}
            while time.monotonic() < deadline:
                target = read_target()
                if all(target.get(i, (0,))[0] == 1 for i in expected_ids):
                    break
                time.sleep(1)
            else:
                if lake:
                    problems.append(
                        f"{pair}: CDC rows did not all arrive within 120 s; writer: {lake.problems}"
                    )
                    return
                status = connect.status(f"{name}-sink"), connect.status(f"{name}-source")
                problems.append(f"{pair}: CDC rows did not all arrive within 120 s; connectors: {status}")
                return
            source = read_source()
            # the checksum reconciliation sees the same: every value agrees after the pair's rules
            if lake is None:  # S3 has no checksum reconciliation yet: its values are compared here alone
                checked = reconcile_pipeline_table(specs, specs.pipelines[name].spec, f"{table_prefix}.edge", "edge",
                                                   bootstrap=stack.kafka_bootstrap, chunk_rows=4)  # fmt: skip
                if not checked.agrees or checked.source_rows != len(target):
                    problems.append(f"{pair}: checksums disagree on replicated data ({checked.source_rows} rows): "
                                    f"{[d.as_dict() for d in checked.differences]}")  # fmt: skip
            meta = materializations(result)
            edge_meta = next(m for k, m in meta.items() if k[-1] in ("edge", "edge_changes"))
            expected_substituted: dict[str, int] = {}
            for index, case in enumerate(cases):
                ctype = CanonicalType(case.canonical, length=case.length or None, precision=case.precision,
                                      scale=case.scale)  # fmt: skip
                rules = rules_for(source_kind, target_kind, ctype)
                depth = max(len(c.values) for c in cases)
                for row in range(len(case.values), depth):  # rows where this column is NULL stay NULL
                    for row_id in (1 + row, CDC_OFFSET + 1 + row):
                        if target[row_id][1][index] is not None:
                            problems.append(
                                f"{pair} {case.source_type}: NULL arrived as {target[row_id][1][index]!r}"
                            )
                for row, literal in enumerate(case.values):
                    want = source[1 + row][1][index]
                    substitutes = {r.becomes: _substitute(r.becomes, case, want) for r in rules}
                    got_full, got_cdc = target[1 + row][1][index], target[CDC_OFFSET + 1 + row][1][index]
                    if got_full != got_cdc:
                        problems.append(
                            f"{pair} {case.source_type} {literal}: full load gave {got_full!r}, CDC {got_cdc!r}"
                        )
                        continue
                    by_rule = [becomes for becomes, value in substitutes.items() if value == got_full]
                    if got_full == want:
                        outcome = "exact"
                    elif by_rule:
                        outcome = f"{by_rule[0]} (rule)"
                        expected_substituted[case.column] = expected_substituted.get(case.column, 0) + 1
                    else:
                        problems.append(
                            f"{pair} {case.source_type} {literal}: source {want!r}, target {got_full!r}"
                        )
                        continue
                    engine = "PostgreSQL" if source_kind == "postgresql" else "MariaDB"
                    outcomes[(pair, f"{engine} {case.source_type.split(' NULL')[0]}", literal)] = outcome
            for column, count in expected_substituted.items():
                shown = edge_meta.get(f"values_substituted/{column}")
                if shown is None or shown.value != count:
                    problems.append(
                        f"{pair}: asset shows {shown} substituted values for {column}, expected {count}"
                    )
        finally:
            teardown(stack, connect, specs, name)


def test_edge_values_arrive_exactly_or_by_one_counted_rule_in_both_paths(stack, connect, tmp_path):
    outcomes: dict[tuple[str, str, str], str] = {}
    problems: list[str] = []
    for pair in PAIRS:
        _run_pair(stack, connect, tmp_path, pair, outcomes, problems)
    assert not problems, "values changed or paths disagree:\n" + "\n".join(problems)
    matrix = render_matrix(outcomes, list(PAIRS))
    text = README.read_text()
    start, end = text.index(MATRIX_START), text.index(MATRIX_END) + len(MATRIX_END)
    if os.environ.get("CDC_WRITE_MATRIX") == "1":
        README.write_text(text[:start] + matrix + text[end:])
    else:
        assert text[start:end] == matrix, (
            "README's fidelity matrix is out of date; rerun this test with CDC_WRITE_MATRIX=1:\n" + matrix
        )
