#!/usr/bin/env bash
# Real-browser tests for the pgmagic JupyterLab extension, headless.
#
# Needs: an active Python environment with pgmagic and its test extras
# (jupyterlab, ipykernel, anywidget, pandas), Node.js ^20.19 or >=22.12,
# and Debian/Ubuntu for the browser (installed with apt when missing, which
# needs root). Works from a fresh clone, with no stdin, under CI=true.
#
# Environment knobs:
#   CHROMIUM_PATH      browser binary (default: `command -v chromium`)
#   YARN_GLOBAL_FOLDER yarn cache (default: labextension/.yarn/global, gitignored)
#   PGMAGIC_UI_PORT    server port (default: a free one)
#   extra arguments    passed to `playwright test` (e.g. -g "highlight")
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
labext="$(dirname "$here")"
repo="$(dirname "$labext")"
exec </dev/null

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

log "Python environment"
command -v python >/dev/null || die "no python on PATH; activate the venv with pgmagic installed"
python - <<'EOF' || die "install the test extras first: pip install -e '.[test]' anywidget"
import importlib.util, sys
missing = [m for m in ("pgmagic", "jupyterlab", "ipykernel", "anywidget", "pandas", "comm")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages: {', '.join(missing)}")
EOF
command -v jlpm >/dev/null || die "jlpm not found (it comes with jupyterlab / jupyter_builder)"

log "Node.js"
command -v node >/dev/null || die "Node.js ^20.19 or >=22.12 is required"
node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (!((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22)) {
    console.error(`Node ${process.versions.node} is too old for the rspack builder`);
    process.exit(1);
  }'

log "Browser"
export CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || true)}"
if [ -z "$CHROMIUM_PATH" ]; then
  command -v apt-get >/dev/null || die "no chromium and no apt-get; set CHROMIUM_PATH"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || die "chromium is missing; run as root or: sudo apt-get install -y chromium"
    sudo="sudo -n"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q chromium || { $sudo apt-get update -q && $sudo apt-get install -y -q chromium; }
  CHROMIUM_PATH="$(command -v chromium)"
fi
# Debian's launcher script prints a harmless shell warning on stderr.
"$CHROMIUM_PATH" --version 2>/dev/null || die "$CHROMIUM_PATH does not run"

# Playwright must never download its own browsers here.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export YARN_GLOBAL_FOLDER="${YARN_GLOBAL_FOLDER:-$labext/.yarn/global}"
export YARN_ENABLE_PROGRESS_BARS=false

log "Extension build"
cd "$labext"
jlpm install
build="$repo/pgmagic/labextension/package.json"
if [ ! -f "$build" ] || [ -n "$(find src style schema package.json tsconfig.json -newer "$build" -print -quit)" ]; then
  jlpm build:prod
else
  echo "up to date: $build"
fi

log "Test dependencies"
cd "$here"
jlpm install

if [ -z "${PGMAGIC_UI_PORT:-}" ]; then
  PGMAGIC_UI_PORT="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
export PGMAGIC_UI_PORT

log "Browser tests (port $PGMAGIC_UI_PORT)"
jlpm playwright test "$@"
