#!/bin/sh
# One fan-out on Kubernetes, start to end: the claim, one shard Job per pool, a wait that ends when each Job has
# completed or failed (never a day-long wait on a failed index), then the merge Job, which runs either way and
# lists the cells no shard measured. Re-run: the same command again (docs/machines.md, "Kubernetes").
#
#   TTSLOAD_IMAGE=registry.example/ttsload:abc123 TTSLOAD_STORAGE_CLASS=nfs-client TTSLOAD_RUN=r20261203 \
#     sh deploy/kubernetes/fanout.sh POOL [POOL...]
#
# Exit: 0 when every shard Job completed and the merge found nothing missing, 1 when a Job failed or cells are
# missing (the merge's output says which), 2 on bad parameters.
set -u
HERE=$(dirname "$0")
TIMEOUT=${TTSLOAD_TIMEOUT:-86400}  # seconds to wait for each Job to end
: "${TTSLOAD_IMAGE:?set TTSLOAD_IMAGE}" "${TTSLOAD_STORAGE_CLASS:?set TTSLOAD_STORAGE_CLASS}" "${TTSLOAD_RUN:?set TTSLOAD_RUN}"
[ "$#" -ge 1 ] || { echo "usage: fanout.sh POOL [POOL...]" >&2; exit 2; }
export TTSLOAD_IMAGE TTSLOAD_STORAGE_CLASS TTSLOAD_RUN

# Wait until job/$1 has the condition Complete or Failed (both are terminal), at most $TIMEOUT seconds;
# print which, or "timeout".
ended() {
  waited=0
  while [ "$waited" -lt "$TIMEOUT" ]; do
    state=$(kubectl get "job/$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
    case " $state " in
      *" Complete "*) echo Complete; return 0 ;;
      *" Failed "*) echo Failed; return 0 ;;
    esac
    sleep 30
    waited=$((waited + 30))
  done
  echo timeout
}

envsubst '$TTSLOAD_STORAGE_CLASS' < "$HERE/ttsload-results-pvc.yaml" | kubectl apply -f - || exit 2
for pool in "$@"; do
  # A re-run replaces the ended Job: its pods resume their shards' folders and measure only what is missing.
  kubectl delete job "ttsload-$TTSLOAD_RUN-$pool" --ignore-not-found
  TTSLOAD_POOL=$pool envsubst '$TTSLOAD_IMAGE $TTSLOAD_RUN $TTSLOAD_POOL' < "$HERE/ttsload-shards.yaml" \
    | kubectl apply -f - || exit 2
done
status=0
for pool in "$@"; do
  state=$(ended "ttsload-$TTSLOAD_RUN-$pool")
  echo "shards of pool $pool: $state"
  [ "$state" = Complete ] || status=1
done
kubectl delete job "ttsload-$TTSLOAD_RUN-merge" --ignore-not-found
envsubst '$TTSLOAD_IMAGE $TTSLOAD_RUN' < "$HERE/ttsload-merge.yaml" | kubectl apply -f - || exit 2
state=$(ended "ttsload-$TTSLOAD_RUN-merge")
kubectl logs "job/ttsload-$TTSLOAD_RUN-merge"
[ "$state" = Complete ] || status=1
if kubectl logs "job/ttsload-$TTSLOAD_RUN-merge" | grep -q "cells missing"; then status=1; fi
exit "$status"
