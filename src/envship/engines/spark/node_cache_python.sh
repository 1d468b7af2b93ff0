#!/bin/sh
# envship (Spark node-cache mode): run Python inside the env named by $@REF_VAR@, fetched once
# per node into the node cache ($ENVSHIP_CACHE, default ~/.cache/envship).
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 127
if [ -z "${@REF_VAR@:-}" ]; then
  echo "envship: @REF_VAR@ is not set (spark.executorEnv.@REF_VAR@ = the env URI)" >&2
  exit 127
fi
py="${ENVSHIP_BOOT_PYTHON:-}"
if [ -z "$py" ]; then
  for cand in python@VERSION@ python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then py=$(command -v "$cand"); break; fi
  done
fi
if [ -z "$py" ]; then
  echo "envship: no python3 on PATH ($PATH) of $(hostname 2>/dev/null) to run the node" \
    "bootstrap; install Python >= 3.9 on the nodes" >&2
  exit 127
fi
# The node runtime reads the env from $@REF_VAR@ itself: not on this command line, which every
# user of the node can read (a presigned manifest URL carries signatures).
exec "$py" "$here/envship_node.py" -- python "$@"
