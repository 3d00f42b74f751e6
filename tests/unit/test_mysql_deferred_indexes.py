"""Which of a MariaDB/MySQL table's indexes a full load builds after its rows, read from the text
``SHOW CREATE TABLE`` prints (the real server's rebuild is in
tests/integration/test_mariadb_deferred_indexes.py)."""

from __future__ import annotations

from cdc_platform.pipeline.full_load.mysql_deferred_indexes import deferrable_indexes

TABLE = """CREATE TABLE `items` (
  `id` bigint(20) NOT NULL,
  `n` int(11) NOT NULL AUTO_INCREMENT,
  `v` varchar(40) DEFAULT NULL COMMENT 'KEY `fake` (`v`)',
  `g` point DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `u` (`id`,`v`),
  KEY `odd (name), x` (`v`(10)) COMMENT 'for the lookups, (by v)',
  KEY `back``tick` (`v` DESC),
  KEY `hidden` (`g`) IGNORED,
  KEY `counted` (`n`,`v`),
  FULLTEXT KEY `words` (`v`),
  FULLTEXT KEY `parsed` (`v`) /*!50100 WITH PARSER `ngram` */,
  SPATIAL KEY `where` (`g`),
  CONSTRAINT `c` CHECK (`n` > 0)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4"""


def test_plain_unique_and_full_text_indexes_are_deferred_with_their_whole_definition():
    assert deferrable_indexes(TABLE) == [
        ("`u`", "UNIQUE KEY `u` (`id`,`v`)"),
        ("`odd (name), x`", "KEY `odd (name), x` (`v`(10)) COMMENT 'for the lookups, (by v)'"),
        ("`back``tick`", "KEY `back``tick` (`v` DESC)"),
        ("`hidden`", "KEY `hidden` (`g`) IGNORED"),
        ("`words`", "FULLTEXT KEY `words` (`v`)"),
        ("`parsed`", "FULLTEXT KEY `parsed` (`v`) /*!50100 WITH PARSER `ngram` */"),
    ]


def test_the_key_spatial_and_the_auto_increment_column_s_index_stay():
    names = [name for name, _ in deferrable_indexes(TABLE)]
    assert not {"`counted`", "`where`", "`fake`"} & set(names)


def test_a_table_without_a_primary_key_keeps_every_index():
    """InnoDB clusters it on its first unique NOT NULL index: adding that back would copy the table."""
    without_key = TABLE.replace("  PRIMARY KEY (`id`),\n", "")
    assert deferrable_indexes(without_key) == []
