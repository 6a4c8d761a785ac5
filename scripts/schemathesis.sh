#!/usr/bin/env bash
# Runs Schemathesis against the server's /openapi.json on a freshly seeded demo
# database: every described operation is fuzzed; any 5xx, undocumented status
# code, wrong content type or malformed response fails the run.
# Needs: python3 with venv (pip installs schemathesis from PyPI), a built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=${MB_BIN:-$target_dir/debug/meterbook}
cargo build -q --locked -p meterbook
work=$(mktemp -d)
venv=${ST_VENV:-.venv-schemathesis}
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
if [[ ! -x $venv/bin/schemathesis ]]; then
  echo "== installing schemathesis 4.32.5 from PyPI into $venv (first run only; a minute or two)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --progress-bar on --disable-pip-version-check "schemathesis==4.32.5" | grep -E '^(Collecting|Successfully)' || true
  [[ -x $venv/bin/schemathesis ]] || { echo "schemathesis did not install into $venv" >&2; exit 2; }
fi
db=$work/st.db
"$bin" --db "$db" demo --rows 20000 --no-serve > "$work/demo.out"
n=8608480
# A secondary-slot key: the fuzzer never touches /keys (it would regenerate it).
key=$("$bin" --db "$db" keys create --enrollment "$n" --slot secondary 2>/dev/null)
last=$(date -u -d "$(date -u +%Y-%m-01) -1 day" +%Y%m)
MB_LOG=warn "$bin" --db "$db" serve --listen 127.0.0.1:0 --rate-limit 100000 --rate-burst 100000 2> "$work/serve.err" &
server=$!
for _ in $(seq 100); do
  base=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.err" | head -1 || true)
  [[ -n $base ]] && break
  sleep 0.1
done
[[ -n $base ]] || { echo "server did not start"; cat "$work/serve.err"; exit 1; }
cat > "$work/st.toml" <<TOML
[parameters]
"path.enrollmentNumber" = "$n"
"path.billingPeriod" = "$last"
TOML
# Checks that hold for any request. (Acceptance of schema-valid data is not
# checked: a valid-looking date outside the enrollment's term is rightly a 400.)
"$venv/bin/schemathesis" --config-file "$work/st.toml" run "$base/openapi.json" \
  -H "Authorization: bearer $key" --exclude-path-regex '/keys' \
  --max-examples 30 --seed 8608480 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
