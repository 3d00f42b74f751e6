"""How the code location scales: generated specs of P pipelines x T tables, with a stored catalog
(as after `cdc-platform refresh`), loaded twice per size:

- in a fresh interpreter, split into phases: imports, building our definitions, and Dagster
  resolving them into a repository (asset graph, jobs, schedules, sensors), with the peak RSS;
- by ``dagster definitions validate`` itself, the command the targets name: the same load plus
  the CLI's start, the instance, and the snapshot of every job and asset that a code server sends
  the UI. Next to it, the same command on a one-asset definitions file, and on the same graph
  in plain Dagster twice: from bare specs (what Dagster alone costs for that many definitions), and
  from specs carrying the same table metadata, kinds and descriptions (what Dagster costs for that
  graph as the UI shows it).

No service is needed. Targets (issue 14): 100 x 20 < 3 s and 500 x 20 < 8 s. Run: ``python bench/code_location.py [--sizes 1x5,100x20,500x20]``; writes
bench/code_location.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
started = time.monotonic()
from pathlib import Path
from cdc_platform.dagster.component import CdcPipelineComponent
imported = time.monotonic()
component = CdcPipelineComponent.from_attributes_dict(attributes={"specs_dir": sys.argv[1]})
defs = component.build_defs_from_state(None, Path(sys.argv[2]))
built = time.monotonic()
repo = defs.get_repository_def()
repo.get_all_jobs()
resolved = time.monotonic()
print(json.dumps({"import": imported - started, "build": built - imported, "resolve": resolved - built,
                  "total": resolved - started, "assets": len(repo.asset_graph.get_all_asset_keys()),
                  "checks": len(repo.asset_graph.asset_check_keys),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def generate(directory: Path, pipelines: int, tables: int, split: int = 0) -> Path:
    """Specs and a stored catalog of ``pipelines`` x ``tables`` (PostgreSQL -> MariaDB, 6 columns each);
    with ``split``, also the catalog each shard's location stores (``state_1`` .. ``state_<split>``: only
    its pipelines, as ``dg utils refresh-defs-state`` writes it for that instance)."""
    from cdc_platform.dagster.catalog import PipelineCatalog, StoredCatalog, write_catalog
    from cdc_platform.dagster.component import pipeline_shard
    from cdc_platform.schema.model import Column, Table
    from cdc_platform.schema.types import CanonicalType

    conn = {
        "host": "db.example",
        "port": 5432,
        "database": "shop",
        "username": "cdc",
        "password": {"env": "PW"},
    }
    (directory / "connections.yaml").write_text(yaml.safe_dump({"connections": {
        "src": {**conn, "kind": "postgresql"}, "dw": {**conn, "kind": "mariadb", "port": 3306}}}))  # fmt: skip
    columns = (Column("id", CanonicalType("bigint"), False, "bigint"),
               Column("name", CanonicalType("varchar", length=80), True, "character varying"),
               Column("amount", CanonicalType("numeric", precision=12, scale=2), True, "numeric"),
               Column("at", CanonicalType("timestamptz"), True, "timestamp with time zone"),
               Column("doc", CanonicalType("jsonb"), True, "jsonb"),
               Column("flag", CanonicalType("boolean"), True, "boolean"))  # fmt: skip
    specs, catalogs = [], {}
    for p in range(pipelines):
        name = f"p{p:04d}"
        names = [f"s{p:04d}.t{t:03d}" for t in range(tables)]
        specs.append({"name": name, "source": "src", "target": "dw", "target_schema": f"dw{p:04d}",
                      "tables": {"schema": f"s{p:04d}", "include": ["t*"]}})  # fmt: skip
        catalogs[name] = PipelineCatalog(tuple(Table(q.split(".")[0], q.split(".")[1], columns, ("id",)) for q in names),
                                         "2026-11-30T00:00:00+00:00")  # fmt: skip
    (directory / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": specs}))
    state = directory / "state"
    write_catalog(StoredCatalog(catalogs), state)
    for k in range(1, split + 1):
        write_catalog(StoredCatalog({n: c for n, c in catalogs.items() if pipeline_shard(n, split) == k}),
                      directory / f"state_{k}")  # fmt: skip
    return state


DEFS_MODULE = """
import sys
from pathlib import Path
from cdc_platform.dagster.component import CdcPipelineComponent
here = Path(__file__).parent
defs = CdcPipelineComponent.from_attributes_dict(attributes={{"specs_dir": str(here), **{attributes!r}}}).build_defs_from_state(
    None, here / {state!r})
"""

FLOOR_MODULE = """
import dagster as dg

@dg.asset
def one():
    return 1

defs = dg.Definitions(assets=[one])
"""

#: the same graph in plain Dagster: per pipeline 20 source specs, one multi-asset (schema, two
#: connectors, the target tables), four quality checks a table in one op, and one check a connector
#: and one a table (whether the pipeline keeps it current) in another; no code of ours; the garbage
#: collector handled as our component handles it. With ``described`` False: bare specs, no metadata,
#: what Dagster alone costs for the keys and deps. With it True: the same specs carrying what ours
#: show in the UI, written by hand with Dagster's own API (groups, kinds, tags, descriptions, code
#: versions, blocking checks, the ``dagster/`` table name, 6-column schema and column lineage, and
#: text metadata of as many keys as ours, and the two resources ours binds, which its ops take and the
#: UI lists on every asset and check): what Dagster costs for that graph as a user sees it.
PLAIN_MODULE = """
import gc, sys
import dagster as dg
gc.disable()
P, T, DESCRIBED = {pipelines}, {tables}, {described}
COLUMNS = [("id", "bigint"), ("name", "varchar(80)"), ("amount", "numeric(12,2)"), ("at", "timestamptz"),
           ("doc", "jsonb"), ("flag", "boolean")]

def described(kinds, text, **meta):
    if not DESCRIBED:
        return {{}}
    values = {{f"cdc/{{k}}": dg.MetadataValue.text(v) for k, v in meta.items() if not k.startswith("dagster_")}}
    return dict(kinds=set(kinds), description=text, metadata={{**values, **meta.get("dagster_table", {{}})}})

def schema():
    return dg.TableSchema(columns=[
        dg.TableColumn(c, t, description=f"source type {{t}}" + (" (primary key)" if c == "id" else ""),
                       constraints=dg.TableColumnConstraints(nullable=c != "id", unique=c == "id"),
                       tags={{"primary_key": ""}} if c == "id" else {{}})
        for c, t in COLUMNS])

def table(name, columns, upstream=None):
    if not DESCRIBED:
        return {{}}
    meta = {{"dagster/table_name": dg.MetadataValue.text(name), "dagster/column_schema": dg.MetadataValue.table_schema(columns)}}
    if upstream:
        meta["dagster/column_lineage"] = dg.MetadataValue.column_lineage(dg.TableColumnLineage(deps_by_column={{
            c: [dg.TableColumnDep(asset_key=upstream, column_name=c)] for c, _ in COLUMNS}}))
    return meta

# the resources ours binds and its ops take (the UI lists them on every asset and check), when described
if DESCRIBED:
    class Settings(dg.ConfigurableResource):
        specs_dir: str
        kafka_bootstrap: str
        jolokia_url: str = ""

    class Connect(dg.ConfigurableResource):
        url: str

    def pipeline_op(cdc_settings: Settings, kafka_connect: Connect):
        pass

    def quality_op(cdc_settings: Settings):
        pass

    def health_op(cdc_settings: Settings, kafka_connect: Connect):
        pass

    RESOURCES = dict(cdc_settings=Settings(specs_dir="/specs", kafka_bootstrap="kafka:9092"),
                     kafka_connect=Connect(url="http://connect:8083"))
else:
    def pipeline_op():
        pass

    quality_op = health_op = pipeline_op
    RESOURCES = {{}}

assets, checks = [], []
for p in range(P):
    base = dict(pipeline=f"p{{p}}", source_connection="src", target_connection="dw", discovered_at="2026-11-30")
    conn = dict(base, source_connector=f"p{{p}}-source", sink_connector=f"p{{p}}-sink", slot=f"p{{p}}_slot",
                publication=f"p{{p}}_pub")
    tags = {{"cdc/pipeline": f"p{{p}}"}} if DESCRIBED else {{}}
    schemas = [schema() if DESCRIBED else None for t in range(T)]
    src = [dg.AssetSpec(["src", f"s{{p}}", f"t{{t}}"], group_name="src_source" if DESCRIBED else None,
                        **described(["postgres"], f"s{{p}}.t{{t}} on src: a source table", source_connection="src",
                                    dagster_table=table(f"src.s{{p}}.t{{t}}", schemas[t])))
           for t in range(T)]
    assets += src
    version = dict(code_version=f"{{p:016x}}") if DESCRIBED else {{}}
    group = dict(group_name=f"p{{p}}") if DESCRIBED else {{}}
    specs = [dg.AssetSpec([f"p{{p}}", "target_schema"], tags=tags, **group, **version,
                          **described(["mariadb"], f"Schema d{{p}} on dw", **base)),
             dg.AssetSpec([f"p{{p}}", "source_connector"], deps=[s.key for s in src], tags=tags, **group, **version,
                          **described(["debezium", "kafka", "postgres"], "Debezium source connector",
                                      **conn, config_hash="0" * 16)),
             dg.AssetSpec([f"p{{p}}", "sink_connector"], deps=[[f"p{{p}}", "source_connector"]], tags=tags, **group,
                          **version, **described(["debezium", "kafka", "mariadb"], "Debezium JDBC sink connector",
                                                 **conn, config_hash="0" * 16))]
    specs += [dg.AssetSpec(["dw", f"d{{p}}", f"t{{t}}"], deps=[src[t].key, [f"p{{p}}", "target_schema"]], tags=tags,
                           **group, **version,
                           **described(["mariadb"], f"d{{p}}.t{{t}} on dw, replicated from src s{{p}}.t{{t}}",
                                       **base, value_rules="none", source_connector=f"p{{p}}-source",
                                       sink_connector=f"p{{p}}-sink", topic=f"p{{p}}.s{{p}}.t{{t}}",
                                       dagster_table=table(f"dw.d{{p}}.t{{t}}", schemas[t], src[t].key)))
              for t in range(T)]

    _pipeline = dg.multi_asset(specs=specs, name=f"p{{p}}_pipeline", can_subset=True)(pipeline_op)

    _quality = dg.multi_asset_check(specs=[dg.AssetCheckSpec(n, asset=["dw", f"d{{p}}", f"t{{t}}"],
                                                   blocking=DESCRIBED and n in ("b", "c"),
                                                   description=f"{{n}} of t{{t}}" if DESCRIBED else None)
                                 for t in range(T) for n in ("a", "b", "c", "d")], name=f"p{{p}}_quality",
                          can_subset=True)(quality_op)

    _health = dg.multi_asset_check(specs=[dg.AssetCheckSpec("running", asset=[f"p{{p}}", r])
                                 for r in ("source_connector", "sink_connector")]
                                + [dg.AssetCheckSpec("current", asset=["dw", f"d{{p}}", f"t{{t}}"]) for t in range(T)],
                          name=f"p{{p}}_health", can_subset=True)(health_op)

    assets.append(_pipeline)
    checks += [_quality, _health]
defs = dg.Definitions(assets=assets, asset_checks=checks, resources=RESOURCES)
gc.enable()
gc.freeze()
"""

#: runs a command and prints its wall seconds and its peak RSS (the largest child's, in KB)
TIMED = """
import resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if done.returncode != 0:
    sys.exit(done.stderr[-2000:])
print(time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _env() -> dict:
    return {"PW": "x", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
            "DAGSTER_HOME": str(ROOT / "dagster_home")}  # fmt: skip


def validate(module: Path) -> tuple[float, float]:
    """(wall seconds, peak MB) of ``dagster definitions validate -f module`` in a fresh process."""
    out = subprocess.run([sys.executable, "-c", TIMED, sys.executable, "-m", "dagster", "definitions", "validate",
                          "-f", str(module)], capture_output=True, text=True, env=_env(), check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    seconds, kb = out.stdout.split()
    return float(seconds), int(kb) / 1024


def measure(pipelines: int, tables: int, split: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        state = generate(Path(tmp), pipelines, tables, split)
        from cdc_platform.dagster.component import pipeline_shard

        shard_sizes = [
            sum(pipeline_shard(f"p{p:04d}", split) == k for p in range(pipelines))
            for k in range(1, split + 1)
        ]
        out = subprocess.run([sys.executable, "-c", CHILD, tmp, str(state)], capture_output=True, text=True,
                             env=_env(), check=False)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        module = Path(tmp) / "generated_defs.py"
        module.write_text(DEFS_MODULE.format(attributes={}, state="state"))
        result = json.loads(out.stdout.strip().splitlines()[-1])
        bare = Path(tmp) / "bare_defs.py"
        bare.write_text(PLAIN_MODULE.format(pipelines=pipelines, tables=tables, described=False))
        described = Path(tmp) / "described_defs.py"
        described.write_text(PLAIN_MODULE.format(pipelines=pipelines, tables=tables, described=True))
        # alternately, `repeat` times each, and the medians: on this kind of machine one run of the
        # same command varies by a third, so a single pair of runs can show any ratio
        ours_runs, bare_runs, described_runs = [], [], []
        for _ in range(repeat):
            ours_runs.append(validate(module))
            bare_runs.append(validate(bare))
            described_runs.append(validate(described))
        result["validate"] = statistics.median(s for s, _ in ours_runs)
        result["validate_mb"] = max(mb for _, mb in ours_runs)
        result["bare"] = statistics.median(s for s, _ in bare_runs)
        result["bare_mb"] = max(mb for _, mb in bare_runs)
        result["validate_runs"] = [s for s, _ in ours_runs]
        result["bare_runs"] = [s for s, _ in bare_runs]
        result["described"] = statistics.median(s for s, _ in described_runs)
        result["described_runs"] = [s for s, _ in described_runs]
        # the median of each run's ratio to the plain run beside it: the machine's speed drifts over
        # minutes, and neighbouring runs share it, so this is the steadier of the two estimates
        result["paired_bare"] = _paired(result["validate_runs"], result["bare_runs"])
        result["paired_described"] = _paired(result["validate_runs"], result["described_runs"])
        # the same pipelines over `split` code locations (`shard: K/N`), each validated on its own, as
        # each location's code server loads it; beside each, plain Dagster's described graph of as
        # many pipelines, alternately, so that the split's figure is a ratio as well as seconds
        result["shards"], result["shard_plain"], result["shard_paired"] = [], [], []
        for k in range(1, split + 1):
            shard = Path(tmp) / f"shard_{k}_defs.py"
            shard.write_text(DEFS_MODULE.format(attributes={"shard": f"{k}/{split}"}, state=f"state_{k}"))
            plain = Path(tmp) / f"shard_{k}_described_defs.py"
            plain.write_text(PLAIN_MODULE.format(pipelines=shard_sizes[k - 1], tables=tables, described=True))
            ours_runs, plain_runs = [], []
            for _ in range(repeat):
                ours_runs.append(validate(shard)[0])
                plain_runs.append(validate(plain)[0])
            result["shards"].append(statistics.median(ours_runs))
            result["shard_plain"].append(statistics.median(plain_runs))
            result["shard_paired"].append(_paired(ours_runs, plain_runs))
        result["shard_sizes"] = shard_sizes
    return result


def _paired(ours: list[float], plain: list[float]) -> float:
    """The median of ours / plain over runs made one after the other."""
    return statistics.median(o / p for o, p in zip(ours, plain, strict=True))


def _split_cell(r: dict) -> str:
    """Each location's seconds, plain Dagster's for as many pipelines, and the largest ratio."""
    if not r["shards"]:
        return "-"
    ours = " / ".join(f"{s:.2f}" for s in r["shards"])
    plain = " / ".join(f"{s:.2f}" for s in r["shard_plain"])
    worst = max(s / p for s, p in zip(r["shards"], r["shard_plain"], strict=True))
    sizes = " / ".join(str(n) for n in r["shard_sizes"])
    return (f"ours {ours}; plain, described {plain} (pipelines {sizes}); ratio <= {worst:.2f}x "
            f"(paired <= {max(r['shard_paired']):.2f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1x5,100x20,500x20")
    parser.add_argument(
        "--repeat", type=int, default=3, help="validate runs of ours and of plain Dagster, alternately"
    )
    parser.add_argument("--split", type=int, default=5,
                        help="also validate each size's pipelines split over this many code locations (0: not)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        floor = Path(tmp) / "one_asset.py"
        floor.write_text(FLOOR_MODULE)
        # the faster of two: the first run of a fresh environment also pays for cold caches
        floor_s, floor_mb = min(validate(floor), validate(floor))
    print(f"dagster definitions validate of a one-asset file: {floor_s:.2f} s, peak {floor_mb:.0f} MB")
    rows = []
    for size in args.sizes.split(","):
        p, t = (int(x) for x in size.split("x"))
        started = time.monotonic()
        r = measure(p, t, args.split if p >= args.split else 0, args.repeat)
        rows.append((p, t, r))
        print(f"{p:4} pipelines x {t:3} tables: import {r['import']:.2f} s + build {r['build']:.2f} s + "
              f"resolve {r['resolve']:.2f} s = {r['total']:.2f} s; {r['assets']:,} assets, {r['checks']:,} checks, "
              f"peak {r['peak_mb']:.0f} MB; dagster definitions validate {r['validate']:.2f} s, "
              f"peak {r['validate_mb']:.0f} MB (runs {', '.join(f'{x:.2f}' for x in r['validate_runs'])}); the same graph in "
              f"plain Dagster {r['bare']:.2f} s (runs {', '.join(f'{x:.2f}' for x in r['bare_runs'])}), "
              f"peak {r['bare_mb']:.0f} MB; ratio {r['validate'] / r['bare']:.2f}x (paired {r['paired_bare']:.2f}x); plain Dagster with the same "
              f"metadata {r['described']:.2f} s (runs {', '.join(f'{x:.2f}' for x in r['described_runs'])}), "
              f"ratio {r['validate'] / r['described']:.2f}x (paired {r['paired_described']:.2f}x); split "
              f"{len(r['shards'])} ways: {_split_cell(r)} "
              f"(wall {time.monotonic() - started:.1f} s)")  # fmt: skip
    lines = ["# Code location scale benchmark", "",
             f"Written by `python bench/code_location.py --sizes {args.sizes}` on {time.strftime('%Y-%m-%d')}. "
             "Each size in a fresh interpreter; specs with a stored catalog, PostgreSQL -> MariaDB, 6 columns a table.",
             "Targets: 100 x 20 < 3 s, 500 x 20 < 8 s.",
             "Phases: in a fresh interpreter (imports, our build, Dagster's resolve). `validate`: the whole "
             "`dagster definitions validate -f` command, which also snapshots every job and asset for the UI; "
             f"the median of {args.repeat} runs, alternating with plain Dagster's (every run in the last column).",
             f"`dagster definitions validate` of a one-asset file: {floor_s:.2f} s, peak {floor_mb:.0f} MB.",
             "`plain Dagster`: `dagster definitions validate` of the same graph (assets, deps, checks) built from "
             "bare AssetSpecs and AssetCheckSpecs, no metadata and no code of ours: what Dagster alone "
             "costs for that many definitions. `ratio`: validate / plain Dagster (target <= 1.1x); `paired`: the "
             "median of each run's ratio to the plain runs made right after it (neighbouring runs share the "
             "machine's drifting speed).",
             "`plain, described`: the same plain-Dagster graph carrying what ours shows in the UI, written with "
             "Dagster's own API (groups, kinds, tags, descriptions, code versions, blocking checks, "
             "the `dagster/` table name, column schema and column lineage, as many text metadata "
             "keys, the two resources its ops take): what Dagster costs for that graph as a user sees it. `ratio described`: validate / it.",
             f"`split {args.split} ways`: the same specs as {args.split} code locations (`shard: 1/{args.split}` .. "
             f"`{args.split}/{args.split}`), each validated on its own as its code server loads it "
             "(target: each < 8 s at 500 x 20), the median of as many runs, alternating with plain Dagster's "
             "described graph of as many pipelines as that location holds.", "",
             "| pipelines x tables | import s | build s | resolve s | phases total s | validate s "
             "| plain Dagster validate s | ratio | plain, described s | ratio described "
             "| split: each location's validate s | assets | checks "
             "| peak RSS MB (phases / validate / plain) | runs s (ours; plain; described) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]  # fmt: skip
    lines += [f"| {p} x {t} | {r['import']:.2f} | {r['build']:.2f} | {r['resolve']:.2f} | {r['total']:.2f} | "
              f"{r['validate']:.2f} | {r['bare']:.2f} | {r['validate'] / r['bare']:.2f}x (paired {r['paired_bare']:.2f}x) | "
              f"{r['described']:.2f} | {r['validate'] / r['described']:.2f}x (paired {r['paired_described']:.2f}x) | "
              f"{_split_cell(r)} | {r['assets']:,} | {r['checks']:,} | "
              f"{r['peak_mb']:.0f} / {r['validate_mb']:.0f} / {r['bare_mb']:.0f} | "
              f"{', '.join(f'{x:.2f}' for x in r['validate_runs'])}; {', '.join(f'{x:.2f}' for x in r['bare_runs'])}; "
              f"{', '.join(f'{x:.2f}' for x in r['described_runs'])} |"
              for p, t, r in rows]  # fmt: skip
    (ROOT / "bench" / "code_location.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
