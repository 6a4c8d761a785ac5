#!/usr/bin/env bash
# End-to-end test of the portal in a real headless Chromium: seeds a demo
# database, serves it, and drives the browser over the DevTools protocol
# (scripts/e2e/run.py): sign-in through the form for each role, the overview's
# figures per role, this month's figure alike on the overview, the Usage page,
# the usage download and (enterprise) the statement for each role, monthly
# downloads compared with the CLI's output, an
# advanced report, an API key generated on the keys page and used on the API,
# and what each role must not see. Exits non-zero on any failure.
#
# Needs: Debian's `chromium` (installed here when missing), python3 with venv
# (websocket-client from PyPI goes into .venv-e2e), a Rust toolchain.
# E2E_SCREENSHOTS=1 also writes docs/screenshots/*.png (CI leaves them alone).
# E2E_KEEP=1 keeps the work directory (database, downloads, server log).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

if ! command -v chromium > /dev/null; then
  echo "== installing Debian's chromium"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium > /dev/null
fi
chromium_bin=$(command -v chromium)

venv=${E2E_VENV:-.venv-e2e}
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import websocket' 2> /dev/null; then
  echo "== installing websocket-client 1.9.2 from PyPI into $venv (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "websocket-client==1.9.2"
fi

target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# scripts/test.sh passes the binary `cargo test` built (MB_BIN): no second build.
[[ -n ${MB_BIN:-} ]] || { echo "== building meterbook"; cargo build -q --locked -p meterbook; }
bin=${MB_BIN:-$target_dir/debug/meterbook}

work=$(mktemp -d)
cleanup() {
  if [[ -s $work/chromium.pid ]]; then kill "$(cat "$work/chromium.pid")" 2> /dev/null || true; fi
  if [[ -n ${server:-} ]]; then kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; fi
  if [[ ${E2E_KEEP:-0} == 1 ]]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

db=$work/e2e.db
echo "== seeding the demo database ($db)"
"$bin" --db "$db" demo --no-serve --rows 20000 > "$work/demo.out"
MB_LOG=warn "$bin" --db "$db" serve --listen 127.0.0.1:0 2> "$work/serve.err" &
server=$!
base=""
for _ in $(seq 100); do
  base=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.err" | head -1 || true)
  [[ -n $base ]] && break
  kill -0 "$server" 2> /dev/null || break
  sleep 0.1
done
[[ -n $base ]] || { echo "FAIL: the server did not start"; cat "$work/serve.err"; exit 1; }
echo "== serving at $base"

status=0
"$venv/bin/python" scripts/e2e/run.py \
  --base "$base" --bin "$bin" --db "$db" --enrollment 8608480 \
  --chromium "$chromium_bin" --work "$work" \
  --screenshots "$([[ ${E2E_SCREENSHOTS:-0} == 1 ]] && echo docs/screenshots || true)" || status=$?
if [[ $status -ne 0 ]]; then
  echo "-- server log (last 40 lines):"
  tail -40 "$work/serve.err" || true
fi
echo "== e2e finished in $((SECONDS - started)) s, exit $status"
exit "$status"
