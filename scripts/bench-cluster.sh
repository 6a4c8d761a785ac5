#!/usr/bin/env bash
# The scale-out deployment (PostgreSQL + a two-shard ClickHouse cluster) beside
# the embedded SQLite store: same generated data, same machine, same commands.
#
#   scripts/bench-cluster.sh ROWS [DIR]
#
# 1. `meterbook bench --rows ROWS --dir DIR` (default DIR:
#    bench-data/realistic-ROWS) generates the realistic data once (reused when
#    it is already there) and measures the embedded store in-process: its
#    output is the SQLite side of the comparison.
# 2. The cluster: the one MB_STORE / MB_USAGE_STORE name if they are set (e.g.
#    after `source "$(scripts/cluster.sh start | tail -n1)"`), else a
#    throwaway one from scripts/cluster.sh, stopped at the end (MB_CLUSTER_*
#    ports apply; MB_BENCH_KEEP_CLUSTER=1 keeps it). Each run makes a fresh
#    PostgreSQL database and a fresh ClickHouse database name.
# 3. On both stores, each command in its own process under /usr/bin/time -v
#    (wall time, peak RSS of meterbook): create the enrollment, import the
#    hierarchy and six price sheets, ingest usage.csv, ingest it again (all
#    duplicates; past 1.5M rows only the file's first 100,000 rows, see
#    MB_BENCH_REINGEST_ROWS), export the usage details of the six months to
#    /dev/null;
#    `report balance` 20 times beside `period list` (what starting a process
#    and opening the store cost); CPU seconds the ClickHouse servers and
#    PostgreSQL spent during each step (from /proc, when the cluster's folder
#    is known).
# 4. `meterbook serve` on each store: the Balance summary of 202512 uncached
#    (after a write that bumps the data version) 20 times with curl, then wrk
#    (`-t2 -c10 -d20s --latency`, as fast as it goes) and a paced wrk run near
#    1,000 req/s (a Lua delay per request; plain wrk has no fixed rate).
# 5. Checks: the cluster's usage export is byte-identical to the embedded
#    store's (sha256) and has one row per stored record; bytes on disk per row
#    on each ClickHouse shard; PostgreSQL's database size.
#
# Results: DIR.cluster/summary.txt (also printed), logs beside it.
# Environment: MB_BENCH_PORT (18480: serve's port; the next one is used too),
# MB_BENCH_WRK_SECS (20), MB_BENCH_REINGEST_ROWS (rows of the file to
# re-ingest: all up to 1.5M rows, else 100,000; a duplicate lookup on the
# cluster reads the enrollment's whole RecordId index, so the whole file's
# re-ingest grows with the square of its rows), MB_BENCH_SKIP_SQLITE_CLI=1 (skip the embedded store's
# per-process runs; `meterbook bench` still runs).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
rows=${1:?usage: scripts/bench-cluster.sh ROWS [DIR]}
dir=${2:-bench-data/realistic-$rows}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
out=$dir.cluster
rm -rf "$out"
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
port=${MB_BENCH_PORT:-18480}
wrk_secs=${MB_BENCH_WRK_SECS:-20}
M=$repo/target/release/meterbook
N=100001
say() { echo "$*" | tee -a "$summary"; }
die() {
  echo "bench-cluster: $*" >&2
  exit 1
}

for tool in wrk curl psql /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install wrk curl postgresql-client time)"
done

cargo build --release --locked -q -p meterbook

say "# bench-cluster $rows rows, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# -- 1. The data, and the embedded store measured in-process ----------------
/usr/bin/time -v "$M" bench --rows "$rows" --dir "$dir" >"$out/sqlite-bench.txt" 2>"$out/sqlite-bench.time" ||
  { cat "$out/sqlite-bench.txt" "$out/sqlite-bench.time"; exit 1; }
# Its export file (800 bytes a row) is not needed here: the comparison
# below hashes the CLI's export on the fly.
rm -f "$dir/export.csv"
say "## meterbook bench (embedded store, one process)"
tee -a "$summary" <"$out/sqlite-bench.txt"

# -- 2. The cluster ---------------------------------------------------------
started_cluster=
if [[ -z ${MB_STORE:-} ]]; then
  cdir=$(mktemp -d -t meterbook-bench-cluster.XXXXXX)
  env_file=$(scripts/cluster.sh start "$cdir" | tail -n1)
  # shellcheck disable=SC1090
  source "$env_file"
  started_cluster=$cdir
fi
[[ -n ${MB_USAGE_STORE:-} ]] || die "MB_STORE is set but MB_USAGE_STORE is not"
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  if [[ -n $started_cluster && -z ${MB_BENCH_KEEP_CLUSTER:-} ]]; then
    scripts/cluster.sh stop "$started_cluster" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# scheme://authority/db?query with the database replaced.
with_database() {
  local url=$1 db=$2 scheme rest authority query=
  scheme=${url%%://*}
  rest=${url#*://}
  authority=${rest%%/*}
  [[ $rest == *\?* ]] && query="?${rest#*\?}"
  echo "$scheme://$authority/$db$query"
}
name=mb_bench_$(date +%s)
psql "$MB_STORE" -qXc "CREATE DATABASE $name" >/dev/null
export MB_STORE MB_USAGE_STORE
MB_STORE=$(with_database "$MB_STORE" "$name")
MB_USAGE_STORE=$(with_database "$MB_USAGE_STORE" "$name")
# The shards' HTTP endpoints, for the size query.
ch_hosts=${MB_USAGE_STORE#clickhouse://}
ch_hosts=${ch_hosts%%/*}
IFS=, read -r -a ch_hosts <<<"$ch_hosts"

# CPU seconds the servers have used, for "during this step" figures: each
# ClickHouse server is one process; PostgreSQL's backends exit with their
# connection, so its figure is the postmaster's own and reaped children's time
# plus its live children's.
cdir=${MB_CLUSTER_DIR:-}
tick=$(getconf CLK_TCK)
ticks() { awk -v c="$2" '{ s = $14 + $15; if (c) s += $16 + $17; print s }' "/proc/$1/stat" 2>/dev/null || echo 0; }
server_cpu() {
  local n pm kid total=0 ch=()
  [[ -n $cdir && -d $cdir ]] || { echo "- - -"; return; }
  for n in 1 2; do
    if [[ -f $cdir/ch$n/server.pid ]]; then ch+=("$(ticks "$(<"$cdir/ch$n/server.pid")" 0)"); else ch+=(0); fi
  done
  pm=$(head -n1 "$cdir/pg/data/postmaster.pid" 2>/dev/null || echo)
  if [[ -n $pm ]]; then
    total=$(ticks "$pm" 1)
    for kid in $(ps -o pid= --ppid "$pm"); do total=$((total + $(ticks "$kid" 0))); done
  fi
  echo "${ch[0]} ${ch[1]} $total"
}

# timed LABEL STORE OUTFILE ARGS...: one meterbook process under /usr/bin/time
# -v (STORE: "sqlite" for --db DIR/cli.db, "cluster" for the URLs).
declare -A wall rss cpu servers
timed() {
  local label=$1 store=$2 to=$3 before after
  shift 3
  local args=("$@")
  [[ $store == sqlite ]] && args=(--db "$dir/cli.db" "${args[@]}")
  before=$(server_cpu)
  if [[ $store == sqlite ]]; then
    env -u MB_STORE -u MB_USAGE_STORE /usr/bin/time -v -o "$out/$label.time" "$M" "${args[@]}" >"$to" 2>"$out/$label.err" ||
      { cat "$out/$label.err" "$out/$label.time"; die "$label failed"; }
  else
    /usr/bin/time -v -o "$out/$label.time" "$M" "${args[@]}" >"$to" 2>"$out/$label.err" ||
      { cat "$out/$label.err" "$out/$label.time"; die "$label failed"; }
  fi
  after=$(server_cpu)
  wall[$label]=$(awk -F': ' '/Elapsed/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$out/$label.time")
  rss[$label]=$(awk -F': ' '/Maximum resident/ { printf "%.0f", $2 / 1024 }' "$out/$label.time")
  cpu[$label]=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.1f", s }' "$out/$label.time")
  servers[$label]=$(awk -v t="$tick" -v a="$after" -v b="$before" 'BEGIN {
      if (b ~ /-/) { print "n/a"; exit }
      split(a, x, " "); split(b, y, " ");
      printf "ClickHouse 1 %.1f s, ClickHouse 2 %.1f s, PostgreSQL %.1f s", (x[1]-y[1])/t, (x[2]-y[2])/t, (x[3]-y[3])/t }')
}

prepare() {
  local store=$1 p
  timed "$store-enrollment" "$store" /dev/null enrollment create --number $N --name Bench --start 2025-01-01 --end 2027-12-31
  timed "$store-hierarchy" "$store" /dev/null hierarchy import --enrollment $N "$dir/hierarchy.csv"
  for p in 202507 202508 202509 202510 202511 202512; do
    timed "$store-prices-$p" "$store" /dev/null prices import --enrollment $N --period $p "$dir/prices-$p.csv"
  done
}

# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ms_runs() { # N ARGS...: milliseconds of N runs, median
  local n=$1 i t0 t1
  shift
  for ((i = 0; i < n; i++)); do
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
  done | median | awk '{ printf "%.1f", $1 / 1000 }'
}

measure_store() {
  local store=$1 db_args=() stored dup
  [[ $store == sqlite ]] && db_args=(--db "$dir/cli.db")
  if [[ $store == sqlite ]]; then rm -f "$dir/cli.db" "$dir/cli.db-wal" "$dir/cli.db-shm"; fi
  prepare "$store"
  timed "$store-ingest" "$store" "$out/$store-ingest.out" usage ingest --enrollment $N "$dir/usage.csv"
  stored=$(sed -n 's/.* stored \([0-9]*\),.*/\1/p' "$out/$store-ingest.out")
  [[ -n $stored ]] || die "$store ingest: no count in $(cat "$out/$store-ingest.out")"
  rows_stored=$stored
  timed "$store-reingest" "$store" "$out/$store-reingest.out" usage ingest --enrollment $N "$reingest_file"
  dup=$(sed -n 's/.* duplicates \([0-9]*\),.*/\1/p' "$out/$store-reingest.out")
  stored_again=$(sed -n 's/.* stored \([0-9]*\),.*/\1/p' "$out/$store-reingest.out")
  [[ $stored_again == 0 && $dup == "$reingest_rows" ]] || die "$store re-ingest: $stored_again stored, $dup duplicates, expected $reingest_rows duplicates"
  timed "$store-export" "$store" /dev/null report usage --enrollment $N --from 2025-07-01 --to 2025-12-31
  # The same export again, hashed and counted (not timed).
  run_on "$store" report usage --enrollment $N --from 2025-07-01 --to 2025-12-31 |
    tee >(wc -l >"$out/$store-export.lines") | sha256sum | cut -d' ' -f1 >"$out/$store-export.sha256"
  # Statement: 20 processes, beside 20 that only open the store.
  stmt_ms[$store]=$(ms_runs 20 run_on "$store" report balance --enrollment $N --period 202512)
  open_ms[$store]=$(ms_runs 20 run_on "$store" period list --enrollment $N)
}
run_on() {
  local store=$1
  shift
  if [[ $store == sqlite ]]; then
    env -u MB_STORE -u MB_USAGE_STORE "$M" --db "$dir/cli.db" "$@"
  else
    "$M" "$@"
  fi
}

# -- 4. The API ---------------------------------------------------------------
api() {
  local store=$1 key i
  key=$(run_on "$store" keys create --enrollment $N --expires-in-days 30 2>/dev/null | head -n1)
  [[ -n $key ]] || die "no key from keys create"
  local reports=$out/$store-reports
  mkdir -p "$reports"
  if [[ $store == sqlite ]]; then
    env -u MB_STORE -u MB_USAGE_STORE MB_LOG=warn "$M" --db "$dir/cli.db" serve --listen "127.0.0.1:$port" \
      --rate-limit 1000000 --rate-burst 1000000 --report-dir "$reports" 2>"$out/$store-serve.err" &
  else
    MB_LOG=warn "$M" serve --listen "127.0.0.1:$port" \
      --rate-limit 1000000 --rate-burst 1000000 --report-dir "$reports" 2>"$out/$store-serve.err" &
  fi
  server_pid=$!
  local url=http://127.0.0.1:$port/v3/enrollments/$N/billingPeriods/202512/balancesummary
  for ((i = 0; i < 200; i++)); do
    curl -sf -o /dev/null -H "Authorization: bearer $key" "$url" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/$store-serve.err"; die "serve ($store) exited"; }
    sleep 0.1
  done
  curl -sf -o "$out/$store-balancesummary.json" -H "Authorization: bearer $key" "$url" || die "balancesummary ($store) failed"
  # Uncached: a write that bumps the enrollment's data version, then one request.
  for ((i = 0; i < 20; i++)); do
    run_on "$store" usage complete-through --enrollment $N 2025-12-31 >/dev/null
    curl -sf -o /dev/null -w '%{time_total}\n' -H "Authorization: bearer $key" "$url"
  done | median | awk '{ printf "%.1f", $1 * 1000 }' >"$out/$store-uncached.ms"
  for ((i = 0; i < 20; i++)); do
    curl -sf -o /dev/null -w '%{time_total}\n' -H "Authorization: bearer $key" "$url"
  done | median | awk '{ printf "%.1f", $1 * 1000 }' >"$out/$store-cached.ms"
  local rss_before serve0 serve1 srv0 srv1
  # CPU of serve and of the servers behind it while wrk runs: the cost of a request.
  serve0=$(ticks "$server_pid" 0)
  srv0=$(server_cpu)
  wrk -t2 -c10 -d"${wrk_secs}s" --latency -H "Authorization: bearer $key" "$url" >"$out/$store-wrk.txt"
  serve1=$(ticks "$server_pid" 0)
  srv1=$(server_cpu)
  awk -v t="$tick" -v s0="$serve0" -v s1="$serve1" -v a="$srv1" -v b="$srv0" -v st="$store" '
    /requests in/ { n = $1 }
    END {
      split(a, x, " "); split(b, y, " ")
      printf "serve %.1f s CPU (%.0f µs a request)", (s1 - s0) / t, (s1 - s0) / t / n * 1e6
      if (st == "cluster" && b !~ /-/) printf ", PostgreSQL %.1f s (%.0f µs a request)", (x[3] - y[3]) / t, (x[3] - y[3]) / t / n * 1e6
      printf ", %d requests\n", n
    }' "$out/$store-wrk.txt" >"$out/$store-wrk.cpu"
  # Paced: each of 10 connections waits 8 ms after each answer, so about
  # 1,000 req/s when an answer takes ~1 ms (the achieved rate is reported).
  cat >"$out/pace.lua" <<'EOF'
function delay()
  return 8
end
EOF
  wrk -t2 -c10 -d"${wrk_secs}s" --latency -s "$out/pace.lua" -H "Authorization: bearer $key" "$url" >"$out/$store-wrk-paced.txt"
  rss_before=$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$server_pid/status")
  echo "$rss_before" >"$out/$store-serve.rss"
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}
wrk_line() { # FILE: req/s, p50, p99
  awk '/Requests\/sec/ { r = $2 } /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 } /Non-2xx/ { bad = $NF }
       END { printf "%.0f req/s, p50 %s, p99 %s%s", r, p50, p99, (bad ? ", NON-2XX " bad : "") }' "$1"
}

declare -A stmt_ms open_ms
rows_stored=
# The re-ingest of the whole file costs the cluster time that grows with the
# square of the rows (docs/benchmarks.md): past 1.5M rows it re-ingests the
# file's first MB_BENCH_REINGEST_ROWS rows (default 100,000), on both stores.
file_rows=$(($(wc -l <"$dir/usage.csv") - 1))
reingest_rows=${MB_BENCH_REINGEST_ROWS:-}
if [[ -z $reingest_rows ]]; then
  if ((file_rows > 1500000)); then reingest_rows=100000; else reingest_rows=$file_rows; fi
fi
if ((reingest_rows >= file_rows)); then
  reingest_rows=$file_rows
  reingest_file=$dir/usage.csv
else
  reingest_file=$dir/usage-head-$reingest_rows.csv
  head -n $((reingest_rows + 1)) "$dir/usage.csv" >"$reingest_file"
fi
if [[ -z ${MB_BENCH_SKIP_SQLITE_CLI:-} ]]; then
  measure_store sqlite
fi
measure_store cluster
cluster_rows=$rows_stored
api cluster
if [[ -z ${MB_BENCH_SKIP_SQLITE_CLI:-} ]]; then
  api sqlite
fi

# -- 5. Sizes and checks --------------------------------------------------------
ch_bytes=0
ch_detail=
for h in "${ch_hosts[@]}"; do
  b=$(curl -sS --data-binary "SELECT sum(bytes_on_disk), sum(rows) FROM system.parts WHERE active AND database = '$name' AND table = 'facts_local'" "http://$h/")
  all=$(curl -sS --data-binary "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '$name'" "http://$h/")
  ch_detail+="$h: facts_local $(echo "$b" | cut -f1) bytes, $(echo "$b" | cut -f2) rows; all tables $all bytes. "
  ch_bytes=$((ch_bytes + all))
done
pg_bytes=$(psql "$MB_STORE" -qXtAc "SELECT pg_database_size(current_database())")
pg_rollups=$(psql "$MB_STORE" -qXtAc "SELECT count(*) || ' rows, ' || pg_total_relation_size('usage_rollup') || ' bytes' FROM usage_rollup")

# -- Summary ------------------------------------------------------------------
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0fk rows/s", n / s / 1000; else print "n/a" }'; }
line() { # LABEL STORE ROWS
  local l=$2-$1
  printf '%-10s %-8s %8.2f s  %14s  peak RSS %5s MB  meterbook CPU %6s s  servers: %s\n' \
    "$1" "$2" "${wall[$l]}" "$(rate "$3" "${wall[$l]}")" "${rss[$l]}" "${cpu[$l]}" "${servers[$l]}" | tee -a "$summary"
}
say ""
say "## Per process (/usr/bin/time -v), $cluster_rows rows"
for step in ingest reingest export; do
  n=$cluster_rows
  [[ $step == reingest ]] && n=$reingest_rows
  [[ -z ${MB_BENCH_SKIP_SQLITE_CLI:-} ]] && line "$step" sqlite "$n"
  line "$step" cluster "$n"
done
[[ $reingest_rows == "$file_rows" ]] || say "(re-ingest: the file's first $reingest_rows rows, all duplicates)"
prep=0
for k in "${!wall[@]}"; do
  [[ $k == cluster-enrollment || $k == cluster-hierarchy || $k == cluster-prices-* ]] && prep=$(awk -v a="$prep" -v b="${wall[$k]}" 'BEGIN { print a + b }')
done
say "cluster: enrollment, hierarchy and six price sheets: $prep s in total"
for store in sqlite cluster; do
  [[ -f $out/$store-export.sha256 ]] || continue
  lines=$(tr -d ' ' <"$out/$store-export.lines")
  say "$store export: $((lines - 1)) rows, sha256 $(<"$out/$store-export.sha256")"
  say "$store statement (report balance, process): median ${stmt_ms[$store]} ms; period list (start + open only) ${open_ms[$store]} ms"
  say "$store API balancesummary uncached (after a data-version bump): median $(<"$out/$store-uncached.ms") ms; cached $(<"$out/$store-cached.ms") ms (curl time_total)"
  say "$store wrk -t2 -c10: $(wrk_line "$out/$store-wrk.txt"); paced: $(wrk_line "$out/$store-wrk-paced.txt"); serve peak RSS $(<"$out/$store-serve.rss") MB"
  say "$store during wrk -t2 -c10: $(<"$out/$store-wrk.cpu")"
done
cl_lines=$(tr -d ' ' <"$out/cluster-export.lines")
[[ $((cl_lines - 1)) == "$cluster_rows" ]] && say "check: cluster export rows = stored rows ($cluster_rows)" ||
  say "CHECK FAILED: cluster export has $((cl_lines - 1)) rows, $cluster_rows stored"
if [[ -f $out/sqlite-export.sha256 ]]; then
  if cmp -s "$out/sqlite-export.sha256" "$out/cluster-export.sha256"; then
    say "check: cluster export byte-identical to the embedded store's"
  else
    say "CHECK FAILED: the exports differ"
  fi
  # The same answer but for when it was made.
  if cmp -s <(sed 's/"generatedAt":"[^"]*"//' "$out/sqlite-balancesummary.json") \
    <(sed 's/"generatedAt":"[^"]*"//' "$out/cluster-balancesummary.json"); then
    say "check: balancesummary identical on both"
  else
    say "CHECK FAILED: balancesummary differs"
  fi
fi
say "ClickHouse: $ch_detail"
say "ClickHouse bytes on disk per row (both shards, all tables): $(awk -v b="$ch_bytes" -v n="$cluster_rows" 'BEGIN { printf "%.1f", b / n }')"
say "PostgreSQL database size: $pg_bytes bytes; usage_rollup $pg_rollups"
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(logs in $out)"
