#!/bin/sh
# Waits for the Temporal frontend, then creates the namespace when it is
# missing (what runtime/temporal-server.ts does for the cluster tests).
# TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (default "default"), TEMPORAL_RETENTION
# (default 168h: how long a closed delivery's history stays readable).
set -eu

: "${TEMPORAL_ADDRESS:=127.0.0.1:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
: "${TEMPORAL_RETENTION:=168h}"

attempt=1
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" "$@" >/dev/null 2>&1; do
  if [ "$attempt" -ge 60 ]; then
    echo "the Temporal frontend at $TEMPORAL_ADDRESS is not serving after $attempt attempts" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" "$@" >/dev/null 2>&1; then
  echo "namespace $TEMPORAL_NAMESPACE: exists"
else
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" --retention "$TEMPORAL_RETENTION" "$@"
  echo "namespace $TEMPORAL_NAMESPACE: created (retention $TEMPORAL_RETENTION)"
fi
