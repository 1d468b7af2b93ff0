#!/bin/sh
# envship (Spark archives mode): run Python inside env @ENV_ID@
# Picks an interpreter, then hands over to boot.py. Runs on every Python worker start, so it
# stays tiny: no subshell beyond `cd`/`command -v`.
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd) || exit 127
py="$here/../@PYTHON_ALIAS@/python/bin/python@VERSION@"
[ -x "$py" ] || py="$here/../@PYTHON_ALIAS@/bin/python@VERSION@"  # a conda python package
if [ ! -x "$py" ]; then
  py="${ENVSHIP_PYTHON:-}"
  if [ -z "$py" ]; then
    for cand in python@VERSION@ python3 python; do
      if command -v "$cand" >/dev/null 2>&1; then py=$(command -v "$cand"); break; fi
    done
  fi
fi
if [ -z "$py" ]; then
  echo "envship: env @ENV_ID_SHORT@ needs python@VERSION@, but there is none on PATH ($PATH)" \
    "of $(hostname 2>/dev/null); install it on the nodes or ship with --with-python" >&2
  exit 127
fi
exec "$py" -I -S "$here/boot.py" "$@"
