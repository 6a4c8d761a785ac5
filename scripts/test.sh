#!/usr/bin/env bash
# All tests: formatting, the Rust suites, then the two gates that need Python
# from PyPI: Schemathesis against the served /openapi.json, and the FinOps
# Foundation's FOCUS validator on a CSV and a typed Parquet FOCUS export.
# Then coverage-guided fuzzing of the input readers (libFuzzer, stable
# toolchain) and the portal end to end in a headless Chromium (Debian's package).
# Each installs what it needs into its own .venv-* folder on first run.
# Every stage prints `==> stage` when it starts and its duration when done.
# The gates use the debug binary `cargo test` has just built: one build, one profile.
# Before the Rust suites, scripts/cluster.sh starts a throwaway PostgreSQL and a
# two-shard ClickHouse cluster (installed from Debian's packages when missing)
# and the tests get their URLs (MB_TEST_STORE, MB_TEST_USAGE_STORE) with
# MB_REQUIRE_CLUSTER=1, so the suites that need them fail instead of skipping.
# Likewise scripts/s3.sh starts an S3-compatible server (moto, from PyPI) for the
# S3 report file store's checks (MB_TEST_S3_URL), and scripts/smtp.sh an SMTP
# server (aiosmtpd, from PyPI) that the e-mail delivery tests send through and
# read back (MB_TEST_SMTP_ADDR, with MB_REQUIRE_SMTP=1). All are stopped and
# removed on exit, failed or not. MB_CLUSTER=0 skips them (those suites then
# skip with a note).
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
cluster_up() {
  local env_file
  env_file=$(scripts/cluster.sh start "$cluster_dir" | tail -n1)
  # shellcheck disable=SC1090 # written by scripts/cluster.sh start
  source "$env_file"
  # Only the tests' variables: with MB_STORE set, every `meterbook` the suites
  # and gates run (the operator guide's walkthrough, Schemathesis, the FOCUS
  # gate) would use the cluster instead of their own SQLite files.
  unset MB_STORE MB_USAGE_STORE
  export MB_REQUIRE_CLUSTER=1
}
s3_up() {
  local env_file
  env_file=$(scripts/s3.sh start "$s3_dir" | tail -n1)
  # shellcheck disable=SC1090 # written by scripts/s3.sh start
  source "$env_file"
}
smtp_up() {
  local env_file
  env_file=$(scripts/smtp.sh start "$smtp_dir" | tail -n1)
  # shellcheck disable=SC1090 # written by scripts/smtp.sh start
  source "$env_file"
}
cleanup() {
  if [[ -n ${cluster_dir:-} ]]; then scripts/cluster.sh stop "$cluster_dir" || rmdir "$cluster_dir" || true; fi
  if [[ -n ${s3_dir:-} ]]; then scripts/s3.sh stop "$s3_dir" || rmdir "$s3_dir" || true; fi
  if [[ -n ${smtp_dir:-} ]]; then scripts/smtp.sh stop "$smtp_dir" || rmdir "$smtp_dir" || true; fi
}
if [[ ${MB_CLUSTER:-1} != 0 ]]; then
  # Folders of this run's own, so that exit stops these servers and no others;
  # the trap is set before starting, so a start that fails half-way is cleaned
  # up too (a folder start refused is merely removed).
  cluster_dir=$(mktemp -d -t meterbook-cluster.XXXXXX)
  s3_dir=$(mktemp -d -t meterbook-s3.XXXXXX)
  smtp_dir=$(mktemp -d -t meterbook-smtp.XXXXXX)
  trap cleanup EXIT
  stage "PostgreSQL and a two-shard ClickHouse cluster (scripts/cluster.sh start)" cluster_up
  stage "an S3-compatible server for report files (scripts/s3.sh start)" s3_up
  stage "an SMTP server for e-mail delivery (scripts/smtp.sh start)" smtp_up
fi
stage "Rust test suites (cargo test --workspace; the first build takes minutes)" cargo test --workspace --locked
# The S3 report file store is a cargo feature (it brings the AWS client and a
# TLS stack), so its checks build apart, against the server s3.sh started.
stage "S3 report files and exports (cargo test -p meterbook-jobs --features s3)" cargo test --locked -p meterbook-jobs --features s3 --test report_files --test exports
# HTTPS webhooks and STARTTLS are the notification crate's `tls` feature: its
# suites again with it, so the TLS build keeps compiling and passing.
stage "notifications with TLS (cargo test -p meterbook-notify --features tls)" cargo test --locked -p meterbook-notify --features tls
# Two serve nodes again, keeping report files in the bucket instead of a
# shared directory (the meterbook build with `--features s3`).
if [[ ${MB_CLUSTER:-1} != 0 ]]; then
  stage "two nodes on the S3 report store (cargo test -p meterbook --features s3 --test two_nodes)" cargo test --locked -p meterbook --features s3 --test two_nodes
fi
# The gates run the binary the test build made (features unified across the
# workspace), instead of building meterbook again on its own.
target_dir=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export MB_BIN=${MB_BIN:-$target_dir/debug/meterbook}
stage "API fuzzing (scripts/schemathesis.sh)" scripts/schemathesis.sh
stage "FOCUS validator (scripts/focus-gate.sh)" scripts/focus-gate.sh
stage "input fuzzing, 15 s a target (scripts/fuzz.sh)" scripts/fuzz.sh 15
stage "portal end to end in Chromium (scripts/e2e.sh)" scripts/e2e.sh
echo "==> all tests passed in $((SECONDS - total)) s"
