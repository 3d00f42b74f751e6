"""The package's floors: every import of the platform's own modules points down (or stays on its
floor), function-level imports included, so no import circle can form. README, "Where the code lives"."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cdc_platform"
#: lowest first; a module may import its own floor and the floors below it
FLOORS = (
    ("pure facts and connector builders", ("engines", "connectors")),
    ("specs and settings", ("specs", "secrets", "settings", "stack")),
    ("clients", ("kafka_connect", "kafka_admin", "db", "platform_db", "audit")),
    ("schema", ("schema",)),
    ("pipeline and the S3 target", ("pipeline", "s3")),
    ("operations and quality", ("health", "alerts", "ops", "quality")),
    ("Dagster wiring", ("dagster", "definitions", "defs")),
    ("entry points", ("cli", "demo", "__init__")),
)


def _floor(module: str) -> int:
    head = module.split(".")[1] if "." in module else "__init__"
    for index, (_, heads) in enumerate(FLOORS):
        if head in heads:
            return index
    raise AssertionError(
        f"{module} belongs to no floor: add its package to FLOORS (and to the README's table)"
    )


def test_every_import_of_the_package_points_down():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("cdc_platform", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        here = _floor(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cdc_platform."):
                there = _floor(node.module)
                if there > here:
                    upward.append(f"{module} ({FLOORS[here][0]}) imports {node.module} ({FLOORS[there][0]})")
    assert not upward, "imports that point up a floor:\n" + "\n".join(upward)
