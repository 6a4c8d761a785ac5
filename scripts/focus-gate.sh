#!/usr/bin/env bash
# Checks the FinOps FOCUS 1.2 export with the FinOps Foundation's validator
# (focus-validator 2.2.1): seeds a small demo enrollment, exports its whole usage
# span as FOCUS CSV and as typed Parquet, and runs scripts/focus_gate.py on both
# (the CSV also row by row). Any failing rule outside the gate's documented
# allowlist fails the run; both files are always checked.
# Needs: Python >= 3.12 (python3.13, python3.12 or a pyenv version; pip installs
# the validator from PyPI into .venv-focus), the Rust toolchain.
# Knobs: FOCUS_ROWS (demo usage rows, default 8000), FOCUS_VENV, MB_BIN, FOCUS_KEEP=1
# (keep the exports and JUnit reports; their folder is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${FOCUS_VENV:-.venv-focus}
rows=${FOCUS_ROWS:-8000}
# What a Meterbook export supports; keep in step with
# meterbook_io::report::focus::APPLICABILITY_CRITERIA (a test checks it).
criteria=ACCOUNT_NAMING_SUPPORTED,SUB_ACCOUNT_SUPPORTED,USAGE_MEASUREMENT_SUPPORTED,UNIT_PRICING_SUPPORTED,NEGOTIATED_PRICING_SUPPORTED,REGION_SUPPORTED,TAGGING_SUPPORTED

# The validator, in a virtual environment of its own. focus-validator 2.x needs
# Python >= 3.12: on 3.11 pip quietly picks 1.0.0, which knows only FOCUS 1.0.
validator_ready() {
  [[ -x $venv/bin/focus-validator ]] &&
    "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("focus-validator") != "2.2.1")' 2>/dev/null
}
if ! validator_ready; then
  if [[ ! -x $venv/bin/python ]]; then
    py=""
    for cand in python3.13 python3.12 "$(pyenv root 2>/dev/null)"/versions/3.1[23]*/bin/python3 /usr/bin/python3.1[23]; do
      if "$cand" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then py=$cand; break; fi
    done
    if [[ -z $py ]]; then
      echo "focus-gate: no Python >= 3.12 found (try: apt-get install python3.12, or pyenv)" >&2
      exit 2
    fi
    "$py" -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
    echo "focus-gate: $venv has a Python older than 3.12; remove it and run again" >&2
    exit 2
  fi
  # pyarrow 26 needs numpy >= 2, which focus-validator 2.2.1 refuses; pin both.
  echo "== installing focus-validator 2.2.1 and pyarrow from PyPI into $venv (first run only; a few minutes)"
  "$venv/bin/pip" install --disable-pip-version-check "focus-validator==2.2.1" "pyarrow<26" | grep -E '^(Collecting|Successfully)' || true
  validator_ready || { echo "focus-gate: focus-validator 2.2.1 did not install into $venv" >&2; exit 2; }
fi

# scripts/test.sh passes the binary `cargo test` built (MB_BIN): no second build.
[[ -n ${MB_BIN:-} ]] || cargo build -q --locked -p meterbook
target_dir=$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=${MB_BIN:-$target_dir/debug/meterbook}

work=$(mktemp -d)
if [[ ${FOCUS_KEEP:-} == 1 ]]; then
  echo "focus-gate: files in $work"
else
  trap 'rm -rf "$work"' EXIT
fi
# Provider and invoice issuer named alike, whatever MB_* says: with a third-party
# issuer, FOCUS (and the validator) wants every BilledCost to be 0.
export MB_PROVIDER_NAME="Meterbook Cloud" MB_INVOICE_ISSUER_NAME="Meterbook Cloud"
mb() { "$bin" --db "$work/focus.db" "$@"; }
mb demo --no-serve --rows "$rows" > "$work/demo.out"
n=8608480

# The whole usage span: the first billing period through the last one with a
# price sheet (usage runs to yesterday; late corrections are booked in between).
periods=$(mb period list --enrollment "$n")
first=$(awk 'NR > 1 { print $1; exit }' <<< "$periods")
last=$(awk 'NR > 1 && $4 == "yes" { p = $1 } END { print p }' <<< "$periods")
[[ $first =~ ^[0-9]{6}$ && $last =~ ^[0-9]{6}$ ]] || { echo "focus-gate: cannot read the billing periods:"; echo "$periods"; exit 1; }
from=${first:0:4}-${first:4:2}-01
to=$(date -u -d "${last:0:4}-${last:4:2}-01 +1 month -1 day" +%F)

status=0
for fmt in focus-csv focus-parquet; do
  ext=${fmt#focus-}
  file=$work/focus.$ext
  echo "== $fmt: enrollment $n, $from to $to"
  # Through the advanced-report path users take: a job, then its file.
  if ! { id=$(mb report request --enrollment "$n" --from "$from" --to "$to" --format "$fmt") &&
         mb report fetch "$id" -o "$file"; }; then
    echo "focus-gate: the $fmt export failed"
    status=1
    continue
  fi
  args=("$file" --criteria "$criteria" --junit "$work/$ext.junit.xml")
  [[ $ext == csv ]] && args+=(--rowwise)
  if ! "$venv/bin/python" scripts/focus_gate.py "${args[@]}"; then
    status=1
  fi
done
if [[ $status == 0 ]]; then echo "focus-gate: PASS (CSV and Parquet)"; else echo "focus-gate: FAIL"; fi
exit $status
