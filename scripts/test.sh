#!/usr/bin/env bash
# All tests: formatting, the Rust suites, then the two gates that need Python
# from PyPI: Schemathesis against the served /openapi.json, and the FinOps
# Foundation's FOCUS validator on a CSV and a typed Parquet FOCUS export.
# Then coverage-guided fuzzing of the input readers (libFuzzer, stable
# toolchain) and the portal end to end in a headless Chromium (Debian's package).
# Each installs what it needs into its own .venv-* folder on first run.
# Every stage prints `==> stage` when it starts and its duration when done.
# The gates use the debug binary `cargo test` has just built: one build, one profile.
set -euo pipefail
cd "$(dirname "$0")/.."
total=$SECONDS
stage() {
  local name=$1 started=$SECONDS
  shift
  echo "==> $name"
  "$@"
  echo "==> $name: done in $((SECONDS - started)) s"
}
stage "formatting (cargo fmt --check)" cargo fmt --all -- --check
stage "Rust test suites (cargo test --workspace; the first build takes minutes)" cargo test --workspace --locked
# The gates run the binary the test build made (features unified across the
# workspace), instead of building meterbook again on its own.
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export MB_BIN=${MB_BIN:-$target_dir/debug/meterbook}
stage "API fuzzing (scripts/schemathesis.sh)" scripts/schemathesis.sh
stage "FOCUS validator (scripts/focus-gate.sh)" scripts/focus-gate.sh
stage "input fuzzing, 15 s a target (scripts/fuzz.sh)" scripts/fuzz.sh 15
stage "portal end to end in Chromium (scripts/e2e.sh)" scripts/e2e.sh
echo "==> all tests passed in $((SECONDS - total)) s"
