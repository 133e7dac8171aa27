#!/bin/sh
# Sets up (or updates) Temporal's two PostgreSQL schemas with Temporal's own
# tool and SQL files, in databases that exist already (docker/postgres-init):
# the steps runtime/temporal-server.ts runs for the cluster tests.
#
#   temporal             persistence   schema/postgresql/v12/temporal/versioned
#   temporal_visibility  visibility    schema/postgresql/v12/visibility/versioned
#
# Safe to run again at every start: setup-schema -v 0.0 only creates the
# version table when it is missing, update-schema applies what is newer.
# Needs temporal-sql-tool and the schema files (the temporalio/admin-tools image
# has both, in /etc/temporal/schema). Password: SQL_PASSWORD.
set -eu

: "${POSTGRES_HOST:=127.0.0.1}"
: "${POSTGRES_PORT:=5432}"
: "${POSTGRES_USER:=temporal}"
: "${SCHEMA_DIR:=/etc/temporal/schema/postgresql/v12}"

for pair in temporal:temporal temporal_visibility:visibility; do
  db=${pair%%:*}
  schema=${pair#*:}
  set -- --plugin postgres12 --ep "$POSTGRES_HOST" -p "$POSTGRES_PORT" -u "$POSTGRES_USER" --db "$db"
  temporal-sql-tool "$@" setup-schema -v 0.0
  temporal-sql-tool "$@" update-schema -d "$SCHEMA_DIR/$schema/versioned"
  echo "schema $schema ready in database $db"
done
