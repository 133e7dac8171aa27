#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data volume
# (docker-entrypoint-initdb.d). Creates one login role and its databases per
# tenant of this server, so neither can read the other's data:
#
#   temporal  owns  temporal, temporal_visibility   (Temporal's persistence)
#   alerts    owns  alerts                          (MeshHook Alerts' store)
#
# Passwords come from the container environment (TEMPORAL_DB_PASSWORD,
# ALERTS_DB_PASSWORD); psql quotes them (:'var'), so any character is safe here,
# but use URL-safe ones (e.g. `openssl rand -hex 24`): the alerts password is
# also part of DATABASE_URL.
#
# The schemas are not created here: Temporal's auto-setup creates its own (the
# visibility schema creates the btree_gin extension, which PostgreSQL 13+
# trusts a database owner to create), and `npm run migrate` creates the alerts
# tables. To change a password later, ALTER ROLE it and update .env: this
# script does not run again on an existing volume.
set -euo pipefail

: "${TEMPORAL_DB_PASSWORD:?TEMPORAL_DB_PASSWORD must be set}"
: "${ALERTS_DB_PASSWORD:?ALERTS_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v temporal_password="$TEMPORAL_DB_PASSWORD" \
  -v alerts_password="$ALERTS_DB_PASSWORD" <<'EOSQL'
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

CREATE ROLE alerts LOGIN PASSWORD :'alerts_password';
CREATE DATABASE alerts OWNER alerts;

-- Only each database's owner (and the superuser) may connect to it.
REVOKE CONNECT, TEMPORARY ON DATABASE temporal, temporal_visibility, alerts FROM PUBLIC;
EOSQL
