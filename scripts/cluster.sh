#!/usr/bin/env bash
# A throwaway scale-out deployment on this machine, for the tests that need real
# servers: one PostgreSQL (the ledger, `--store`) and a ClickHouse cluster of two
# shards (the usage facts, `--usage-store`), all on 127.0.0.1 in one folder that
# `stop` removes. Why a script and not a container: the servers come from
# Debian's packages (PostgreSQL 15, ClickHouse 18.16), so a developer, CI and the
# tests all run the same versions without a container runtime, and startup is a
# few seconds.
#
#   scripts/cluster.sh start [DIR]   install what is missing, start everything in
#                                    DIR (default: a fresh mktemp -d), self-check the
#                                    two-shard cluster, write DIR/env; the env
#                                    file's path is the last line printed
#   scripts/cluster.sh stop [DIR]    stop everything and remove DIR (safe twice)
#   scripts/cluster.sh status [DIR]
#   scripts/cluster.sh stop-shard N  stop ClickHouse server N (1 or 2), data kept
#   scripts/cluster.sh kill-shard N  SIGKILL it (a crash), data kept
#   scripts/cluster.sh demo [ARGS]   `meterbook demo` on a cluster of its own
#                                    (target/cluster-demo, started if not up)
#   scripts/cluster.sh start-shard N start it again on the same data
#   scripts/cluster.sh restart-pg    restart PostgreSQL (fast shutdown)
#
# DIR for the commands other than start: the argument, else $MB_CLUSTER_DIR, else
# the folder the last `start` recorded in target/cluster-dir.
#
# DIR/env exports MB_TEST_STORE and MB_TEST_USAGE_STORE (what the tests read),
# MB_STORE and MB_USAGE_STORE (what `meterbook` reads) with the same URLs, and
# MB_CLUSTER_DIR. `source "$(scripts/cluster.sh start | tail -n1)"` is the usual
# way in; scripts/test.sh does that around the Rust suites.
#
# Ports (127.0.0.1 only), each overridable: MB_CLUSTER_PG_PORT (55432),
# MB_CLUSTER_CH1_HTTP_PORT / MB_CLUSTER_CH2_HTTP_PORT (58123 / 58124),
# MB_CLUSTER_CH1_TCP_PORT / MB_CLUSTER_CH2_TCP_PORT (59000 / 59001),
# MB_CLUSTER_CH1_INTERSERVER_PORT / MB_CLUSTER_CH2_INTERSERVER_PORT (59009 / 59010).
# A port already taken fails `start` at once, naming the variable to change.
#
# The ClickHouse shards are two plain servers whose configs both name cluster
# `meterbook` in <remote_servers> (shard 1 = server 1's TCP port, shard 2 =
# server 2's): Distributed tables work with no ZooKeeper and no ON CLUSTER DDL,
# which is how Meterbook uses them (it creates each shard's tables itself).
#
# Timing (2 cores, packages already installed): `start` about 2 s including
# initdb and the self-check (7 s while builds share the cores), `stop` about 2.5 s (ClickHouse takes 2 s to shut
# down), `stop-shard` 2 s, `start-shard` and `restart-pg` under 0.5 s.
# Installing the packages on a bare machine adds a minute or so.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
state_file=$repo/target/cluster-dir
marker=.meterbook-cluster

pg_port=${MB_CLUSTER_PG_PORT:-55432}
ch_http=("${MB_CLUSTER_CH1_HTTP_PORT:-58123}" "${MB_CLUSTER_CH2_HTTP_PORT:-58124}")
ch_tcp=("${MB_CLUSTER_CH1_TCP_PORT:-59000}" "${MB_CLUSTER_CH2_TCP_PORT:-59001}")
ch_inter=("${MB_CLUSTER_CH1_INTERSERVER_PORT:-59009}" "${MB_CLUSTER_CH2_INTERSERVER_PORT:-59010}")
wait_secs=60

say() { echo "cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  say "installing $* with apt-get (Debian's packages)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q "$@" >/dev/null ||
    { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "$@" >/dev/null; } ||
    die "could not install $* (apt-get)"
}

# PostgreSQL's server binaries are not on the PATH on Debian: pg_config knows
# where they are, else take the newest /usr/lib/postgresql/*/bin.
pg_bindir() {
  local d
  if command -v pg_config >/dev/null && d=$(pg_config --bindir 2>/dev/null) && [[ -x $d/initdb ]]; then
    echo "$d"
    return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x $d/initdb ]] && { echo "$d"; return; }
  done
  return 1
}

ch_server_bin() {
  if command -v clickhouse-server >/dev/null; then
    echo clickhouse-server
  elif [[ -x /usr/sbin/clickhouse-server ]]; then
    # Debian puts it in /usr/sbin, which is not on a normal user's PATH.
    echo /usr/sbin/clickhouse-server
  elif command -v clickhouse >/dev/null; then
    echo "clickhouse server"
  else
    return 1
  fi
}

install_missing() {
  pg_bindir >/dev/null || apt_install postgresql
  pg_bindir >/dev/null || die "PostgreSQL's initdb not found after installing postgresql"
  ch_server_bin >/dev/null || apt_install clickhouse-server
  ch_server_bin >/dev/null || die "clickhouse-server not found after installing it"
  command -v curl >/dev/null || command -v clickhouse-client >/dev/null || apt_install curl
}

# As root, PostgreSQL refuses to run: initdb and postgres run as the `postgres`
# system user (made by Debian's package) instead.
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ch_ping() {
  local port=$1
  if command -v curl >/dev/null; then
    curl -sf -m 2 "http://127.0.0.1:$port/ping" >/dev/null
  else
    (
      exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
      printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
      timeout 2 head -c 12 <&3 | grep -q ' 200'
    ) 2>/dev/null
  fi
}

# One statement through server N's HTTP interface; the server's error text on failure.
ch_query() {
  local n=$1 sql=$2 out
  if command -v curl >/dev/null; then
    if ! out=$(curl -sS -m 30 --data-binary "$sql" -w '\n%{http_code}' "http://127.0.0.1:${ch_http[n - 1]}/"); then
      die "ClickHouse $n: request failed: $sql"
    fi
    [[ ${out##*$'\n'} == 200 ]] || die "ClickHouse $n: $sql: ${out%$'\n'*}"
    out=${out%$'\n'*}
    [[ -z $out ]] || echo "$out"
  else
    clickhouse-client --host 127.0.0.1 --port "${ch_tcp[n - 1]}" --query "$sql" ||
      die "ClickHouse $n: $sql failed"
  fi
}

pg_up() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -t 2; }

log_tail() {
  say "last lines of $1:"
  tail -n 30 "$1" >&2 2>/dev/null || true
}

resolve_dir() {
  local dir=${1:-${MB_CLUSTER_DIR:-}}
  if [[ -z $dir && -f $state_file ]]; then dir=$(<"$state_file"); fi
  echo "$dir"
}

# ClickHouse 18.16's config: root element <yandex>, element names as in the
# package's /etc/clickhouse-server/config.xml of that version.
write_ch_config() {
  local n=$1 dir=$2 d=$2/ch$1
  mkdir -p "$d/data" "$d/tmp" "$d/user_files" "$d/format_schemas" "$d/log"
  cat >"$d/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>$d/log/server.log</log>
        <errorlog>$d/log/server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>${ch_http[n - 1]}</http_port>
    <tcp_port>${ch_tcp[n - 1]}</tcp_port>
    <interserver_http_port>${ch_inter[n - 1]}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <!-- Small caches: a test machine of 2 cores, shared with the builds. -->
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$d/data/</path>
    <tmp_path>$d/tmp/</tmp_path>
    <user_files_path>$d/user_files/</user_files_path>
    <format_schema_path>$d/format_schemas/</format_schema_path>
    <users_config>$d/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <!-- Tests drop what they make, whatever its size. -->
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
    <!-- Both servers know the same cluster; Distributed tables name it. -->
    <remote_servers>
        <meterbook>
            <shard>
                <replica>
                    <host>127.0.0.1</host>
                    <port>${ch_tcp[0]}</port>
                </replica>
            </shard>
            <shard>
                <replica>
                    <host>127.0.0.1</host>
                    <port>${ch_tcp[1]}</port>
                </replica>
            </shard>
        </meterbook>
    </remote_servers>
</yandex>
EOF
  cat >"$d/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>in_order</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

ch_pid_alive() {
  local pidf=$1/ch$2/server.pid
  [[ -f $pidf ]] && kill -0 "$(<"$pidf")" 2>/dev/null
}

start_ch() {
  local n=$1 dir=$2 d=$2/ch$1 bin i
  ch_pid_alive "$dir" "$n" && { say "ClickHouse $n already running"; return; }
  port_open "${ch_http[n - 1]}" && die "port ${ch_http[n - 1]} is taken (MB_CLUSTER_CH${n}_HTTP_PORT)"
  port_open "${ch_tcp[n - 1]}" && die "port ${ch_tcp[n - 1]} is taken (MB_CLUSTER_CH${n}_TCP_PORT)"
  bin=$(ch_server_bin)
  # In its own session, so that the caller's Ctrl-C or exit does not reach it;
  # stop/stop-shard end it by the pid recorded here.
  # shellcheck disable=SC2086 # "clickhouse server" is two words on purpose
  setsid $bin --config-file="$d/config.xml" </dev/null >>"$d/log/stdout.log" 2>&1 &
  echo $! >"$d/server.pid"
  for ((i = 0; i < wait_secs * 4; i++)); do
    ch_ping "${ch_http[n - 1]}" && return
    if ! ch_pid_alive "$dir" "$n"; then
      log_tail "$d/log/stdout.log"
      log_tail "$d/log/server.err.log"
      die "ClickHouse $n exited during start"
    fi
    sleep 0.25
  done
  log_tail "$d/log/server.err.log"
  die "ClickHouse $n did not answer on port ${ch_http[n - 1]} within $wait_secs s"
}

stop_ch() {
  local n=$1 dir=$2 pidf=$2/ch$1/server.pid pid i
  [[ -f $pidf ]] || return 0
  pid=$(<"$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 80; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "ClickHouse $n did not stop within 20 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidf"
}

pg_ctl_() { as_pg "$(pg_bindir)/pg_ctl" -D "$1/pg/data" "${@:2}"; }

start_pg() {
  local dir=$1
  # -w waits until it accepts connections (at most -t seconds).
  if ! pg_ctl_ "$dir" -l "$dir/pg/server.log" -w -t "$wait_secs" start >/dev/null; then
    log_tail "$dir/pg/server.log"
    die "PostgreSQL did not start within $wait_secs s"
  fi
  pg_up || { log_tail "$dir/pg/server.log"; die "PostgreSQL does not answer on port $pg_port"; }
}

init_pg() {
  local dir=$1 bindir
  bindir=$(pg_bindir)
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$dir/pg"
    runuser -u postgres -- test -w "$dir/pg" ||
      die "$dir is not reachable by the postgres user; choose a DIR outside private folders"
  fi
  as_pg "$bindir/initdb" -D "$dir/pg/data" -U postgres --auth-local=trust --auth-host=trust \
    -E UTF8 --locale=C.UTF-8 >"$dir/pg/initdb.log" 2>&1 ||
    { log_tail "$dir/pg/initdb.log"; die "initdb failed"; }
  # A throwaway cluster: fsync and friends off for speed (a crash loses it all,
  # which costs nothing here). Sockets in DIR, not the system's /run/postgresql.
  cat >>"$dir/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$dir/pg'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

cmd_start() {
  local dir=${1:-} started=$SECONDS n env_file
  install_missing
  port_open "$pg_port" && die "port $pg_port is taken (MB_CLUSTER_PG_PORT); is a cluster already running? (scripts/cluster.sh status)"
  for n in 1 2; do
    for p in "${ch_http[n - 1]}" "${ch_tcp[n - 1]}" "${ch_inter[n - 1]}"; do
      port_open "$p" && die "port $p is taken (see MB_CLUSTER_CH${n}_* in scripts/cluster.sh)"
    done
  done
  if [[ -z $dir ]]; then
    dir=$(mktemp -d -t meterbook-cluster.XXXXXX)
  else
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ -z $(ls -A "$dir") ]] || die "$dir is not empty; give an empty or new folder"
  fi
  touch "$dir/$marker"
  # The postgres user must get through to DIR/pg.
  chmod 755 "$dir"
  mkdir -p "$repo/target"
  echo "$dir" >"$state_file"
  mkdir -p "$dir/pg"
  init_pg "$dir"
  start_pg "$dir"
  as_pg "$(pg_bindir)/psql" -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE meterbook LOGIN SUPERUSER" -c "CREATE DATABASE meterbook OWNER meterbook" >/dev/null
  for n in 1 2; do
    write_ch_config "$n" "$dir"
    start_ch "$n" "$dir"
  done
  self_check
  for n in 1 2; do ch_query "$n" "CREATE DATABASE IF NOT EXISTS meterbook"; done
  local store="postgres://meterbook@127.0.0.1:$pg_port/meterbook"
  local usage="clickhouse://127.0.0.1:${ch_http[0]},127.0.0.1:${ch_http[1]}/meterbook?cluster=meterbook"
  # The other commands find this cluster's ports here, whatever the
  # environment they run in says.
  cat >"$dir/ports" <<EOF
pg_port=$pg_port
ch_http=(${ch_http[*]})
ch_tcp=(${ch_tcp[*]})
ch_inter=(${ch_inter[*]})
EOF
  env_file=$dir/env
  cat >"$env_file" <<EOF
export MB_TEST_STORE='$store'
export MB_TEST_USAGE_STORE='$usage'
export MB_STORE='$store'
export MB_USAGE_STORE='$usage'
export MB_CLUSTER_DIR='$dir'
EOF
  say "PostgreSQL on 127.0.0.1:$pg_port, ClickHouse shards on HTTP ${ch_http[0]} and ${ch_http[1]}; started in $((SECONDS - started)) s"
  echo "$env_file"
}

# Two shards really answer as one cluster: a row on each shard's local table,
# counted through a Distributed table over cluster `meterbook` on either server.
self_check() {
  local n count
  for n in 1 2; do
    ch_query "$n" "CREATE DATABASE IF NOT EXISTS mb_selfcheck"
    ch_query "$n" "CREATE TABLE mb_selfcheck.t_local (id UInt32, shard UInt8) ENGINE = MergeTree ORDER BY id"
    ch_query "$n" "CREATE TABLE mb_selfcheck.t_all AS mb_selfcheck.t_local ENGINE = Distributed(meterbook, mb_selfcheck, t_local)"
    ch_query "$n" "INSERT INTO mb_selfcheck.t_local VALUES ($n, $n)"
  done
  for n in 1 2; do
    count=$(ch_query "$n" "SELECT count(), sum(shard) FROM mb_selfcheck.t_all")
    [[ $count == $'2\t3' ]] ||
      die "self-check: a Distributed count over cluster meterbook on server $n gave '$count', not 2 rows from shards 1 and 2"
  done
  for n in 1 2; do ch_query "$n" "DROP DATABASE mb_selfcheck"; done
}

# The ports `start` recorded for the cluster in DIR.
use_ports() {
  # shellcheck disable=SC1091 # written by cmd_start
  if [ -f "$1/ports" ]; then source "$1/ports"; fi
}

need_dir() {
  local dir=$1
  [[ -n $dir ]] || die "no cluster folder: give DIR, set MB_CLUSTER_DIR, or run start first"
  [[ -f $dir/$marker ]] || die "$dir is not a folder made by scripts/cluster.sh start"
}

cmd_stop() {
  local dir n
  dir=$(resolve_dir "${1:-}")
  use_ports "$dir"
  if [[ -z $dir || ! -d $dir ]]; then
    say "nothing to stop${dir:+ ($dir is gone)}"
    [[ -f $state_file && $(<"$state_file") == "$dir" ]] && rm -f "$state_file"
    return 0
  fi
  [[ -f $dir/$marker ]] || die "$dir is not a folder made by scripts/cluster.sh start; not removing it"
  # Both at once: each takes about 2 s to shut down.
  stop_ch 1 "$dir" &
  stop_ch 2 "$dir" &
  wait
  if [[ -f $dir/pg/data/postmaster.pid ]]; then
    pg_ctl_ "$dir" -m fast -w stop >/dev/null || say "pg_ctl stop failed (PostgreSQL may be gone already)"
  fi
  rm -rf "$dir"
  [[ -f $state_file && $(<"$state_file") == "$dir" ]] && rm -f "$state_file"
  say "stopped; removed $dir"
}

cmd_status() {
  local dir n rc=0
  dir=$(resolve_dir "${1:-}")
  use_ports "$dir"
  need_dir "$dir"
  echo "folder: $dir"
  if pg_up; then echo "postgres: up (127.0.0.1:$pg_port)"; else echo "postgres: down"; rc=1; fi
  for n in 1 2; do
    if ch_ping "${ch_http[n - 1]}"; then
      echo "clickhouse $n: up (http ${ch_http[n - 1]}, tcp ${ch_tcp[n - 1]})"
    else
      echo "clickhouse $n: down"
      rc=1
    fi
  done
  return $rc
}

shard_arg() {
  [[ ${1:-} == 1 || ${1:-} == 2 ]] || die "which shard? 1 or 2"
}

case ${1:-} in
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
stop-shard)
  shard_arg "${2:-}"
  dir=$(resolve_dir "${3:-}")
  use_ports "$dir"
  need_dir "$dir"
  stop_ch "$2" "$dir"
  say "ClickHouse $2 stopped (data kept)"
  ;;
demo)
  # The quickstart's demo on the scale-out stores: a cluster of its own in
  # target/cluster-demo (started unless it is up), then `meterbook demo`
  # with MB_STORE and MB_USAGE_STORE pointing at it. Extra arguments go to
  # `meterbook demo`. `scripts/cluster.sh stop target/cluster-demo` ends it.
  dir=$repo/target/cluster-demo
  if [[ -f $dir/env ]] && (use_ports "$dir" && pg_up && ch_ping "${ch_http[0]}" && ch_ping "${ch_http[1]}"); then
    say "using the running cluster in $dir"
  else
    [[ -d $dir ]] && { cmd_stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
    mkdir -p "$dir"
    cmd_start "$dir" >/dev/null
  fi
  # shellcheck disable=SC1091 # written by cmd_start
  source "$dir/env"
  say "meterbook demo on $MB_STORE + $MB_USAGE_STORE"
  cargo run --locked -- demo "${@:2}"
  ;;
kill-shard)
  # A crash rather than a shutdown: SIGKILL, no waiting for queries in flight.
  shard_arg "${2:-}"
  dir=$(resolve_dir "${3:-}")
  use_ports "$dir"
  need_dir "$dir"
  pidf=$dir/ch$2/server.pid
  if [[ -f $pidf ]]; then
    kill -KILL "$(<"$pidf")" 2>/dev/null || true
    while port_open "${ch_http[$2 - 1]}"; do sleep 0.1; done
    rm -f "$pidf"
  fi
  say "ClickHouse $2 killed (data kept)"
  ;;
start-shard)
  shard_arg "${2:-}"
  dir=$(resolve_dir "${3:-}")
  use_ports "$dir"
  need_dir "$dir"
  start_ch "$2" "$dir"
  say "ClickHouse $2 up"
  ;;
restart-pg)
  dir=$(resolve_dir "${2:-}")
  use_ports "$dir"
  need_dir "$dir"
  pg_ctl_ "$dir" -m fast -w -t "$wait_secs" -l "$dir/pg/server.log" restart >/dev/null ||
    { log_tail "$dir/pg/server.log"; die "PostgreSQL did not restart"; }
  pg_up || die "PostgreSQL does not answer after restart"
  say "PostgreSQL restarted"
  ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
