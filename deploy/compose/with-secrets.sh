#!/bin/sh
# Reads the passwords from the one secrets file every container mounts at
# /cdc-stack/secrets/stack.properties (the local stack's format: postgres.password=...,
# mariadb.password=...) into the variables the program it starts expects, then runs it.
set -eu
SECRETS="${CDC_SECRETS_FILE:-/cdc-stack/secrets/stack.properties}"
value() { sed -n "s/^$1=//p" "$SECRETS" | head -n 1; }
POSTGRES_PASSWORD="$(value postgres.password)"
MARIADB_PASSWORD="$(value mariadb.password)"
export POSTGRES_PASSWORD MARIADB_PASSWORD MARIADB_ROOT_PASSWORD="$MARIADB_PASSWORD"
export DAGSTER_PG_PASSWORD="$POSTGRES_PASSWORD"
# the PostgreSQL password goes into a URL here: keep it URL-safe (the stack generates such ones)
export CDC_METRICS_URL="postgresql+psycopg://cdc:${POSTGRES_PASSWORD}@postgres:5432/cdc_platform"
exec "$@"
