#!/usr/bin/env bash
# Runs Schemathesis against the server's /openapi.json on a freshly seeded demo
# database: every described operation is fuzzed with credentials that reach it
# (a customer key, a signed download link, an operator token); any 5xx,
# undocumented status code, wrong content type or malformed response fails the run.
# Needs: python3 with venv (pip installs schemathesis from PyPI), a built binary.
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=${MB_BIN:-$target_dir/debug/meterbook}
# scripts/test.sh passes the binary `cargo test` built (MB_BIN): no second build.
[[ -n ${MB_BIN:-} ]] || cargo build -q --locked -p meterbook
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
# A finished report, for the signed-link run.
job=$("$bin" --db "$db" report request --enrollment "$n" --from "$(date -u +%Y-%m-01)" --to "$(date -u +%Y-%m-%d)" 2>/dev/null)
# The operator run's own enrollment, with the operator guide's sample files loaded.
token=$("$bin" --db "$db" operator-token create --name schemathesis 2>/dev/null)
op_n=7700
op_period=202502
"$bin" --db "$db" enrollment create --number "$op_n" --name Fuzz --start 1900-01-01 --end 9998-12-31 > /dev/null
"$bin" --db "$db" hierarchy import --enrollment "$op_n" examples/hierarchy.csv > /dev/null
for p in 202501 202502 202503; do
  "$bin" --db "$db" prices import --enrollment "$op_n" --period "$p" examples/prices-2025.csv > /dev/null
done
last=$(date -u -d "$(date -u +%Y-%m-01) -1 day" +%Y%m)
# A scheduled export, so that the operations on one reach it (until the
# fuzzer deletes it).
export_id=$("$bin" --db "$db" exports add --enrollment "$n" --name Fuzz --folder fuzz --schedule once \
  --from "${last:0:4}-${last:4:2}-01" --to "${last:0:4}-${last:4:2}-10" 2>/dev/null)
# No background export runs: the fuzzer creates hundreds of export schedules,
# and running them all would load the machine during the timed operator run
# (the API's run-now is still fuzzed).
MB_LOG=warn "$bin" --db "$db" serve --listen 127.0.0.1:0 --rate-limit 100000 --rate-burst 100000 --export-interval-seconds 0 2> "$work/serve.err" &
server=$!
for _ in $(seq 100); do
  base=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.err" | head -1 || true)
  [[ -n $base ]] && break
  sleep 0.1
done
[[ -n $base ]] || { echo "server did not start"; cat "$work/serve.err"; exit 1; }
# Checks that hold for any request. (Acceptance of schema-valid data is not
# checked: a valid-looking date outside the enrollment's term is rightly a 400.)
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
status=0
# fuzz NAME CONFIG AUTH FILTER...: one run of the fuzzer; every run is made.
fuzz() {
  local name=$1 config=$2 auth=$3
  shift 3
  echo "== schemathesis: $name"
  "$venv/bin/schemathesis" --config-file "$config" run "$base/openapi.json" \
    ${auth:+-H "Authorization: bearer $auth"} "$@" \
    --max-examples 30 --seed 8608480 --checks "$checks" || status=1
}

# 1. The customer API with an enterprise administrator's key.
# Dates inside the demo's term (random ones are rightly refused as outside it).
cat > "$work/st.toml" <<TOML
[parameters]
"path.enrollmentNumber" = "$n"
"path.billingPeriod" = "$last"
"query.billingPeriod" = "$last"
"query.startTime" = "${last:0:4}-${last:4:2}-01"
"query.endTime" = "${last:0:4}-${last:4:2}-10"
"query.startDate" = "${last:0:4}-${last:4:2}-01"
"query.endDate" = "${last:0:4}-${last:4:2}-10"
"query.month" = "${last:0:4}-${last:4:2}"
"path.exportId" = "$export_id"
TOML
ST_START_DATE=${last:0:4}-${last:4:2}-01 ST_END_DATE=${last:0:4}-${last:4:2}-10 ST_BILLING_PERIOD=$last \
  SCHEMATHESIS_HOOKS=scripts/schemathesis_hooks.py \
  fuzz "Reporting API (customer key)" "$work/st.toml" "$key" \
  --exclude-path-regex '^/(operator|downloads)|/keys'

# 2. A signed download link: a finished report's id with its scope, expiry and
# signature, as POST reports/{id}/link hands them out (no key needed).
link=$(curl -sf -X POST -H "Authorization: bearer $key" "$base/v3/enrollments/$n/reports/$job/link?lifetimeHours=24")
blob=$(sed -n 's/.*"blobPath":"\([^"]*\)".*/\1/p' <<< "$link")
query=${blob#*\?}
[[ $blob == *"/downloads/$job?"* ]] || { echo "no signed link for job $job: $link"; exit 1; }
param() { tr '&' '\n' <<< "$query" | sed -n "s/^$1=//p"; }
cat > "$work/st-downloads.toml" <<TOML
[parameters]
"path.reportId" = "$job"
"query.scope" = "$(param scope)"
"query.expires" = "$(param expires)"
"query.signature" = "$(param signature)"
TOML
fuzz "signed downloads" "$work/st-downloads.toml" "" --include-path-regex '^/downloads/'

# 3. The operator API with an operator token, on an enrollment of its own (the
# fuzzer replaces keys there), whose term spans every year the API takes, so
# that generated dates fall inside it.
cat > "$work/st-operator.toml" <<TOML
[parameters]
"path.enrollmentNumber" = "$op_n"
"path.billingPeriod" = "$op_period"
TOML
fuzz "operator API (operator token)" "$work/st-operator.toml" "$token" --include-path-regex '^/operator/'
exit $status
