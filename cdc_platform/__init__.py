"""Change Data Capture pipelines (Debezium on Kafka Connect) expressed as Dagster assets.

The public names load on first use (PEP 562): importing any module of the package, e.g. the
``cdc-platform stack`` commands or the stack's scripts, does not import Dagster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdc_platform.dagster.component import CdcPipelineComponent
    from cdc_platform.dagster.translator import CdcAssetProps, CdcTranslator

_PUBLIC = {
    "CdcPipelineComponent": "cdc_platform.dagster.component",
    "CdcAssetProps": "cdc_platform.dagster.translator",
    "CdcTranslator": "cdc_platform.dagster.translator",
}
__all__ = ["CdcAssetProps", "CdcPipelineComponent", "CdcTranslator"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cdc_platform' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
