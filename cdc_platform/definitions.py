"""The Dagster code location: this ``dg`` project's defs folder (``cdc_platform/defs``).

``workspace.yaml``, ``dagster dev`` and ``dagster asset materialize -m cdc_platform.definitions``
load it; ``dg list defs`` reads the same folder. Loading reads specs and the stored table catalog
only, so it never waits on a database, Kafka or Kafka Connect.
"""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
