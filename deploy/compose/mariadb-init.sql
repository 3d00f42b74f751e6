-- Runs once, when the mariadb service's volume is empty. The image creates `cdc` with rights on one
-- database only; the platform needs what the local stack gives it: create target databases, read
-- the binlog (REPLICATION SLAVE/CLIENT) and lock for consistent reads.
GRANT ALL PRIVILEGES ON *.* TO 'cdc'@'%' WITH GRANT OPTION;
