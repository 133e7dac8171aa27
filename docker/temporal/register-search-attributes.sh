#!/bin/sh
# Registers the custom search attributes MeshHook Alerts writes on its
# workflows (all Keyword; see lib/search-attributes.ts) in one namespace.
# Safe to run again: an attribute that already exists is left as it is.
#
# Needs the `temporal` CLI. Connection: TEMPORAL_ADDRESS (default
# 127.0.0.1:7233) and TEMPORAL_NAMESPACE (default "default"); any extra
# arguments are passed to every `temporal` call, e.g. for mTLS:
#
#   TEMPORAL_ADDRESS=temporal.example.com:7233 TEMPORAL_NAMESPACE=alerts \
#     sh docker/temporal/register-search-attributes.sh \
#     --tls-cert-path client.pem --tls-key-path client.key --tls-ca-path ca.pem
#
# Temporal Cloud namespaces take search attributes through tcld or the Cloud
# UI instead (docs/deployment.md).
set -eu

: "${TEMPORAL_ADDRESS:=127.0.0.1:7233}"
: "${TEMPORAL_NAMESPACE:=default}"
ATTRIBUTES="AlertConfigId AlertProjectId MeshHookWorkflowId MeshHookRunId AlertCondition AlertStatus"
MAX_ATTEMPTS=30

for name in $ATTRIBUTES; do
  attempt=1
  while :; do
    if out=$(temporal operator search-attribute create \
        --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" \
        --name "$name" --type Keyword "$@" 2>&1); then
      echo "search attribute $name (Keyword): registered"
      break
    fi
    case "$out" in
      # Registered earlier with another type: the service would fail to use it.
      *"different type"*)
        echo "search attribute $name exists with another type; it must be Keyword:" >&2
        echo "$out" >&2
        exit 1
        ;;
      # Some server versions answer "Search attribute X already exists.";
      # others accept the repeat and succeed (the branch above).
      *"already exists"*|*"AlreadyExists"*)
        echo "search attribute $name: already registered"
        break
        ;;
    esac
    if [ "$attempt" -ge "$MAX_ATTEMPTS" ]; then
      echo "search attribute $name: giving up after $attempt attempts:" >&2
      echo "$out" >&2
      exit 1
    fi
    # Typically the namespace is not visible to the frontend yet.
    echo "search attribute $name: attempt $attempt failed, retrying: $out" >&2
    attempt=$((attempt + 1))
    sleep 2
  done
done

echo "search attributes of namespace $TEMPORAL_NAMESPACE:"
temporal operator search-attribute list \
  --address "$TEMPORAL_ADDRESS" --namespace "$TEMPORAL_NAMESPACE" "$@" || true
