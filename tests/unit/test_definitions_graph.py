"""The definitions a pipeline spec becomes, built from specs and a stored catalog with no service.

The snapshot ``snapshots/asset_specs.txt`` lists every asset spec (key, group, kinds, deps, owners,
tags, code version, metadata keys, pool): a change to the graph shows in a reviewer's diff.
``CDC_WRITE_SNAPSHOT=1 pytest tests/unit/test_definitions_graph.py`` rewrites it after a deliberate change.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from cdc_platform.dagster.catalog import PipelineCatalog, StoredCatalog, read_catalog, write_catalog
from cdc_platform.dagster.component import CdcPipelineComponent
from cdc_platform.dagster.translator import CdcAssetProps, CdcTranslator
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.txt"

PG = {"kind": "postgresql", "host": "pg.example", "port": 5432, "database": "shop", "username": "cdc",
      "password": {"env": "SHOP_PG_PASSWORD"}}  # fmt: skip
MARIA = {"kind": "mariadb", "host": "maria.example", "port": 3306, "database": "dw", "username": "cdc",
         "password": {"env": "DW_PASSWORD"}}  # fmt: skip
PIPELINES = [
    {"name": "orders", "source": "shop", "target": "dw", "target_schema": "dw",
     "tables": {"names": ["public.customers", "public.orders"]},
     "overrides": {"public.orders": {"target_name": "sales"}},
     "owners": ["team:data", "ops@example.com"], "tags": {"tier": "gold"}},
    {"name": "everything", "source": "shop", "target": "dw", "target_schema": "all_tables", "mode": "full_load_only",
     "tables": {"schema": "public", "include": ["*"]}},
]  # fmt: skip


def _table(name: str, *extra: Column) -> Table:
    cols = (Column("id", CanonicalType("bigint"), False, "bigint"),
            Column("name", CanonicalType("varchar", length=80), True, "character varying"), *extra)  # fmt: skip
    return Table("public", name, cols, ("id",))


CATALOG = StoredCatalog({
    "orders": PipelineCatalog((_table("customers"), _table("orders", Column("total", CanonicalType("double"), False,
                                                                            "double precision"))), "2026-11-30T00:00:00+00:00"),
    "everything": PipelineCatalog((_table("customers"), _table("orders"), _table("refunds")), "2026-11-30T00:00:00+00:00"),
})  # fmt: skip


@pytest.fixture
def specs_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SHOP_PG_PASSWORD", "x")
    monkeypatch.setenv("DW_PASSWORD", "y")
    (tmp_path / "connections.yaml").write_text(yaml.safe_dump({"connections": {"shop": PG, "dw": MARIA}}))
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": PIPELINES}))
    return tmp_path


def _defs(specs_dir: Path, catalog: StoredCatalog | None, **attributes) -> dg.Definitions:
    component = CdcPipelineComponent.from_attributes_dict(
        attributes={"specs_dir": str(specs_dir), **attributes}
    )
    state = None
    if catalog is not None:
        state = specs_dir / "state"
        write_catalog(catalog, state)
        assert read_catalog(state) == catalog  # the stored form round-trips
    return component.build_defs_from_state(None, state)  # type: ignore[arg-type]


def _specs_by_key(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    out = {}
    for item in defs.assets or []:
        for spec in item.specs if isinstance(item, dg.AssetsDefinition) else [item]:
            out[spec.key.to_user_string()] = spec
    return out


def _pools(defs: dg.Definitions) -> dict[str, str | None]:
    return {a.node_def.name: a.op.pool for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)}


def teardown_choices(job: dg.JobDefinition) -> list[str]:
    """The pipelines the launchpad offers for the teardown job's ``pipeline``."""
    return job.run_config_schema.config_type.fields["pipeline"].config_type.config_values


def test_asset_keys_deps_and_kinds(specs_dir):
    specs = _specs_by_key(_defs(specs_dir, CATALOG))
    assert set(specs) >= {
        "shop/public/customers", "shop/public/orders", "dw/dw/customers", "dw/dw/sales", "orders/target_schema",
        "orders/source_connector", "orders/sink_connector", "dw/all_tables/refunds", "everything/target_schema",
    }  # fmt: skip
    assert "everything/source_connector" not in specs  # full_load_only: nothing streams
    sales = specs["dw/dw/sales"]
    assert {d.asset_key.to_user_string() for d in sales.deps} == {
        "shop/public/orders",
        "orders/target_schema",
    }
    assert sales.kinds == {"mariadb"} and specs["shop/public/orders"].kinds == {"postgres"}
    # connectors sit beside the tables: downstream of the source tables, never of the target tables
    source = specs["orders/source_connector"]
    assert {d.asset_key.to_user_string() for d in source.deps} == {
        "shop/public/customers",
        "shop/public/orders",
    }
    assert source.kinds == {"debezium", "kafka", "postgres"}
    sink = specs["orders/sink_connector"]
    assert [d.asset_key.to_user_string() for d in sink.deps] == ["orders/source_connector"]
    assert sink.kinds == {"debezium", "kafka", "mariadb"}


def test_table_assets_carry_column_schema_lineage_and_cdc_metadata(specs_dir):
    sales = _specs_by_key(_defs(specs_dir, CATALOG))["dw/dw/sales"]
    schema = sales.metadata["dagster/column_schema"].schema
    assert [(c.name, c.type, c.constraints.nullable) for c in schema.columns] == [
        ("id", "bigint", False), ("name", "varchar(80)", True), ("total", "double", False)]  # fmt: skip
    lineage = sales.metadata["dagster/column_lineage"].column_lineage
    assert lineage.deps_by_column["total"][0].asset_key == dg.AssetKey(["shop", "public", "orders"])
    # given as metadata values (Dagster then need not normalize them at every read)
    meta = {k: v.value for k, v in sales.metadata.items() if isinstance(v, dg.TextMetadataValue)}
    assert meta["dagster/table_name"] == "dw.dw.sales"
    assert meta["cdc/pipeline"] == "orders" and meta["cdc/sink_connector"] == "orders-sink"
    assert "NaN" in meta["cdc/value_rules"]  # double -> MariaDB has a rule, and it is shown
    assert sales.owners == ["team:data", "ops@example.com"] and sales.tags["tier"] == "gold"
    source_meta = _specs_by_key(_defs(specs_dir, CATALOG))["orders/source_connector"].metadata
    assert (
        source_meta["cdc/slot"].value == "cdc_orders" and source_meta["cdc/publication"].value == "cdc_orders"
    )


def test_metadata_reads_back_through_dagsters_metadata_sets(specs_dir):
    """The translator builds metadata dicts directly (load time); Dagster's and our metadata-set
    models must still read them, and an unknown field is refused as the model would."""
    from dagster._core.definitions.metadata import TableMetadataSet

    from cdc_platform.dagster.translator import CdcMetadataSet, cdc_metadata

    sales = _specs_by_key(_defs(specs_dir, CATALOG))["dw/dw/sales"]
    table = TableMetadataSet.extract(sales.metadata)
    assert table.table_name == "dw.dw.sales" and table.column_schema is not None
    assert table.column_lineage is not None
    assert CdcMetadataSet.extract(sales.metadata).sink_connector == "orders-sink"
    with pytest.raises(TypeError, match="sink_conector"):
        cdc_metadata(sink_conector="x")


def test_building_definitions_leaves_the_garbage_collector_as_it_was(specs_dir):
    import gc

    assert gc.isenabled()
    _defs(specs_dir, CATALOG)
    assert gc.isenabled()
    gc.disable()
    try:
        _defs(specs_dir, CATALOG)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()


def test_code_version_follows_what_the_materialization_applies(specs_dir):
    before = _specs_by_key(_defs(specs_dir, CATALOG))
    changed_orders = _table(
        "orders", Column("total", CanonicalType("numeric", precision=12, scale=2), False, "numeric")
    )
    changed = StoredCatalog({**CATALOG.pipelines, "orders": PipelineCatalog(
        (CATALOG.pipelines["orders"].tables[0], changed_orders), "later")})  # fmt: skip
    after = _specs_by_key(_defs(specs_dir, changed))
    assert before["dw/dw/sales"].code_version != after["dw/dw/sales"].code_version
    assert before["dw/dw/customers"].code_version == after["dw/dw/customers"].code_version
    assert all(
        before[k].code_version for k in ("dw/dw/sales", "orders/target_schema", "orders/source_connector")
    )


def test_pool_per_source_and_one_teardown_job(specs_dir):
    defs = _defs(specs_dir, CATALOG)
    assert _pools(defs) == {"orders_pipeline": "cdc_source_shop", "everything_pipeline": "cdc_source_shop"}
    # the quality checks run in Dagster's asset job: no job of their own
    assert {j.name for j in defs.jobs or []} == {
        "cdc_teardown",
        "cdc_pause",
        "cdc_resume",
        "cdc_stop",
        "cdc_restart",
        "cdc_collect_metrics",
        "cdc_acknowledge_alert",
        "cdc_apply_drift",
        "cdc_test_connections",
    }
    assert set(defs.resources or {}) == {"kafka_connect", "cdc_settings"}
    # automation: the health, alert and schema sensors and the metrics schedule, all running by default
    sensors = {s.name: s for s in defs.sensors or []}
    assert set(sensors) == {"cdc_connect_health", "cdc_alerts", "cdc_schema_changes"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    schedules = {s.name: s for s in defs.schedules or []}
    assert schedules["cdc_collect_metrics_schedule"].cron_schedule == "* * * * *"
    assert schedules["cdc_test_connections_schedule"].cron_schedule == "17 * * * *"
    assert schedules["cdc_quality_checks_schedule"].cron_schedule == "*/15 * * * *"
    assert schedules["cdc_checksum_checks_schedule"].cron_schedule == "0 2 * * *"
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in schedules.values())
    checks = {(k.asset_key.to_user_string(), k.name) for c in defs.asset_checks or [] for k in c.check_keys}
    assert {c for c in checks if c[1] == "connector_running"} == {
        ("orders/source_connector", "connector_running"),
        ("orders/sink_connector", "connector_running"),
    }
    # every table: counts, checksums and drift; a streaming pipeline's tables: freshness and whether
    # the pipeline runs (the health sensor's verdict on every table it writes)
    assert {c for c in checks if c[0] == "dw/dw/sales"} == {
        ("dw/dw/sales", "row_count_parity"),
        ("dw/dw/sales", "checksum_reconciliation"),
        ("dw/dw/sales", "schema_drift"),
        ("dw/dw/sales", "replication_freshness"),
        ("dw/dw/sales", "pipeline_running"),
    }
    assert ("dw/all_tables/refunds", "replication_freshness") not in checks
    assert ("dw/all_tables/refunds", "row_count_parity") in checks


def test_the_teardown_job_offers_the_pipelines_by_name_and_refuses_others(specs_dir):
    """One job for all pipelines: the pipeline is a choice from the list, never a default."""
    job = _defs(specs_dir, CATALOG).resolve_job_def("cdc_teardown")
    assert sorted(teardown_choices(job)) == ["everything", "orders"]
    config = dg.validate_run_config(job, {"pipeline": "orders", "delete_topics": True})
    assert config["ops"]["teardown_op"]["config"] == {"pipeline": "orders", "delete_topics": True}
    with pytest.raises(
        dg.DagsterInvalidConfigError, match="not in enum type cdc_teardown_pipeline_[0-9a-f]{8} got nope"
    ):
        dg.validate_run_config(job, {"pipeline": "nope"})
    with pytest.raises(dg.DagsterInvalidConfigError, match="pipeline"):
        dg.validate_run_config(job, {})


def test_without_a_stored_catalog_only_named_tables_have_assets(specs_dir):
    specs = _specs_by_key(_defs(specs_dir, None))
    assert "dw/dw/sales" in specs and "dagster/column_schema" not in specs["dw/dw/sales"].metadata
    assert not any(k.startswith("dw/all_tables/") for k in specs)  # the glob waits for a refresh


def test_a_component_names_only_pipelines_the_specs_define(specs_dir):
    with pytest.raises(ValueError, match=r"names pipelines \['nope'\]"):
        _defs(specs_dir, CATALOG, pipelines=["nope"])
    only = _defs(specs_dir, CATALOG, pipelines=["orders"])
    assert {j.name for j in only.jobs or []} == {"cdc_teardown_orders", "cdc_pause_orders", "cdc_resume_orders", "cdc_stop_orders", "cdc_restart_orders", "cdc_collect_metrics_orders",
                                                 "cdc_acknowledge_alert_orders", "cdc_apply_drift_orders", "cdc_test_connections_orders"}  # fmt: skip
    assert "cdc_quality_checks_orders_schedule" in {s.name for s in only.schedules or []}
    assert [s.name for s in only.sensors or []] == [
        "cdc_connect_health_orders",
        "cdc_alerts_orders",
        "cdc_schema_changes_orders",
    ]


def test_a_component_can_leave_out_the_pipelines_another_location_defines(specs_dir):
    """The main location of a project whose busy pipeline runs on its own Connect cluster: every
    pipeline but that one, so a pipeline added to the specs later still lands somewhere."""
    rest = _defs(specs_dir, CATALOG, exclude_pipelines=["everything"])
    keys = _specs_by_key(rest)
    assert "dw/dw/sales" in keys and not any(k.startswith("dw/all_tables/") for k in keys)
    assert {j.name for j in rest.jobs or []} >= {"cdc_teardown", "cdc_collect_metrics"}
    assert teardown_choices(rest.resolve_job_def("cdc_teardown")) == ["orders"]
    assert "cdc_connect_health" in [s.name for s in rest.sensors or []]
    with pytest.raises(ValueError, match=r"exclude_pipelines names pipelines \['nope'\]"):
        _defs(specs_dir, CATALOG, exclude_pipelines=["nope"])
    with pytest.raises(ValueError, match="`pipelines` or `exclude_pipelines`, not both"):
        _defs(specs_dir, CATALOG, pipelines=["orders"], exclude_pipelines=["everything"])


def test_shards_split_many_pipelines_over_code_locations_each_exactly_once(tmp_path, monkeypatch):
    """Five locations with ``shard: 1/5`` .. ``5/5`` over the same specs: every pipeline is defined in
    exactly one, no two define an asset, job, schedule or sensor of the same name (so they load side by
    side in one workspace), one owns the worker asset, and a pipeline keeps its shard when others are
    added."""
    monkeypatch.setenv("SHOP_PG_PASSWORD", "x")
    monkeypatch.setenv("DW_PASSWORD", "y")
    (tmp_path / "connections.yaml").write_text(yaml.safe_dump({"connections": {"shop": PG, "dw": MARIA}}))

    def write_specs(count: int) -> None:
        pipelines = [{"name": f"team{p:02d}", "source": "shop", "target": "dw", "target_schema": f"dw{p:02d}",
                      "tables": {"names": [f"s{p:02d}.orders"]}} for p in range(count)]  # fmt: skip
        (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": pipelines}))

    def split(count: int) -> dict[str, dg.Definitions]:
        write_specs(count)
        return {f"{k}/5": _defs(tmp_path, None, shard=f"{k}/5") for k in range(1, 6)}

    def pipelines_of(defs: dg.Definitions) -> set[str]:
        return set(teardown_choices(next(j for j in defs.jobs or [] if j.name.startswith("cdc_teardown"))))

    shards = split(20)
    owned = {shard: pipelines_of(defs) for shard, defs in shards.items()}
    assert sorted(p for names in owned.values() for p in names) == [f"team{p:02d}" for p in range(20)]
    assert all(owned.values()), owned  # 20 names over 5 shards: none empty
    for kind in ("jobs", "schedules", "sensors"):
        names = [d.name for defs in shards.values() for d in getattr(defs, kind) or []]
        assert len(names) == len(set(names)), kind
    asset_keys = [k for defs in shards.values() for k in _specs_by_key(defs)]
    assert len(asset_keys) == len(set(asset_keys))
    assert [s for s, defs in shards.items() if "kafka_connect_worker" in _specs_by_key(defs)] == ["1/5"]
    assert "cdc_connect_health_shard3of5" in {s.name for s in shards["3/5"].sensors or []}
    grown = {shard: pipelines_of(defs) for shard, defs in split(30).items()}
    assert all(owned[s] <= grown[s] for s in owned)  # the first 20 did not move
    with pytest.raises(ValueError, match=r"shard '6/5': K must be 1..5"):
        _defs(tmp_path, None, shard="6/5")
    with pytest.raises(ValueError, match="`pipelines` or `shard`, not both"):
        _defs(tmp_path, None, shard="1/5", pipelines=["team01"])


def test_the_whole_project_loads_and_validates():
    """The dg project's defs folder loads into one valid Definitions (same as `dagster definitions validate`)."""
    from cdc_platform.definitions import defs

    dg.Definitions.validate_loadable(defs)


def test_snapshot_of_asset_specs(specs_dir):
    defs = _defs(specs_dir, CATALOG)
    pools = {
        key: a.op.pool for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition) for key in a.keys
    }
    lines = []
    for key, spec in sorted(_specs_by_key(defs).items()):
        lines += [
            f"{key}",
            f"  group: {spec.group_name}   kinds: {', '.join(sorted(spec.kinds))}   pool: {pools.get(spec.key)}",
            f"  deps: {', '.join(sorted(d.asset_key.to_user_string() for d in spec.deps)) or '-'}",
            f"  owners: {', '.join(spec.owners) or '-'}   tags: {dict(sorted(spec.tags.items()))}",
            f"  code_version: {spec.code_version}",
            f"  metadata: {', '.join(sorted(spec.metadata))}",
            f"  description: {spec.description}",
        ]
    text = "\n".join(lines) + "\n"
    if os.environ.get("CDC_WRITE_SNAPSHOT"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "asset specs changed; review and rewrite with CDC_WRITE_SNAPSHOT=1"


def test_quality_policies_and_schedules_follow_the_pipeline_spec(specs_dir):
    """Severity, blocking and enabled per check; a pipeline with its own cron gets its own job."""
    pipelines = [dict(PIPELINES[0]), dict(PIPELINES[1])]
    pipelines[0]["quality"] = {
        "checks": {
            "schema_drift": {"severity": "ERROR", "blocking": True},
            "row_count_parity": {"enabled": False},
        },
        "checksum_schedule": "30 4 * * 0",
    }
    (specs_dir / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": pipelines}))
    defs = _defs(specs_dir, CATALOG)
    specs = {
        (s.asset_key.to_user_string(), s.name): s for c in defs.asset_checks or [] for s in c.check_specs
    }
    assert ("dw/dw/sales", "row_count_parity") not in specs
    assert specs[("dw/dw/sales", "schema_drift")].blocking
    assert specs[("dw/dw/sales", "checksum_reconciliation")].blocking  # the default: ERROR and blocking
    assert not specs[("dw/dw/sales", "replication_freshness")].blocking
    assert specs[("dw/all_tables/refunds", "row_count_parity")].blocking
    # the checks read the source: they queue in the same pool as the source's loads
    assert {c.node_def.pool for c in defs.asset_checks or [] if "_quality" in c.node_def.name} == {
        "cdc_source_shop"
    }
    schedules = {s.name: s.cron_schedule for s in defs.schedules or []}
    assert schedules["cdc_checksum_checks_orders_schedule"] == "30 4 * * 0"
    assert schedules["cdc_checksum_checks_schedule"] == "0 2 * * *"

    # each schedule asks the asset job for checks alone: the orders pipeline's checksums on its own cron
    def requested(schedule: str) -> set[tuple[str, str]]:
        tick = defs.get_schedule_def(schedule).evaluate_tick(dg.build_schedule_context())
        (request,) = tick.run_requests or []
        assert request.job_name == "__ASSET_JOB" and request.asset_selection == []
        return {(k.asset_key.to_user_string(), k.name) for k in request.asset_check_keys or []}

    own = requested("cdc_checksum_checks_orders_schedule")
    assert own == {("dw/dw/customers", "checksum_reconciliation"), ("dw/dw/sales", "checksum_reconciliation")}
    nightly = requested("cdc_checksum_checks_schedule")
    assert nightly and all(
        t.startswith("dw/all_tables/") and c == "checksum_reconciliation" for t, c in nightly
    )
    cheap = requested("cdc_quality_checks_schedule")
    assert {c for _, c in cheap} == {"schema_drift", "replication_freshness", "row_count_parity"}
    assert ("dw/dw/sales", "row_count_parity") not in cheap  # disabled for orders


def test_a_bad_quality_cron_names_the_field(specs_dir):
    from cdc_platform.specs.loader import SpecErrors, load_specs

    pipelines = [dict(PIPELINES[0], quality={"schedule": "every hour"})]
    (specs_dir / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": pipelines}))
    with pytest.raises(SpecErrors, match=r"quality.schedule.*'every hour' is not a cron expression"):
        load_specs(specs_dir)


def test_declared_expectations_become_a_check_without_importing_great_expectations(specs_dir):
    """GX takes seconds to import: the code location builds the suite's check without it."""
    import subprocess
    import sys

    pipelines = [dict(PIPELINES[0], quality={"expectations": {"public.orders": [
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]}})]  # fmt: skip
    (specs_dir / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": pipelines}))
    state = specs_dir / "state"
    write_catalog(CATALOG, state)
    script = (
        "import sys\n"
        "from cdc_platform.dagster.component import CdcPipelineComponent\n"
        f"c = CdcPipelineComponent.from_attributes_dict(attributes={{'specs_dir': {str(specs_dir)!r}}})\n"
        f"defs = c.build_defs_from_state(None, __import__('pathlib').Path({str(state)!r}))\n"
        "keys = {(k.asset_key.to_user_string(), k.name) for c in defs.asset_checks for k in c.check_keys}\n"
        "assert ('dw/dw/sales', 'great_expectations') in keys, keys\n"
        "assert ('dw/dw/customers', 'great_expectations') not in keys\n"
        "print('gx imported' if 'great_expectations' in sys.modules else 'gx not imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("gx not imported")


class AcmeTranslator(CdcTranslator):
    """A user's override: every asset under an ``acme`` prefix, changed in ``get_asset_spec`` alone."""

    def get_asset_spec(self, props: CdcAssetProps) -> dg.AssetSpec:
        spec = super().get_asset_spec(props)
        return spec.replace_attributes(key=spec.key.with_prefix("acme"))


class AcmeComponent(CdcPipelineComponent):
    def get_translator(self) -> CdcTranslator:
        return AcmeTranslator()


def _asset_keys_in(value, seen: set[int] | None = None) -> list[dg.AssetKey]:
    """Every AssetKey inside a builder's arguments (dataclasses, containers)."""
    seen = seen if seen is not None else set()
    if isinstance(value, dg.AssetKey):
        return [value]
    if id(value) in seen or isinstance(value, str | bytes | int | float | type(None)):
        return []
    seen.add(id(value))
    if isinstance(value, dict):
        return [k for item in value.items() for k in _asset_keys_in(item, seen)]
    if isinstance(value, list | tuple | set | frozenset):
        return [k for item in value for k in _asset_keys_in(item, seen)]
    if dataclasses.is_dataclass(value):
        return [k for f in dataclasses.fields(value) for k in _asset_keys_in(getattr(value, f.name), seen)]
    return []


def test_a_key_changed_in_get_asset_spec_moves_every_asset_check_sensor_and_job(specs_dir, monkeypatch):
    import cdc_platform.dagster.component as component_module

    lake = {"kind": "s3", "bucket": "lake", "endpoint_url": "http://127.0.0.1:1", "access_key_id": {"env": "K"},
            "secret_access_key": {"env": "S"}}  # fmt: skip
    (specs_dir / "connections.yaml").write_text(
        yaml.safe_dump({"connections": {"shop": PG, "dw": MARIA, "lake": lake}})
    )
    (specs_dir / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": [
        *PIPELINES, {"name": "to_lake", "source": "shop", "target": "lake", "target_schema": "raw",
                     "tables": {"names": ["public.orders"]}}]}))  # fmt: skip
    handed: dict[str, list[dg.AssetKey]] = {}
    for builder in ("build_connect_health_sensor", "build_metrics_job", "build_alert_sensor", "build_schema_changes_sensor",
                    "build_s3_writer_sensor", "build_connection_test_job", "build_s3_writer_checks",
                    "build_quality_checks", "build_connector_checks"):  # fmt: skip
        original = getattr(component_module, builder)

        def recording(*args, _original=original, _name=builder, **kwargs):
            handed.setdefault(_name, []).extend(_asset_keys_in([args, kwargs]))
            return _original(*args, **kwargs)

        monkeypatch.setattr(component_module, builder, recording)
    component = AcmeComponent.from_attributes_dict(attributes={"specs_dir": str(specs_dir)})
    state = specs_dir / "state"
    write_catalog(CATALOG, state)
    defs = component.build_defs_from_state(None, state)  # type: ignore[arg-type]
    dg.Definitions.validate_loadable(defs)

    assets = _specs_by_key(defs)
    ours = {k for k in assets if k != "kafka_connect_worker"}
    assert ours and all(k.startswith("acme/") for k in ours), sorted(ours)
    for spec in assets.values():  # every dependency points at a defined asset
        assert all(dep.asset_key.to_user_string() in assets for dep in spec.deps), spec.key
    checked = {key.asset_key.to_user_string() for c in defs.asset_checks or [] for key in c.check_keys}
    assert checked and checked <= set(assets)
    for builder in ("build_connect_health_sensor", "build_metrics_job", "build_alert_sensor", "build_schema_changes_sensor",
                    "build_s3_writer_sensor", "build_connection_test_job"):  # fmt: skip
        keys = {k.to_user_string() for k in handed[builder]}
        assert keys and keys <= set(assets), (builder, sorted(keys - set(assets)))
    # the schedules request checks of the moved assets
    tick = defs.get_schedule_def("cdc_quality_checks_schedule").evaluate_tick(dg.build_schedule_context())
    requested = {
        k.asset_key.to_user_string() for r in tick.run_requests or [] for k in r.asset_check_keys or []
    }
    assert requested and requested <= set(assets)
    # and on demand (`cdc-platform check`), the same keys
    from cdc_platform.specs.loader import load_specs

    keys = component.pipeline_keys(load_specs(specs_dir), "orders", CATALOG.pipelines["orders"])
    assert keys.target_tables["public.orders"] == dg.AssetKey(["acme", "dw", "dw", "sales"])
