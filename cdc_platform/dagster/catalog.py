"""The stored table catalog: what each pipeline's source held when it was last discovered.

Loading a code location must not depend on a source database being reachable, and a schema + glob
selection cannot be turned into assets without asking the source. So discovery is an explicit
refresh (``cdc-platform refresh`` or ``dg utils refresh-defs-state``) that writes this catalog,
and loading reads it back. A run compares the stored table list with the source and refuses to
capture a table the catalog does not know (it would stream without its copy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
from dagster.components.utils.project_paths import get_local_state_path

from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import Table, table_from_json, table_to_json
from cdc_platform.settings import load_stack_settings
from cdc_platform.specs.loader import LoadedPipeline, Specs

CATALOG_VERSION = 1
REFRESH_HINT = "run `cdc-platform refresh` (or `dg utils refresh-defs-state`), then reload the code location"


class CatalogRefreshError(RuntimeError):
    """Discovery failed for at least one pipeline; the previously stored catalog stays in place."""


@dataclass(frozen=True)
class PipelineCatalog:
    tables: tuple[Table, ...]
    discovered_at: str

    def table(self, qualified: str) -> Table | None:
        return next((t for t in self.tables if t.qualified == qualified), None)


@dataclass(frozen=True)
class StoredCatalog:
    pipelines: dict[str, PipelineCatalog] = field(default_factory=dict)


def selected_tables(loaded: LoadedPipeline, catalog: PipelineCatalog | None, warn: bool = True) -> list[str]:
    """The tables that get assets: the stored catalog's, or the named ones before the first refresh.
    ``warn``: say once per load that a schema selection waits for a refresh (the asset builder does)."""
    if catalog is not None:
        return [t.qualified for t in catalog.tables]
    spec = loaded.spec
    if spec.tables.schema_ and warn:
        dg.get_dagster_logger().warning(
            f"{loaded.file}: pipeline {spec.name!r}: the tables of schema {spec.tables.schema_!r} have not "
            f"been discovered yet, so only explicitly named tables have assets; {REFRESH_HINT}"
        )
    return list(spec.tables.names)


def discover_catalog(specs: Specs, pipelines: list[str] | None = None) -> StoredCatalog:
    """Ask each pipeline's source for its tables. All pipelines or none: a partial catalog would
    silently drop the assets of the pipeline whose source was down."""
    names = pipelines if pipelines is not None else sorted(specs.pipelines)
    found: dict[str, PipelineCatalog] = {}
    errors: list[str] = []
    for name in names:
        loaded = specs.pipelines[name]
        spec = loaded.spec
        try:
            tables = discover_pipeline_tables(spec, specs.connection(spec.source), specs.directory)
        except Exception as exc:  # noqa: BLE001 - every failure is reported below, by pipeline
            errors.append(f"{loaded.file}: pipeline {name!r}: {type(exc).__name__}: {exc}")
            continue
        found[name] = PipelineCatalog(tuple(tables), datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if errors:
        raise CatalogRefreshError(
            "Discovery failed, the stored catalog was left as it was:\n  " + "\n  ".join(errors)
        )
    return StoredCatalog(found)


def dumps(catalog: StoredCatalog) -> str:
    body = {
        "version": CATALOG_VERSION,
        "pipelines": {
            name: {"discovered_at": p.discovered_at, "tables": [table_to_json(t) for t in p.tables]}
            for name, p in sorted(catalog.pipelines.items())
        },
    }
    return json.dumps(body, indent=1, sort_keys=True)


def loads(text: str) -> StoredCatalog:
    raw = json.loads(text)
    if raw.get("version") != CATALOG_VERSION:
        raise ValueError(
            f"stored catalog version {raw.get('version')!r} is not {CATALOG_VERSION}; {REFRESH_HINT}"
        )
    return StoredCatalog(
        {
            name: PipelineCatalog(tuple(table_from_json(t) for t in p["tables"]), p["discovered_at"])
            for name, p in raw["pipelines"].items()
        }
    )


def write_catalog(catalog: StoredCatalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(catalog))
    tmp.replace(path)


def read_catalog(path: Path | None) -> StoredCatalog | None:
    if path is None or not path.exists():
        return None
    return loads(path.read_text())


def state_key(
    specs_dir: str,
    pipelines: list[str] | None = None,
    exclude: list[str] | None = None,
    shard: str | None = None,
) -> str:
    """The defs-state key of a component instance: it names the specs directory and the selection, so
    two directories or selections never share a stored catalog."""
    selected = ",".join(pipelines) if pipelines else "*"
    if exclude:
        selected += " except " + ",".join(exclude)
    if shard:
        selected += f" shard {shard}"
    return f"CdcPipelineComponent[{specs_dir}:{selected}]"


def stored_catalog_path(specs_dir: Path) -> Path:
    """Where this project's component instance (``cdc_platform/defs/pipelines``) keeps the catalog of
    ``specs_dir``: the local state file ``dg utils refresh-defs-state`` writes for it."""

    return get_local_state_path(state_key(str(specs_dir.resolve())), load_stack_settings().project_root)


def follow_catalog(specs: Specs, pipeline: str, tables: list[Table]) -> bool:
    """After a schema change was applied, the stored catalog (if the pipeline has one) takes the
    tables as the source has them now, so the assets' column metadata and code versions follow on
    the next load of the code location. Returns whether it changed."""
    path = stored_catalog_path(specs.directory)
    stored = read_catalog(path)
    if stored is None or pipeline not in stored.pipelines or not tables:
        return False
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_catalog(StoredCatalog({**stored.pipelines, pipeline: PipelineCatalog(tuple(tables), now)}), path)
    return True
