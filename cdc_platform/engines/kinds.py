"""What the platform can do per engine and per source/target pair, and how each target differs.

Spec validation asks for the pairs and S3's sources, the translator for the engines' UI tags, and
the plan, the run, the definitions and the CLI for a target's traits.
"""

from __future__ import annotations

from dataclasses import dataclass

#: source -> target pairs with a full-load path (streamed COPY / LOAD DATA; pyodbc batches for SQL
#: Server, cdc_platform/pipeline/sqlserver_load.py)
DATABASE_KINDS = ("postgresql", "mysql", "mariadb", "sqlserver")
COPY_PAIRS = frozenset((src, dst) for src in DATABASE_KINDS for dst in DATABASE_KINDS)
#: sources an S3 (Parquet) target takes: those whose changes the platform's converter carries exactly
S3_SOURCES = ("postgresql", "mysql", "mariadb")
#: connection kind -> its name in messages
NAMES = {
    "postgresql": "PostgreSQL",
    "mysql": "MySQL",
    "mariadb": "MariaDB",
    "sqlserver": "SQL Server",
    "s3": "S3",
}
#: connection kind -> the kind tag Dagster shows as an engine icon
ENGINE_KINDS = {
    "postgresql": "postgres", "mysql": "mysql", "mariadb": "mariadb", "sqlserver": "sqlserver", "s3": "s3",
}  # fmt: skip


@dataclass(frozen=True)
class TargetTraits:
    """How a target kind takes a pipeline's data."""

    kind: str
    #: the platform creates the schema and tables before the copy (Parquet files carry their own)
    creates_tables: bool = True
    #: a Kafka Connect JDBC sink applies the changes; otherwise the platform's own writer does
    sink_connector: bool = True
    #: change events keep Debezium's full envelope by default (the writer needs each change's position)
    full_change_events: bool = False
    #: the database checks (row counts, checksums, drift, expectations, freshness) and the metrics
    #: schedule's lag figures apply
    database_checks: bool = True
    #: each copy must know its table topic's end offset before it reads (the files' merge orders by it)
    copy_needs_topic_positions: bool = False
    #: the source kinds it takes (the platform's converter must carry their changes exactly)
    sources: tuple[str, ...] = DATABASE_KINDS
    #: one consumer writes it, over one partition per table topic (its merge orders a key's changes
    #: by offset), so the changes cannot be spread over several sink tasks
    one_writer: bool = False
    #: holds a decimal of any precision and scale exactly (no rule narrows wide numerics for it)
    any_decimal: bool = False
    #: its full-load path exists for every source it takes (else COPY_PAIRS names the pairs)
    copies_from_every_source: bool = False


TARGETS = {
    "postgresql": TargetTraits("postgresql"),
    "mysql": TargetTraits("mysql"),
    "mariadb": TargetTraits("mariadb"),
    "sqlserver": TargetTraits("sqlserver"),
    "s3": TargetTraits("s3", creates_tables=False, sink_connector=False, full_change_events=True,
                       database_checks=False, copy_needs_topic_positions=True, sources=S3_SOURCES,
                       one_writer=True, any_decimal=True, copies_from_every_source=True),
}  # fmt: skip


def named(kinds) -> str:
    """``PostgreSQL, MySQL or MariaDB``: kinds as a person reads them in an error."""
    names = [NAMES.get(k, k) for k in kinds]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def has_full_load(source: str, target: str) -> bool:
    """A full-load path exists for this pair (the copy modes need one)."""
    traits = TARGETS.get(target)
    return (source, target) in COPY_PAIRS or (traits is not None and traits.copies_from_every_source
                                              and source in traits.sources)  # fmt: skip


def target_traits(kind: str) -> TargetTraits:
    try:
        return TARGETS[kind]
    except KeyError:
        raise ValueError(f"{kind!r} is not a target kind (known: {', '.join(TARGETS)})") from None
