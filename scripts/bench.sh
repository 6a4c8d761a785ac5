#!/usr/bin/env bash
# Runs `meterbook bench` and DuckDB on the same generated data.
# Usage: scripts/bench.sh ROWS [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
dir=${2:-bench-data/$rows}
# The timing files go beside $dir: its parent must exist on a fresh clone.
mkdir -p "$(dirname "$dir")"
venv=.venv-bench
if [[ ! -x $venv/bin/python ]]; then
  echo "== installing duckdb from PyPI into $venv (first run only)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check duckdb
fi
cargo build --release -q
/usr/bin/time -v target/release/meterbook bench --rows "$rows" --dir "$dir" 2> "$dir.time" || { cat "$dir.time"; exit 1; }
grep -E 'Maximum resident|Elapsed' "$dir.time"
/usr/bin/time -v "$venv/bin/python" scripts/bench-duckdb.py "$dir" 2> "$dir.duck.time"
grep -E 'Maximum resident|Elapsed' "$dir.duck.time"
