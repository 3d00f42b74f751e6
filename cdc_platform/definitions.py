"""The Dagster code location: this ``dg`` project's defs folder (``cdc_platform/defs``).

``dg dev``, ``workspace.yaml`` and ``dagster asset materialize -m cdc_platform.definitions``
load it; ``dg list defs`` reads the same folder. Loading reads specs and the stored table catalog
only, so it never waits on a database, Kafka or Kafka Connect.
"""

import warnings
from pathlib import Path

import dagster as dg

# Dagster itself converts a multi-asset's check specs into an AssetChecksDefinition and passes the
# asset's `execution_type` along, which its own beta guard then reports on every load. Nothing in
# this project sets that parameter, and a user cannot act on the warning: keep it out of the terminal.
warnings.filterwarnings("ignore", message=r"Parameter `execution_type` of function", category=dg.BetaWarning)

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
