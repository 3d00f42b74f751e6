"""The platform's own Dagster resource: settings every asset, check, sensor and job shares.

Kept apart from the asset builders so that jobs, sensors and checks depend on the settings, not on
the module that builds pipeline assets (which is what tied them in an import circle).

**One source of truth for specs at run time.** The code location validates the specs directory
once, when it loads, and registers what it loaded here. Every check, sensor and job body asks
:meth:`CdcSettingsResource.specs` and gets that very object, the one the assets were built from: an
edited spec takes effect for all of them together, at the next reload of the code location. A
process that did not load the location (a resource built by hand) reads the directory itself.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from cdc_platform.specs.loader import Specs, load_specs

#: specs directory (resolved) -> the specs the code location loaded from it in this process
_LOADED: dict[Path, Specs] = {}


def register_loaded_specs(specs: Specs) -> None:
    """Called by the component when it builds its definitions."""
    _LOADED[specs.directory.resolve()] = specs


class CdcSettingsResource(dg.ConfigurableResource):
    """Where the specs live and which Kafka the connectors' schema-history topics use."""

    specs_dir: str
    kafka_bootstrap: str
    #: Jolokia agent in the Connect JVM, for Debezium's and Connect's metrics; empty: not read
    jolokia_url: str = ""

    def specs(self) -> Specs:
        """The validated specs the code location loaded (module docstring)."""
        directory = Path(self.specs_dir).resolve()
        loaded = _LOADED.get(directory)
        return loaded if loaded is not None else load_specs(directory)
