#!/usr/bin/env bash
# All tests: formatting, the Rust suites, then the two gates that need Python
# from PyPI: Schemathesis against the served /openapi.json, and the FinOps
# Foundation's FOCUS validator on a CSV and a typed Parquet FOCUS export.
# Then the portal end to end in a headless Chromium (Debian's package).
# Each installs what it needs into its own .venv-* folder on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo test --workspace --locked
scripts/schemathesis.sh
scripts/focus-gate.sh
scripts/e2e.sh
