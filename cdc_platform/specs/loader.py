"""Reading the specs directory into validated models; every error names file, pipeline and field.

``${VAR}`` and ``${VAR:-default}`` in non-secret scalar values are expanded from the environment, so
one spec follows the stack's ports wherever CDC_* variables move them. Secrets are never expanded:
they stay references until a connection is opened (Python side) or a connector resolves them
(Kafka Connect side, through its config providers).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from cdc_platform.engines.kinds import DATABASE_KINDS, TARGETS, has_full_load, named
from cdc_platform.settings import load_stack_settings
from cdc_platform.specs.models import ConnectionSpec, PipelineSpec, SpecFile

SPECS_DIR_VARIABLE = "CDC_SPECS_DIR"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SpecError(ValueError):
    """A spec problem, located: ``file``, optional ``pipeline`` and ``field``."""

    def __init__(
        self, file: Path | str, message: str, *, pipeline: str | None = None, field: str | None = None
    ):
        self.file, self.pipeline, self.field = str(file), pipeline, field
        where = [self.file]
        if pipeline:
            where.append(f"pipeline {pipeline!r}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {message}")


class SpecErrors(ValueError):
    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class LoadedPipeline:
    spec: PipelineSpec
    file: Path


@dataclass
class Specs:
    directory: Path
    connections: dict[str, ConnectionSpec] = field(default_factory=dict)
    connection_files: dict[str, Path] = field(default_factory=dict)
    pipelines: dict[str, LoadedPipeline] = field(default_factory=dict)
    #: connections defined but invalid: already reported, so a pipeline naming one is not "unknown"
    invalid_connections: set[str] = field(default_factory=set)

    def connection(self, name: str) -> ConnectionSpec:
        return self.connections[name]


def default_specs_dir() -> Path:
    configured = os.environ.get(SPECS_DIR_VARIABLE)
    if configured:
        return Path(configured).resolve()

    return load_stack_settings().project_root / "resources"


def _expand(value, file: Path, where: str):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "password" and isinstance(v, dict):
                # a reference's file path may follow the environment; the secret itself never passes here
                out[k] = {
                    rk: _expand(rv, file, f"{where}.{k}.{rk}") if rk == "file" else rv for rk, rv in v.items()
                }
            else:
                out[k] = _expand(v, file, f"{where}.{k}")
        return out
    if isinstance(value, list):
        return [_expand(v, file, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def repl(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise SpecError(file, f"environment variable {name} is not set and has no default", field=where)

        # stays a string: the model's field type decides (a port becomes an int, a database name
        # made of digits stays the string it is)
        return _VAR.sub(repl, value)
    return value


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


#: libyaml's safe loader when PyYAML was built with it: specs of hundreds of pipelines are read at
#: every code-location load, and the pure-Python parser took a tenth of a second per 100 pipelines
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_specs(directory: Path | None = None) -> Specs:
    """Parse and validate every ``*.yaml``/``*.yml`` under ``directory``; raise all problems at once."""
    directory = (directory or default_specs_dir()).resolve()
    if not directory.is_dir():
        raise SpecErrors([SpecError(directory, "the specs directory does not exist")])
    specs = Specs(directory=directory)
    errors: list[SpecError] = []
    # every YAML file; the ones without connections/pipelines (service configs) are skipped below
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    for path in files:
        rel = path.relative_to(directory.parent) if directory.parent in path.parents else path
        try:
            raw = yaml.load(path.read_text(), Loader=SAFE_LOADER) or {}
        except yaml.YAMLError as exc:
            errors.append(SpecError(rel, f"not valid YAML: {exc}"))
            continue
        if not isinstance(raw, dict) or not ({"connections", "pipelines"} & set(raw)):
            continue  # not a spec file (e.g. a service config)
        try:
            top = SpecFile.model_validate(raw)
        except ValidationError as exc:
            errors += [SpecError(rel, e["msg"], field=_field_path(e["loc"])) for e in exc.errors()]
            continue
        for name, body in top.connections.items():
            where = f"connections.{name}"
            if name in specs.connections:
                errors.append(
                    SpecError(
                        rel,
                        f"connection {name!r} is also defined in {specs.connection_files[name]}",
                        field=where,
                    )
                )
                continue
            try:
                conn = ConnectionSpec.model_validate({**_expand(body, rel, where), "name": name})
            except SpecError as exc:
                errors.append(exc)
                specs.invalid_connections.add(name)
                continue
            except ValidationError as exc:
                errors += [
                    SpecError(rel, e["msg"], field=f"{where}.{_field_path(e['loc'])}".rstrip("."))
                    for e in exc.errors()
                ]
                specs.invalid_connections.add(name)
                continue
            specs.connections[name] = conn
            specs.connection_files[name] = rel
        for index, body in enumerate(top.pipelines):
            label = body.get("name") if isinstance(body, dict) else None
            try:
                pipeline = PipelineSpec.model_validate(_expand(body, rel, f"pipelines[{index}]"))
            except SpecError as exc:
                exc.pipeline = label
                errors.append(exc)
                continue
            except ValidationError as exc:
                errors += [
                    SpecError(rel, e["msg"], pipeline=label, field=_field_path(e["loc"]))
                    for e in exc.errors()
                ]
                continue
            if pipeline.name in specs.pipelines:
                other = specs.pipelines[pipeline.name].file
                errors.append(
                    SpecError(
                        rel,
                        f"duplicate pipeline name (first defined in {other})",
                        pipeline=pipeline.name,
                        field="name",
                    )
                )
                continue
            specs.pipelines[pipeline.name] = LoadedPipeline(pipeline, rel)
    for loaded in specs.pipelines.values():
        errors += _check_references(specs, loaded)
    if errors:
        raise SpecErrors(errors)
    return specs


def _check_references(specs: Specs, loaded: LoadedPipeline) -> list[SpecError]:
    p, errors = loaded.spec, []
    # a connection that failed its own validation was reported there; naming it here as "unknown"
    # would add a second, misleading error for the same cause
    broken = {getattr(p, role) for role in ("source", "target")} & specs.invalid_connections
    for role in ("source", "target"):
        name = getattr(p, role)
        if name in broken:
            continue
        if name not in specs.connections:
            known = ", ".join(sorted(specs.connections)) or "none defined"
            errors.append(
                SpecError(
                    loaded.file, f"unknown connection {name!r} (known: {known})", pipeline=p.name, field=role
                )
            )
    if errors or broken:
        return errors
    source, target = specs.connections[p.source], specs.connections[p.target]
    traits = TARGETS.get(target.kind.value)
    if source.kind.value not in DATABASE_KINDS:
        errors.append(SpecError(loaded.file, f"{named([source.kind.value])} is a target only: a pipeline cannot read from it",
                                pipeline=p.name, field="source"))  # fmt: skip
    elif traits is not None and source.kind.value not in traits.sources:
        errors.append(SpecError(loaded.file, f"{named([target.kind.value])} targets take {named(traits.sources)} "
                                f"sources, not {named([source.kind.value])}", pipeline=p.name, field="target"))  # fmt: skip
    elif traits is not None and traits.one_writer and p.options.sink_tasks != 1:
        errors.append(SpecError(loaded.file, f"{named([target.kind.value])} targets have no sink connector: the platform's "
                                "own writer writes them (more writers: options.s3_writer_runs over "
                                "options.topic_partitions, table_format iceberg); remove options.sink_tasks",
                                pipeline=p.name, field="options.sink_tasks"))  # fmt: skip
    if target.kind.value == "s3" and target.table_format != "iceberg" and p.options.topic_partitions != 1:
        errors.append(SpecError(loaded.file, "the Parquet layout of S3 targets orders a key's rows by one number, "
                                "the offset of one partition per table; use table_format: iceberg on connection "
                                f"{p.target!r} for more partitions, or remove options.topic_partitions",
                                pipeline=p.name, field="options.topic_partitions"))  # fmt: skip
    if p.options.s3_writer_runs and target.kind.value != "s3":
        errors.append(SpecError(loaded.file, f"options.s3_writer_runs is for S3 targets; {p.target!r} is "
                                f"{named([target.kind.value])}, written by its sink connector (options.sink_tasks)",
                                pipeline=p.name, field="options.s3_writer_runs"))  # fmt: skip
    elif p.options.s3_writer_runs > p.options.topic_partitions:
        errors.append(SpecError(loaded.file, f"options.s3_writer_runs is {p.options.s3_writer_runs}, more than the "
                                f"{p.options.topic_partitions} partition(s) of each table topic: each writer takes "
                                "whole partitions, so the others would have none; raise options.topic_partitions",
                                pipeline=p.name, field="options.s3_writer_runs"))  # fmt: skip
    if traits is not None and traits.full_change_events and p.options.change_events == "lean":
        errors.append(SpecError(loaded.file, f"{named([target.kind.value])} targets write each change's source position "
                                "and commit time (_cdc_position, _cdc_source_ts_ms) from Debezium's source block, "
                                "which lean change events drop; remove options.change_events or set it to full",
                                pipeline=p.name, field="options.change_events"))  # fmt: skip
    if (
        p.copies
        and source.kind.value in DATABASE_KINDS
        and not has_full_load(source.kind.value, target.kind.value)
    ):
        errors.append(SpecError(loaded.file, f"mode {p.mode.value} needs a full load, and there is no full-load "
                                f"path for {source.kind.value} -> {target.kind.value} yet; use mode cdc_only",
                                pipeline=p.name, field="mode"))  # fmt: skip
    if p.source == p.target and p.target_schema in {n.split(".")[0] for n in p.tables.names} | {
        p.tables.schema_
    }:
        errors.append(SpecError(loaded.file, "target_schema equals a source schema on the same connection; the copy "
                                "would overwrite its own source", pipeline=p.name, field="target_schema"))  # fmt: skip
    return errors
