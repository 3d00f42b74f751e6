"""Reading the specs for a command: the ``--specs`` option, an unknown pipeline named with the
known ones, and a pipeline's tables with a failure said in the spec's own terms (file, field)."""

from __future__ import annotations

from pathlib import Path

import click

from cdc_platform.cli.common import UserError
from cdc_platform.schema.discovery import DiscoveryError, discover_pipeline_tables
from cdc_platform.schema.model import Table
from cdc_platform.secrets import SecretMissing
from cdc_platform.specs.loader import SpecErrors, Specs, load_specs

specs_option = click.option(
    "--specs", "specs_dir", envvar="CDC_SPECS_DIR", help="Specs directory (default resources/)."
)


def read_specs(specs_dir: str | None) -> Specs:
    try:
        return load_specs(Path(specs_dir) if specs_dir else None)
    except SpecErrors as exc:
        raise UserError(f"the specs are invalid:\n{exc}") from exc


def require_pipeline(specs: Specs, name: str) -> None:
    if name not in specs.pipelines:
        raise UserError(f"unknown pipeline {name!r}; known: {', '.join(sorted(specs.pipelines)) or 'none'}")


def pipeline_tables(specs: Specs, name: str) -> list[Table]:
    require_pipeline(specs, name)
    loaded = specs.pipelines[name]
    try:
        return discover_pipeline_tables(loaded.spec, specs.connection(loaded.spec.source), specs.directory)
    except (DiscoveryError, SecretMissing) as exc:
        raise UserError(f"{loaded.file}: pipeline {name!r}: field 'tables' / 'source': {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - connection failures: say which connection
        raise UserError(f"{loaded.file}: pipeline {name!r}: cannot read source {loaded.spec.source!r}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc  # fmt: skip
