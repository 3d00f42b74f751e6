"""The package's floors: every import of the platform's own modules points down (or stays on its
floor), function-level imports included, so no import circle can form. README, "Where the code lives"."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cdc_platform"
#: lowest first; a module may import its own floor and the floors below it
FLOORS = (
    ("pure facts and connector builders", ("engines", "connectors", "clock", "kafka_log")),
    ("specs and settings", ("specs", "secrets", "settings", "stack", "access")),
    ("clients", ("kafka_connect", "kafka_admin", "db", "platform_db", "audit")),
    ("schema", ("schema",)),
    ("pipeline and the S3 target", ("pipeline", "s3")),
    ("operations and quality", ("health", "alerts", "ops", "quality")),
    ("Dagster wiring", ("dagster", "definitions", "definitions_operator", "defs")),
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


def _function_level_imports(path: Path):
    source = path.read_text().splitlines()
    for function in ast.walk(ast.parse("\n".join(source))):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield node, source


def test_every_function_level_import_says_why_it_is_lazy():
    """Imports live at the top of a module, except those that keep a heavy library (pyarrow, boto3,
    Great Expectations, a database driver, Dagster for the specs and the stack) off a light load
    path; each of those sits under a ``# lazy: <reason>`` comment (one comment may cover a block)."""
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node, lines in _function_level_imports(path):
            above = node.lineno - 2
            while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
                above -= 1
            if above < 0 or not lines[above].strip().startswith("# lazy:"):
                silent.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
                )
    assert not silent, (
        "function-level imports without a `# lazy:` reason (hoist them, or say why):\n" + "\n".join(silent)
    )


def _modules_loaded_by(module: str, candidates: tuple[str, ...]) -> list[str]:
    import subprocess
    import sys

    probe = f"import sys, {module}; print(' '.join(m for m in {candidates!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_code_location_loads_without_the_run_time_libraries():
    """What the lazy imports are for: loading the definitions (every code-server start, every
    `dagster definitions validate`) imports no database driver, no pyarrow, boto3 or GX."""
    heavy = (
        "pyarrow",
        "pyiceberg",
        "boto3",
        "great_expectations",
        "pandas",
        "psycopg",
        "pymysql",
        "pyodbc",
        "moto",
    )
    assert _modules_loaded_by("cdc_platform.definitions", heavy) == []


def test_the_stack_commands_load_without_dagster_or_drivers():
    heavy = ("dagster", "sqlalchemy", "psycopg", "pymysql", "pyarrow", "boto3", "confluent_kafka")
    assert _modules_loaded_by("cdc_platform.cli.stack_commands", heavy) == []
