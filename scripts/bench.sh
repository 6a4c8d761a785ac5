#!/usr/bin/env bash
# Runs `meterbook bench` and DuckDB on the same generated data.
# Usage: scripts/bench.sh ROWS [DIR] [SHAPE]
#   SHAPE: realistic (default: random UUID record ids, about 30k resources per
#   million rows, 72 subscriptions, 40 meters, six months) or ordered (the
#   demo's ordered ids, for comparison). See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
shape=${3:-realistic}
dir=${2:-bench-data/$shape-$rows}
# The timing files go beside $dir: its parent must exist on a fresh clone.
mkdir -p "$(dirname "$dir")"
venv=.venv-bench
if [[ ! -x $venv/bin/python ]]; then
  echo "== installing duckdb from PyPI into $venv (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check duckdb
fi
cargo build --release --locked -q -p meterbook
/usr/bin/time -v target/release/meterbook bench --rows "$rows" --dir "$dir" --shape "$shape" 2> "$dir.time" || { cat "$dir.time"; exit 1; }
grep -E 'Maximum resident|Elapsed' "$dir.time"
/usr/bin/time -v "$venv/bin/python" scripts/bench-duckdb.py "$dir" 2> "$dir.duck.time"
grep -E 'Maximum resident|Elapsed' "$dir.duck.time"
