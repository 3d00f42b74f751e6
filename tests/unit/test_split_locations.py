"""Many pipelines split over several code locations, as the README tells a user to do it: five ``dg``
projects whose one component instance each says ``shard: K/5`` over the same specs directory, and a
``workspace.yaml`` naming the five. The workspace is loaded by Dagster itself (one code server process
a location, as ``dagster dev`` runs them), and the merged asset graph must hold every pipeline exactly
once, the worker's asset once, and nothing Dagster reports as defined in several locations.

No database, Kafka or Connect is needed: pipelines of named tables build without a stored catalog."""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget

from tests.unit.test_definitions_graph import MARIA, PG

SHARDS = 5
PIPELINES = 23


def _project(root: Path, k: int) -> None:
    """A minimal ``dg`` project, as ``dg scaffold project`` + ``dg scaffold defs`` leave it."""
    package = f"shard_{k}"
    (root / package / package / "defs" / "pipelines").mkdir(parents=True)
    (root / package / "pyproject.toml").write_text(
        f'[project]\nname = "{package}"\nversion = "0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{package}"\ncode_location_name = "{package}"\n'
    )
    (root / package / package / "__init__.py").write_text("")
    (root / package / package / "defs" / "__init__.py").write_text("")
    (root / package / package / "definitions.py").write_text(
        "from pathlib import Path\n\nimport dagster as dg\n\n"
        "defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n"
    )
    (root / package / package / "defs" / "pipelines" / "defs.yaml").write_text(
        yaml.safe_dump(
            {
                "type": "cdc_platform.CdcPipelineComponent",
                "attributes": {"specs_dir": "../specs", "shard": f"{k}/{SHARDS}"},
            }
        )  # fmt: skip
    )


def test_five_code_locations_with_shards_load_side_by_side_and_hold_each_pipeline_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_PG_PASSWORD", "x")
    monkeypatch.setenv("DW_PASSWORD", "y")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "connections.yaml").write_text(yaml.safe_dump({"connections": {"shop": PG, "dw": MARIA}}))
    names = [f"team{p:02d}" for p in range(PIPELINES)]
    (specs / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": [
        {"name": n, "source": "shop", "target": "dw", "target_schema": f"dw_{n}",
         "tables": {"names": [f"{n}.orders", "public.customers"]}}  # one source table shared by all
        for n in names]}))  # fmt: skip
    for k in range(1, SHARDS + 1):
        _project(tmp_path, k)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [
        {"python_module": {"module_name": f"shard_{k}.definitions", "working_directory": str(tmp_path / f"shard_{k}"),
                           "location_name": f"shard_{k}"}}
        for k in range(1, SHARDS + 1)]}))  # fmt: skip

    with dg.instance_for_test() as instance, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(workspace)])) as context:
            request = context.create_request_context()
            assert sorted(request.code_location_names) == [f"shard_{k}" for k in range(1, SHARDS + 1)]
            errors = {n: request.get_code_location_error(n) for n in request.code_location_names}
            assert not any(errors.values()), errors
            graph = request.asset_graph
            located: dict[str, list[str]] = {}
            for node in graph.asset_nodes:
                for info in node.repo_scoped_asset_infos:
                    located.setdefault(node.key.to_user_string(), []).append(
                        info.asset_node.repository_handle.location_name
                    )

    duplicated = [str(w.message) for w in caught if "multiple code locations" in str(w.message)]
    assert not duplicated, duplicated
    # every pipeline's connectors and target table live in exactly one location, and every location has some
    owner = {}
    for n in names:
        assert len(located[f"{n}/source_connector"]) == 1, located[f"{n}/source_connector"]
        owner[n] = located[f"{n}/source_connector"][0]
        assert located[f"{n}/sink_connector"] == [owner[n]]
    assert set(owner.values()) == {f"shard_{k}" for k in range(1, SHARDS + 1)}
    assert located["kafka_connect_worker"] == ["shard_1"]
    # the source table every pipeline reads is an external asset: each location declares it, which
    # Dagster accepts for assets that no location materializes or observes
    assert len(located["shop/public/customers"]) == SHARDS
