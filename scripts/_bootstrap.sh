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

# uv pip install, from uv's cache alone when it holds everything, else from the index. An
# online install re-checks each sdist (pyspark's is one) and may rebuild it: ~30 s and ~0.5 GB
# of cache each time.
uv_install() {
  "$UV" pip install -q --offline "$@" 2>/dev/null || "$UV" pip install -q "$@"
}

ensure_dev_venv() {
  ensure_uv
  if [ ! -x .venv/bin/python ]; then
    "$UV" venv -q -p "$(find_python)" .venv
  fi
  echo "== installing envship and test dependencies into .venv"
  uv_install -p .venv/bin/python -e ".[test]"
  ensure_azurite
}

# Azurite (Microsoft's Azure Storage emulator, an npm package) for the Azure store tests,
# installed into .tools/node_modules (gitignored) when missing. Needs node >= 18 and npm.
AZURITE_VERSION=3.35.0
ensure_azurite() {
  if [ -x .tools/node_modules/.bin/azurite-blob ]; then return; fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "envship: npm is needed to install Azurite for the Azure tests (install Node.js >= 18)" >&2
    return 1
  fi
  echo "== installing azurite $AZURITE_VERSION into .tools/node_modules"
  mkdir -p .tools
  npm install --prefix .tools --no-audit --no-fund --silent "azurite@$AZURITE_VERSION"
}
