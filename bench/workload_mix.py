"""The change workloads the CDC benchmarks write: ``oltp`` (the default) and ``bulk``.

``oltp`` is shaped like an application's writes, the worst normal case a user meets (issue 35):
tables with a bigint key, bigint, int, numeric(12,2), varchar(64) and a timestamp column, changes
in transactions of ``--transaction`` (1,000), interleaved at random over the tables: 50 % inserts,
40 % updates of an existing row (any, old or new), 10 % deletes of an existing row. The target
tables get a secondary index (on ``seq``) so the sink pays for index maintenance as a user's would.
The changes are generated inside the source database (a PL/pgSQL ``DO`` block, a MariaDB procedure),
one round trip per transaction, so the writer itself is never what is measured.

``bulk`` is the best case the first benchmarks measured: 70 % inserts by ``INSERT ... SELECT``
and 30 % bulk updates, in transactions of 20,000 rows, into a three-column table.
"""

from __future__ import annotations

from dataclasses import dataclass

MIXES = ("oltp", "bulk")
INSERT_SHARE, UPDATE_SHARE = 0.5, 0.4  # the rest are deletes


def create_table(kind: str, table: str, mix: str) -> str:
    if mix == "bulk":
        return f"CREATE TABLE {table} (id bigint PRIMARY KEY, seq bigint NOT NULL, payload varchar(100))"
    at = "timestamptz" if kind == "postgresql" else "datetime(6)"
    return (f"CREATE TABLE {table} (id bigint PRIMARY KEY, seq bigint NOT NULL, qty int NOT NULL, "
            f"amount numeric(12,2) NOT NULL, label varchar(64) NOT NULL, at {at} NOT NULL)")  # fmt: skip


def target_index(table: str, qualified: str) -> str:
    """The secondary index the target tables carry in the ``oltp`` mix."""
    return f"CREATE INDEX {table}_seq ON {qualified} (seq)"


MARIADB_PROCEDURE = """
CREATE PROCEDURE oltp_changes(IN n INT, IN base BIGINT, IN tables_n INT, IN prefix VARCHAR(32))
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE r DOUBLE;
  DECLARE tn VARCHAR(64);
  SET @next = base, @deleted = 0;
  START TRANSACTION;
  WHILE i < n DO
    SET r = RAND(), tn = CONCAT(prefix, FLOOR(RAND() * tables_n)), @k = NULL;
    IF r >= {insert_share} THEN
      SET @lo = FLOOR(RAND() * @next);
      EXECUTE IMMEDIATE CONCAT('SELECT id INTO @k FROM ', tn, ' WHERE id >= ? ORDER BY id LIMIT 1') USING @lo;
    END IF;
    IF @k IS NULL THEN
      SET @next = @next + 1;
      EXECUTE IMMEDIATE CONCAT('INSERT INTO ', tn, ' VALUES (?, ?, ?, ?, ?, now(6))')
        USING @next, @next, FLOOR(RAND() * 1000), ROUND(RAND() * 100000, 2), CONCAT('item ', @next);
    ELSEIF r < {update_bound} THEN
      SET @next = @next + 1;
      EXECUTE IMMEDIATE CONCAT('UPDATE ', tn, ' SET seq = ?, qty = qty + 1, amount = amount + 0.01, ',
                               'label = CONCAT(''upd '', ?), at = now(6) WHERE id = ?') USING @next, @next, @k;
    ELSE
      EXECUTE IMMEDIATE CONCAT('DELETE FROM ', tn, ' WHERE id = ?') USING @k;
      SET @deleted = @deleted + 1;
    END IF;
    SET i = i + 1;
  END WHILE;
  COMMIT;
  SELECT @next, @deleted;
END
"""

POSTGRES_BLOCK = """
DO $$
DECLARE r float8; tn text; k bigint; nxt bigint := {base}; deleted int := 0;
BEGIN
  FOR i IN 1..{n} LOOP
    r := random(); tn := '{prefix}' || floor(random() * {tables_n})::int; k := NULL;
    IF r >= {insert_share} THEN
      EXECUTE format('SELECT id FROM %I WHERE id >= $1 ORDER BY id LIMIT 1', tn) INTO k
        USING floor(random() * nxt)::bigint;
    END IF;
    IF k IS NULL THEN
      nxt := nxt + 1;
      EXECUTE format('INSERT INTO %I VALUES ($1, $1, $2, $3, $4, now())', tn)
        USING nxt, floor(random() * 1000)::int, round((random() * 100000)::numeric, 2), 'item ' || nxt;
    ELSIF r < {update_bound} THEN
      nxt := nxt + 1;
      EXECUTE format('UPDATE %I SET seq = $1, qty = qty + 1, amount = amount + 0.01, label = $2, at = now() '
                     'WHERE id = $3', tn) USING nxt, 'upd ' || nxt, k;
    ELSE
      EXECUTE format('DELETE FROM %I WHERE id = $1', tn) USING k;
      deleted := deleted + 1;
    END IF;
  END LOOP;
  PERFORM set_config('bench.next', nxt::text, false), set_config('bench.deleted', deleted::text, false);
END $$
"""


@dataclass
class OltpWriter:
    """Writes the ``oltp`` mix into tables ``<prefix>0 .. <prefix>N-1`` of one source ``Db``."""

    db: object  # bench/cdc_latency.Db
    prefix: str
    tables_n: int
    #: the highest id or seq handed out so far (ids and seqs share one counter)
    next_value: int = 0
    #: deletes committed so far (each is two messages in Kafka: the delete and its tombstone)
    deleted: int = 0

    def prepare(self) -> None:
        if self.db.kind != "postgresql":
            with self.db.conn.cursor() as cur:  # no parameters: the body's ? stay as written
                cur.execute("DROP PROCEDURE IF EXISTS oltp_changes")
                cur.execute(MARIADB_PROCEDURE.format(insert_share=1 - INSERT_SHARE,
                                                 update_bound=1 - INSERT_SHARE + UPDATE_SHARE))  # fmt: skip

    def transaction(self, changes: int) -> None:
        """One committed transaction of ``changes`` interleaved changes."""
        if self.db.kind == "postgresql":
            # autocommit: the DO block is its own transaction; no parameters, so its %I stays as written
            self.db.conn.execute(POSTGRES_BLOCK.format(base=self.next_value, n=changes, prefix=self.prefix,
                                              tables_n=self.tables_n, insert_share=1 - INSERT_SHARE,
                                              update_bound=1 - INSERT_SHARE + UPDATE_SHARE))  # fmt: skip
            ((nxt, deleted),) = self.db.run(
                "SELECT current_setting('bench.next'), current_setting('bench.deleted')"
            )
            self.next_value, self.deleted = int(nxt), self.deleted + int(deleted)
        else:
            rows = self.db.run(
                "CALL oltp_changes(?, ?, ?, ?)", (changes, self.next_value, self.tables_n, self.prefix)
            )
            self.next_value, self.deleted = int(rows[0][0]), self.deleted + int(rows[0][1])
            self.db.conn.commit()

    def write(self, changes: int, transaction: int = 1000) -> None:
        done = 0
        while done < changes:
            size = min(transaction, changes - done)
            self.transaction(size)
            done += size
