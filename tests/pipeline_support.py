"""Building throw-away spec directories against the stack and materializing their pipelines in-process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from cdc_platform.dagster.assets import build_pipeline_assets
from cdc_platform.dagster.catalog import discover_catalog, write_catalog
from cdc_platform.dagster.component import CdcPipelineComponent
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.teardown import teardown_pipeline
from cdc_platform.settings import STACK_DB_USER, StackSettings
from cdc_platform.specs.loader import Specs, load_specs


def connection(stack: StackSettings, kind: str, database: str) -> dict:
    service = "postgres" if kind == "postgresql" else "mariadb"
    return {
        "kind": kind, "host": stack.host, "port": stack.port_of(service), "database": database,
        "username": STACK_DB_USER, "password": {"file": str(stack.secrets_file), "key": f"{service}.password"},
    }  # fmt: skip


def write_specs(directory: Path, connections: dict, pipelines: list[dict]) -> Specs:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "connections.yaml").write_text(yaml.safe_dump({"connections": connections}))
    (directory / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": pipelines}, allow_unicode=True))
    return load_specs(directory)


def pg_to_pg_specs(stack: StackSettings, directory: Path, src: str, tgt: str, name: str,
                   tables: list[str] | dict, **fields) -> Specs:  # fmt: skip
    """One PostgreSQL -> PostgreSQL pipeline ``name`` from database ``src`` into schema ``replica`` of
    ``tgt``: the shape most integration tests need. ``tables``: names, or a whole tables spec;
    ``fields`` adds to the pipeline (``options=``...)."""
    return write_specs(directory, {"src": connection(stack, "postgresql", src),
                                   "tgt": connection(stack, "postgresql", tgt)},
                       [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                         "tables": {"names": tables} if isinstance(tables, list) else tables, **fields}])  # fmt: skip


def build_assets(specs: Specs, pipeline: str):
    """The pipeline's assets as a code location loads them after `cdc-platform refresh`."""
    catalog = discover_catalog(specs, [pipeline]).pipelines[pipeline]
    assets, _ = build_pipeline_assets(specs.pipelines[pipeline], specs, catalog)
    return assets


def materialize(
    stack: StackSettings,
    specs: Specs,
    pipeline: str,
    selection: list[dg.AssetKey] | None = None,
    assets=None,
    instance: dg.DagsterInstance | None = None,
    connect_url: str | None = None,
):
    """``assets`` lets a test build the assets (load time) before changing the source (run time);
    ``connect_url``: another Kafka Connect cluster than the stack's."""
    if assets is None:
        assets = build_assets(specs, pipeline)
    result = dg.materialize(
        [assets],
        selection=selection,
        resources={
            "kafka_connect": KafkaConnectResource(url=connect_url or stack.connect_url, timeout_seconds=60),
            "cdc_settings": CdcSettingsResource(
                specs_dir=str(specs.directory), kafka_bootstrap=stack.kafka_bootstrap
            ),
        },
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=True,
    )
    assert result.success
    return result


def materializations(result) -> dict[tuple[str, ...], dict]:
    return {
        tuple(e.asset_key.path): e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def copy_with_reader(stack: StackSettings, specs: Specs, job, target_db: str, monkeypatch, variable: str,
                     client: str | None):  # fmt: skip
    """Run ``copy_table`` src -> tgt (``job``'s table ``edge``) with the reader that ``variable``
    picks (``client`` None: the default); (stats, the target's ``edge`` rows in id order, the log
    lines). Rows are text from a PostgreSQL target, the driver's values from a MariaDB one."""
    from cdc_platform.pipeline.full_load import copy_table
    from tests.support import mariadb_connect, pg_connect

    if client is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, client)
    logged: list[str] = []
    stats = copy_table(
        specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append
    )
    if specs.connection("tgt").kind.value == "postgresql":
        with pg_connect(stack, target_db) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            rows = conn.execute(f"SELECT e::text FROM {job.target_schema}.edge e ORDER BY id").fetchall()
    else:
        with mariadb_connect(stack, target_db) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{job.target_schema}`.edge ORDER BY id")
            rows = cur.fetchall()
    return stats, rows, logged


def create_target_table(
    stack: StackSettings, kind: str, database: str, name: str, table, source_kind: str
) -> str:
    """``name`` on a PostgreSQL (schema ``replica``, created here) or MariaDB (``database`` itself)
    target, from the mapped DDL of ``table``; returns the target schema."""
    from cdc_platform.schema.ddl import create_table_sql
    from tests.support import mariadb_connect, pg_connect

    if kind == "postgresql":
        with pg_connect(stack, database) as conn:
            conn.execute("CREATE SCHEMA replica")
            conn.execute(create_table_sql("postgresql", "replica", name, table, source_kind=source_kind))
        return "replica"
    with mariadb_connect(stack, database) as conn, conn.cursor() as cur:
        cur.execute(create_table_sql("mariadb", database, name, table, source_kind=source_kind))
    return database


def items_copy_job(stack: StackSettings, tmp_path: Path, source_kind: str, src: str, target_kind: str, tgt: str,
                   rows: int, word: str = "v") -> tuple:  # fmt: skip
    """``items`` (two-column key, a parent reference, a text ``<word><n % 7>``) with ``rows`` rows on a
    PostgreSQL or MariaDB source, its mapped empty table on the target; the specs and the copy job of
    a full-load-only pipeline between them."""
    from cdc_platform.schema.discovery import discover_pipeline_tables
    from cdc_platform.schema.model import CopyJob
    from tests.support import mariadb_connect, pg_connect, unique

    ddl = "CREATE TABLE items (id int NOT NULL, part int NOT NULL, parent int, v varchar(40), PRIMARY KEY (id, part))"
    fill = f"INSERT INTO items SELECT {{g}}, {{g}} % 3, nullif({{g}} - 1, 0), concat('{word}', {{g}} % 7) FROM {{series}}"
    if source_kind == "postgresql":
        with pg_connect(stack, src) as conn:
            conn.execute(ddl)
            conn.execute(fill.format(g="g", series=f"generate_series(1, {rows}) g"))
        names = ["public.items"]
    else:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute(ddl)
            cur.execute(fill.format(g="seq", series=f"seq_1_to_{rows}"))
        names = [f"{src}.items"]
    target_schema = "replica" if target_kind == "postgresql" else tgt
    specs = write_specs(
        tmp_path,
        {"src": connection(stack, source_kind, src), "tgt": connection(stack, target_kind, tgt)},
        [{"name": unique("items"), "source": "src", "target": "tgt", "target_schema": target_schema,
          "mode": "full_load_only", "tables": {"names": names}}],
    )  # fmt: skip
    spec = next(iter(specs.pipelines.values())).spec
    table = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)[0]
    create_target_table(stack, target_kind, tgt, "items", table, source_kind)
    return specs, CopyJob(table, target_schema, "items")


def run_request(defs: dg.Definitions, instance, request: dg.RunRequest, raise_on_error: bool = False):
    """A run request executed as the daemon would: its job, narrowed to its assets and checks."""
    job = defs.resolve_job_def(request.job_name).get_subset(
        asset_selection=set(request.asset_selection) if request.asset_selection is not None else None,
        asset_check_selection=set(request.asset_check_keys or []),
    )
    result = job.execute_in_process(instance=instance, raise_on_error=raise_on_error, tags=request.tags)
    # the checks alone: no request of ours materializes a table
    assert not result.get_asset_materialization_events(), "a quality run materialized an asset"
    return result


def component_defs(specs, discover: list[str] | None = None, **health) -> dg.Definitions:
    """The component's definitions after a catalog refresh (of ``discover``'s pipelines, default all)."""
    state = specs.directory / "catalog-state"
    write_catalog(discover_catalog(specs, discover), state)
    component = CdcPipelineComponent.from_attributes_dict(
        attributes={"specs_dir": str(specs.directory), "health": health}
    )
    return component.build_defs_from_state(None, state)  # type: ignore[arg-type]


def reloaded_defs(specs, **health) -> dg.Definitions:
    """The code location reloaded after its specs changed: the specs read again, the stored catalog
    of ``component_defs`` reused (no discovery). Checks, sensors and jobs see an edited spec only
    after this, like the assets (one source of truth at run time)."""
    component = CdcPipelineComponent.from_attributes_dict(
        attributes={"specs_dir": str(specs.directory), "health": health}
    )
    return component.build_defs_from_state(None, specs.directory / "catalog-state")  # type: ignore[arg-type]


def teardown(stack, connect, specs, name):
    spec = specs.pipelines[name].spec
    teardown_pipeline(name, connect, print, source=specs.connection(spec.source), specs_dir=specs.directory,
                      delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
