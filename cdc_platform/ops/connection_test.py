"""Connection tests: can the platform reach each connection, log in, and do what its pipelines need?

A connection is tested for every role it plays: as a source (logical decoding or a row binlog, the
replication privilege, ``SELECT`` on each table, and what the heartbeat table and the publication
need) and as a target (creating the target schema and tables). Every failed check names the missing
privilege or setting and the statement that grants or sets it. Results are kept as history beside
the alerts and the audit log.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa

from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.platform_db import CONNECTION_TESTS, platform_engine
from cdc_platform.specs.loader import Specs
from cdc_platform.specs.models import ConnectionSpec

TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Check:
    check: str
    ok: bool
    detail: str = ""
    #: how to fix a failed check: the statement or setting
    fix: str = ""


@dataclass
class ConnectionTest:
    connection: str
    kind: str
    ok: bool = True
    response_ms: float | None = None
    checks: list[Check] = field(default_factory=list)

    def add(self, check: Check) -> None:
        self.checks.append(check)
        self.ok = self.ok and check.ok


@dataclass(frozen=True)
class Roles:
    """What the specs ask of one connection: the tables it is the source of, the schemas it is the
    target of, and the schemas its pipelines' heartbeat tables live in."""

    source_tables: tuple[str, ...] = ()
    source_schemas: tuple[str, ...] = ()
    target_schemas: tuple[str, ...] = ()
    heartbeat_schemas: tuple[str, ...] = ()
    streams: bool = False


def roles_of(specs: Specs, name: str) -> Roles:
    tables, schemas, targets, beats, streams = set(), set(), set(), set(), False
    for loaded in specs.pipelines.values():
        spec = loaded.spec
        if spec.source == name:
            mine = {q.split(".", 1)[0] for q in spec.tables.names} | (
                {spec.tables.schema_} if spec.tables.schema_ else set()
            )
            tables |= set(spec.tables.names)
            schemas |= mine
            streams = streams or spec.streams
            if spec.streams and spec.options.heartbeat_table and mine:
                beats.add(min(mine))  # where plan.heartbeat_of puts it
        if spec.target == name:
            targets.add(spec.target_schema)
    return Roles(tuple(sorted(tables)), tuple(sorted(schemas)), tuple(sorted(targets)), tuple(sorted(beats)),
                 streams)  # fmt: skip


def check_connection(specs: Specs, name: str) -> ConnectionTest:
    conn = specs.connection(name)
    result = ConnectionTest(name, conn.kind.value)
    roles = roles_of(specs, name)
    started = time.monotonic()
    try:
        if conn.kind.value == "postgresql":
            _postgres(specs, conn, roles, result, started)
        elif conn.kind.value in ("mysql", "mariadb"):
            _mysql(specs, conn, roles, result, started)
        elif conn.kind.value == "s3":
            _s3(specs, conn, result, started)
        else:
            result.add(Check("supported", False, f"no connection test for {conn.kind.value} connections yet",
                             "test it with the database's own client"))  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - every failure is a check with a fix, never a crash
        result.add(_login_failure(conn, exc))
    return result


def _s3(specs: Specs, conn: ConnectionSpec, result: ConnectionTest, started: float) -> None:
    """The bucket answers, and the platform can write and delete an object under the prefix."""
    # lazy: keeps pyarrow and boto3 off the code location's load path
    from cdc_platform.s3.storage import check_bucket, put_bytes, s3_client, s3_filesystem

    fs = s3_filesystem(conn, specs.directory)
    try:
        check_bucket(fs, conn)
    except RuntimeError as exc:
        result.add(
            Check(
                "reachable", False, str(exc), f"check connections.{conn.name}.endpoint_url, bucket and keys"
            )
        )
        return
    result.add(
        Check("reachable", True, f"bucket {conn.bucket} answered in {time.monotonic() - started:.2f} s")
    )
    probe = "/".join(p for p in (str(conn.bucket), conn.prefix.strip("/"), ".cdc-connection-test") if p)
    try:
        put_bytes(s3_client(conn, specs.directory), probe, b"ok")
        fs.delete_file(probe)
        result.add(Check("write", True, f"wrote and deleted {probe}"))
    except Exception as exc:  # noqa: BLE001 - botocore's errors and OSError alike: a failed check
        result.add(Check("write", False, f"cannot write {probe}: {exc}",
                         "grant s3:PutObject and s3:DeleteObject on the prefix"))  # fmt: skip


def _login_failure(conn: ConnectionSpec, exc: Exception) -> Check:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    lowered = text.lower()
    if "password authentication failed" in lowered or "access denied" in lowered:
        return Check("login", False, f"{conn.username} could not log in: {text}",
                     f"check connections.{conn.name}.username and the secret its password references")  # fmt: skip
    if "does not exist" in lowered or "unknown database" in lowered:
        return Check(
            "login", False, text, f"create database {conn.database} or fix connections.{conn.name}.database"
        )
    return Check("reachable", False, f"{conn.host}:{conn.port}: {text}",
                 f"check connections.{conn.name}.host/port, that the server runs, and firewalls between")  # fmt: skip


def _postgres(
    specs: Specs, conn: ConnectionSpec, roles: Roles, result: ConnectionTest, started: float
) -> None:

    with pg_connect(conn, specs.directory, autocommit=True, connect_timeout=TIMEOUT_SECONDS) as db:
        result.response_ms = (time.monotonic() - started) * 1000
        result.add(Check("login", True, f"as {conn.username} in {result.response_ms:.0f} ms"))
        user = conn.username
        if roles.source_tables or roles.source_schemas:
            if roles.streams:
                wal_level = db.execute("SHOW wal_level").fetchone()[0]
                result.add(Check("wal_level", wal_level == "logical", f"wal_level = {wal_level}",
                                 "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"))  # fmt: skip
                super_, replication = db.execute(
                    "SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
                result.add(Check("replication privilege", bool(super_ or replication),
                                 f"{user}: superuser={super_}, replication={replication}",
                                 f"ALTER ROLE {user} WITH REPLICATION;"))  # fmt: skip
                used, limit = db.execute("SELECT (SELECT count(*) FROM pg_replication_slots), "
                                         "current_setting('max_replication_slots')::int").fetchone()  # fmt: skip
                result.add(Check("free replication slot", used < limit, f"{used} of max_replication_slots={limit} used",
                                 "raise max_replication_slots (restart), or drop unused slots"))  # fmt: skip
            for qualified in roles.source_tables:
                schema, table = qualified.split(".", 1)
                row = db.execute(
                    "SELECT has_table_privilege(c.oid, 'SELECT'), pg_get_userbyid(c.relowner) = current_user OR "
                    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s", (schema, table)).fetchone()  # fmt: skip
                if row is None:
                    result.add(
                        Check(
                            f"table {qualified}",
                            False,
                            "does not exist",
                            "create it, or fix the pipeline's tables",
                        )
                    )
                    continue
                result.add(
                    Check(
                        f"SELECT on {qualified}",
                        bool(row[0]),
                        "",
                        f'GRANT SELECT ON "{schema}"."{table}" TO {user};',
                    )
                )
                if roles.streams:
                    result.add(Check(f"publish {qualified}", bool(row[1]),
                                     "a publication can name only tables its creator owns",
                                     f'ALTER TABLE "{schema}"."{table}" OWNER TO {user}; (or create the publication '
                                     "as the owner)"))  # fmt: skip
            for schema in roles.heartbeat_schemas:
                ok = db.execute(
                    "SELECT has_schema_privilege(current_user, %s, 'CREATE')", (schema,)
                ).fetchone()[0]
                result.add(Check(f"CREATE on schema {schema} (heartbeat table)", bool(ok), "",
                                 f'GRANT CREATE ON SCHEMA "{schema}" TO {user}; or options.heartbeat_table: false'))  # fmt: skip
        for schema in roles.target_schemas:
            exists = db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            if exists:
                ok = db.execute(
                    "SELECT has_schema_privilege(current_user, %s, 'CREATE')", (schema,)
                ).fetchone()[0]
                fix = f'GRANT CREATE ON SCHEMA "{schema}" TO {user};'
            else:
                ok = db.execute(
                    "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
                ).fetchone()[0]
                fix = f'GRANT CREATE ON DATABASE "{conn.database}" TO {user}; (or create schema {schema} for it)'
            result.add(
                Check(
                    f"CREATE in target schema {schema}",
                    bool(ok),
                    "exists" if exists else "to be created",
                    fix,
                )
            )


_BINLOG_PRIVILEGES = {"REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA"),
                      "REPLICATION CLIENT": ("REPLICATION CLIENT", "BINLOG MONITOR", "SLAVE MONITOR")}  # fmt: skip


def _mysql(specs: Specs, conn: ConnectionSpec, roles: Roles, result: ConnectionTest, started: float) -> None:

    db = mysql_connect(conn, specs.directory, database="", connect_timeout=TIMEOUT_SECONDS)
    try:
        result.response_ms = (time.monotonic() - started) * 1000
        result.add(Check("login", True, f"as {conn.username} in {result.response_ms:.0f} ms"))
        with db.cursor() as cur:
            cur.execute("SHOW GRANTS FOR CURRENT_USER()")
            grants = " ".join(str(r[0]).upper() for r in cur.fetchall())
            everything = bool(re.search(r"GRANT ALL PRIVILEGES ON \*\.\*", grants))
            user = f"'{conn.username}'@'%'"
            if (roles.source_tables or roles.source_schemas) and roles.streams:
                cur.execute(
                    "SHOW VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image')"
                )
                settings = {str(k): str(v).upper() for k, v in cur.fetchall()}
                for key, wanted in (
                    ("log_bin", "ON"),
                    ("binlog_format", "ROW"),
                    ("binlog_row_image", "FULL"),
                ):
                    result.add(Check(key, settings.get(key) == wanted, f"{key} = {settings.get(key)}",
                                     f"set {key}={wanted} in the server's configuration and restart"))  # fmt: skip
                for needed, names in _BINLOG_PRIVILEGES.items():
                    ok = everything or any(n in grants for n in names)
                    result.add(Check(needed, ok, "", f"GRANT {needed} ON *.* TO {user};"))
            for qualified in roles.source_tables:
                schema, table = qualified.split(".", 1)
                try:
                    cur.execute(f"SELECT 1 FROM `{schema}`.`{table}` LIMIT 0")
                    result.add(Check(f"SELECT on {qualified}", True))
                except Exception as exc:  # noqa: BLE001 - the server's own words are the detail
                    result.add(
                        Check(
                            f"SELECT on {qualified}",
                            False,
                            str(exc),
                            f"GRANT SELECT ON `{schema}`.`{table}` TO {user};",
                        )
                    )
            for schema in roles.heartbeat_schemas + roles.target_schemas:
                pattern = (
                    rf"GRANT [^O]*\b(ALL PRIVILEGES|CREATE)\b[^O]*ON (\*|`{re.escape(schema.upper())}`)\.\*"
                )
                ok = everything or bool(re.search(pattern, grants))
                what = "heartbeat table" if schema in roles.heartbeat_schemas else "target tables"
                result.add(Check(f"CREATE in {schema} ({what})", ok, "", f"GRANT CREATE, INSERT, UPDATE, DELETE, ALTER "
                                 f"ON `{schema}`.* TO {user};"))  # fmt: skip
    finally:
        db.close()


def record_test(test: ConnectionTest, at: float | None = None, url: str | None = None) -> None:
    with platform_engine(url).begin() as conn:
        conn.execute(CONNECTION_TESTS.insert().values(
            at=at or time.time(), connection=test.connection, ok=test.ok, response_ms=test.response_ms,
            checks=json.dumps([asdict(c) for c in test.checks])))  # fmt: skip


def connection_test_history(connection: str, limit: int = 20, url: str | None = None) -> list[dict]:
    query = (sa.select(CONNECTION_TESTS).where(CONNECTION_TESTS.c.connection == connection)
             .order_by(CONNECTION_TESTS.c.at.desc()).limit(limit))  # fmt: skip
    with platform_engine(url).connect() as conn:
        return [{**row._mapping, "checks": json.loads(row.checks)} for row in conn.execute(query)]
