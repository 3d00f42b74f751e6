"""Type mapping between PostgreSQL, MySQL/MariaDB and SQL Server, through one canonical vocabulary.

Each source column is first read into a :class:`CanonicalType` (``SOURCE_*`` rules), then rendered
for the target (``TARGET_*`` tables). That gives every source -> target pair from two small tables
per engine, and the rendering is chosen to match what the Debezium JDBC sink writes for the
Debezium type the source connector emits (e.g. MySQL TIMESTAMP -> ZonedTimestamp -> timestamptz).
"""

from __future__ import annotations

from dataclasses import dataclass

CANONICAL = (
    "smallint", "integer", "bigint", "numeric", "real", "double", "boolean", "varchar", "char", "text",
    "date", "time", "timestamp", "timestamptz", "json", "jsonb", "uuid", "binary",
    # PostgreSQL interval; MySQL TIME, which is a signed duration up to 838:59:59, not a time of day;
    # MySQL YEAR; a bit string of a fixed length (MySQL BIT(n) with n > 1)
    "interval", "duration", "year", "bit",
)  # fmt: skip


class UnsupportedType(ValueError):
    pass


@dataclass(frozen=True)
class CanonicalType:
    name: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def __post_init__(self) -> None:
        if self.name not in CANONICAL:
            raise ValueError(f"unknown canonical type {self.name!r}")

    def __str__(self) -> str:
        if self.name in ("varchar", "char", "bit") and self.length:
            return f"{self.name}({self.length})"
        if self.name == "numeric" and self.precision:
            return f"numeric({self.precision},{self.scale or 0})"
        return self.name


# -- sources: native type name (lower-case, as information_schema spells it) -> canonical --------
def from_postgres(
    data_type: str, *, length: int | None, precision: int | None, scale: int | None
) -> CanonicalType:
    t = data_type.lower()
    simple = {
        "smallint": "smallint", "integer": "integer", "bigint": "bigint", "real": "real",
        "double precision": "double", "boolean": "boolean", "text": "text", "date": "date",
        "time without time zone": "time", "timestamp without time zone": "timestamp",
        "timestamp with time zone": "timestamptz", "json": "json", "jsonb": "jsonb", "uuid": "uuid",
        "bytea": "binary", "citext": "text", "inet": "text", "cidr": "text", "macaddr": "text",
        "xml": "text", "interval": "interval",
    }  # fmt: skip
    if t in simple:
        return CanonicalType(simple[t])
    if t in ("character varying", "varchar"):
        return CanonicalType("varchar", length=length) if length else CanonicalType("text")
    if t in ("character", "char", "bpchar"):
        return CanonicalType("char", length=length or 1)
    if t == "numeric":
        return CanonicalType("numeric", precision=precision, scale=scale)
    if t == "user-defined":  # enums and domains arrive as strings from Debezium
        return CanonicalType("text")
    raise UnsupportedType(f"PostgreSQL type {data_type!r} has no mapping")


def from_mysql(
    data_type: str, column_type: str, *, length: int | None, precision: int | None, scale: int | None
) -> CanonicalType:
    t, full = data_type.lower(), column_type.lower()
    unsigned = "unsigned" in full
    if t in ("tinyint", "smallint"):
        return CanonicalType("integer" if (t == "smallint" and unsigned) else "smallint")
    if t in ("mediumint", "int", "integer"):
        return CanonicalType("bigint" if unsigned else "integer")
    if t == "bigint":
        return CanonicalType("numeric", precision=20, scale=0) if unsigned else CanonicalType("bigint")
    if t in ("decimal", "numeric"):
        return CanonicalType("numeric", precision=precision, scale=scale)
    if t == "float":
        return CanonicalType("real")
    if t in ("double", "double precision", "real"):
        return CanonicalType("double")
    if t == "bit":
        bits = _bit_length(full, precision)
        return CanonicalType("boolean") if bits == 1 else CanonicalType("bit", length=bits)
    if t in ("bool", "boolean"):
        return CanonicalType("boolean")
    if t == "year":
        return CanonicalType("year")
    if t == "varchar":
        return CanonicalType("varchar", length=length)
    if t == "char":
        return CanonicalType("char", length=length or 1)
    if t in ("tinytext", "text", "mediumtext", "longtext", "enum", "set"):
        return CanonicalType("text")
    if t == "json":
        return CanonicalType("json")
    if t == "date":
        return CanonicalType("date")
    if t == "time":
        return CanonicalType("duration")
    if t == "datetime":
        return CanonicalType("timestamp")
    if t == "timestamp":
        return CanonicalType("timestamptz")
    if t in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"):
        return CanonicalType("binary")
    if t == "uuid":  # MariaDB 10.7+
        return CanonicalType("uuid")
    raise UnsupportedType(f"MySQL/MariaDB type {column_type!r} has no mapping")


def _bit_length(column_type: str, precision: int | None) -> int:
    if "(" in column_type:
        return int(column_type.split("(", 1)[1].split(")", 1)[0])
    return precision or 1


def from_sqlserver(
    data_type: str, *, length: int | None, precision: int | None, scale: int | None
) -> CanonicalType:
    t = data_type.lower()
    simple = {
        "smallint": "smallint", "tinyint": "smallint", "int": "integer", "bigint": "bigint", "real": "real",
        "float": "double", "bit": "boolean", "date": "date", "time": "time", "datetime": "timestamp",
        "datetime2": "timestamp", "smalldatetime": "timestamp", "datetimeoffset": "timestamptz",
        "uniqueidentifier": "uuid", "text": "text", "ntext": "text", "xml": "text",
        "image": "binary",
    }  # fmt: skip
    if t in simple:
        return CanonicalType(simple[t])
    if t in ("decimal", "numeric", "money", "smallmoney"):
        if t in ("money", "smallmoney"):
            return CanonicalType("numeric", precision=19, scale=4)
        return CanonicalType("numeric", precision=precision, scale=scale)
    if t in ("varchar", "nvarchar"):
        return CanonicalType("text") if length in (None, -1) else CanonicalType("varchar", length=length)
    if t in ("char", "nchar"):
        return CanonicalType("char", length=length or 1)
    if t in ("binary", "varbinary"):
        return CanonicalType("binary")
    raise UnsupportedType(f"SQL Server type {data_type!r} has no mapping")


# -- targets: canonical -> DDL type ---------------------------------------------------------------
def to_postgres(t: CanonicalType) -> str:
    fixed = {
        "smallint": "smallint", "integer": "integer", "bigint": "bigint", "real": "real",
        "double": "double precision", "boolean": "boolean", "text": "text", "date": "date",
        "time": "time(6)", "timestamp": "timestamp(6)", "timestamptz": "timestamptz(6)", "json": "json",
        "jsonb": "jsonb", "uuid": "uuid", "binary": "bytea", "interval": "interval", "duration": "interval",
        "year": "smallint",
    }  # fmt: skip
    if t.name in fixed:
        return fixed[t.name]
    if t.name == "bit":
        return f"bit({t.length or 1})"
    if t.name == "varchar":
        return f"varchar({t.length})" if t.length else "text"
    if t.name == "char":
        return f"char({t.length or 1})"
    if t.name == "numeric":
        return f"numeric({t.precision},{t.scale or 0})" if t.precision else "numeric"
    raise UnsupportedType(str(t))


#: utf8mb4 VARCHAR beyond this length cannot share a 64 KiB row with anything; use LONGTEXT instead
MYSQL_MAX_VARCHAR = 16383


def mysql_decimal_bounds(t: CanonicalType) -> tuple[int, int]:
    """The DECIMAL(P,S) a numeric becomes on MySQL/MariaDB: an unbounded numeric takes the widest
    exact one MySQL has; values beyond it fall under a rule (cdc_platform/schema/rules.py)."""
    if not t.precision:
        return 65, 30
    return min(t.precision, 65), min(t.scale or 0, 30)


def to_mysql(t: CanonicalType) -> str:
    fixed = {
        "smallint": "SMALLINT", "integer": "INT", "bigint": "BIGINT", "real": "FLOAT",
        "double": "DOUBLE", "boolean": "BOOLEAN", "text": "LONGTEXT", "date": "DATE", "time": "TIME(6)",
        # MySQL TIMESTAMP ends in 2038; DATETIME(6) holds the UTC value the sink writes (use.time.zone=UTC)
        "timestamp": "DATETIME(6)", "timestamptz": "DATETIME(6)", "json": "JSON", "jsonb": "JSON",
        "uuid": "CHAR(36)", "binary": "LONGBLOB",
        # ISO 8601 text, as PostgreSQL prints an interval with intervalstyle = 'iso_8601'
        "interval": "VARCHAR(100)", "duration": "TIME(6)", "year": "YEAR",
    }  # fmt: skip
    if t.name in fixed:
        return fixed[t.name]
    if t.name == "bit":
        return f"BIT({t.length or 1})"
    if t.name == "varchar":
        return f"VARCHAR({t.length})" if t.length and t.length <= MYSQL_MAX_VARCHAR else "LONGTEXT"
    if t.name == "char":
        # CHAR stops at 255; a longer fixed-length string keeps its padding in a VARCHAR
        return f"CHAR({t.length or 1})" if (t.length or 1) <= 255 else f"VARCHAR({t.length})"
    if t.name == "numeric":
        return "DECIMAL({},{})".format(*mysql_decimal_bounds(t))
    raise UnsupportedType(str(t))


def to_sqlserver(t: CanonicalType) -> str:
    fixed = {
        "smallint": "smallint", "integer": "int", "bigint": "bigint", "real": "real", "double": "float",
        "boolean": "bit", "text": "nvarchar(max)", "date": "date", "time": "time(6)",
        "timestamp": "datetime2(6)", "timestamptz": "datetimeoffset(6)", "json": "nvarchar(max)",
        "jsonb": "nvarchar(max)", "uuid": "uniqueidentifier", "binary": "varbinary(max)",
        "interval": "nvarchar(100)", "duration": "nvarchar(32)", "year": "smallint",
    }  # fmt: skip
    if t.name == "bit":
        return "varbinary(8)"
    if t.name in fixed:
        return fixed[t.name]
    if t.name == "varchar":
        return f"nvarchar({t.length})" if t.length and t.length <= 4000 else "nvarchar(max)"
    if t.name == "char":
        return f"nchar({min(t.length or 1, 4000)})"
    if t.name == "numeric":
        return "decimal({},{})".format(*sqlserver_decimal_bounds(t))
    raise UnsupportedType(str(t))


def sqlserver_decimal_bounds(t: CanonicalType) -> tuple[int, int]:
    """The decimal(P,S) a numeric becomes on SQL Server (38 digits at most); values beyond it fall
    under a rule (cdc_platform/schema/rules.py)."""
    if not t.precision:
        return 38, 10
    return min(t.precision, 38), min(t.scale or 0, 38)


TARGET_RENDERERS = {
    "postgresql": to_postgres,
    "mysql": to_mysql,
    "mariadb": to_mysql,
    "sqlserver": to_sqlserver,
}


def render(target_kind: str, t: CanonicalType) -> str:
    return TARGET_RENDERERS[target_kind](t)
