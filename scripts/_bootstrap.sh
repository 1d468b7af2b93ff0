# Shared set-up for scripts/: find or install uv, create .venv with envship and its test deps.
# Needs only Python >= 3.10 on PATH (and Java 17 for the Spark parts).

find_python() {
  for p in python3.11 python3.12 python3.13 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1; then command -v "$p"; return; fi
  done
  echo "envship: no python3 (>= 3.10) on PATH" >&2; exit 1
}

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=$(command -v uv); return; fi
  if [ ! -x .tools/bin/uv ]; then
    echo "== installing uv into .tools/"
    "$(find_python)" -m venv .tools
    .tools/bin/python -m pip install -q --disable-pip-version-check uv
  fi
  UV=$PWD/.tools/bin/uv
}

ensure_dev_venv() {
  ensure_uv
  if [ ! -x .venv/bin/python ]; then
    "$UV" venv -q -p "$(find_python)" .venv
  fi
  echo "== installing envship and test dependencies into .venv"
  "$UV" pip install -q -p .venv/bin/python -e ".[test]"
}
