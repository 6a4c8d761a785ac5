#!/usr/bin/env bash
# A throwaway S3-compatible server on 127.0.0.1 for the tests of the S3 report
# file store (meterbook-jobs' `s3` feature): moto's server, from PyPI, installed
# into .venv-s3 on first run. Why moto: it speaks S3's REST API, multipart
# uploads included, keeps everything in memory (nothing to clean up), and
# installs with pip like the project's other test tools.
#
#   scripts/s3.sh start [DIR]   start it, create the bucket, write DIR/env (DIR:
#                               default a fresh mktemp -d); the env file's path
#                               is the last line printed
#   scripts/s3.sh stop [DIR]    stop it and remove DIR (safe twice)
#   scripts/s3.sh status [DIR]
#
# DIR for stop/status: the argument, else $MB_S3_DIR, else the folder the last
# `start` recorded in target/s3-dir.
# DIR/env exports MB_TEST_S3_URL (s3://meterbook-test/reports?endpoint=...),
# the AWS_* variables the client reads (fixed test keys: moto checks none), and
# MB_S3_DIR. Knobs: MB_S3_PORT (58333), S3_VENV (.venv-s3).
# Needs a Python >= 3.12 (python3.13, python3.12 or a pyenv version, as
# scripts/focus-gate.sh), else python3 if it is >= 3.9 (moto's floor).
# Timing: `start` about 2 s once installed (the first install, a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${S3_VENV:-.venv-s3}
port=${MB_S3_PORT:-58333}
bucket=meterbook-test
state_file=$repo/target/s3-dir
marker=.meterbook-s3

say() { echo "s3: $*" >&2; }
die() {
  say "$*"
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_moto() {
  [[ -x $venv/bin/moto_server ]] && return
  if [[ ! -x $venv/bin/python ]]; then
    local py="" cand
    for cand in python3.13 python3.12 "$(pyenv root 2>/dev/null)"/versions/3.1[23]*/bin/python3 /usr/bin/python3.1[23] python3; do
      if "$cand" -c 'import sys; assert sys.version_info >= ((3, 9) if sys.argv[1] == "python3" else (3, 12))' "$cand" 2>/dev/null; then
        py=$cand
        break
      fi
    done
    [[ -n $py ]] || die "no Python >= 3.9 found (try: apt-get install python3-venv, or pyenv)"
    "$py" -m venv "$venv"
  fi
  say "installing moto's S3 server from PyPI into $venv (first run only)"
  "$venv/bin/pip" install --disable-pip-version-check -q "moto[server]>=5,<6" >&2 ||
    die "moto did not install into $venv"
}

resolve_dir() {
  local dir=${1:-${MB_S3_DIR:-}}
  if [[ -z $dir && -f $state_file ]]; then dir=$(<"$state_file"); fi
  echo "$dir"
}

http() { curl -sf -m 5 "$@"; }

cmd_start() {
  local dir=${1:-} started=$SECONDS i url
  command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
  install_moto
  port_open "$port" && die "port $port is taken (MB_S3_PORT); is one running already? (scripts/s3.sh status)"
  if [[ -z $dir ]]; then
    dir=$(mktemp -d -t meterbook-s3.XXXXXX)
  else
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ -z $(ls -A "$dir") ]] || die "$dir is not empty; give an empty or new folder"
  fi
  touch "$dir/$marker"
  mkdir -p "$repo/target"
  echo "$dir" >"$state_file"
  # In its own session, so that the caller's Ctrl-C or exit does not reach it.
  setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  for ((i = 0; i < 240; i++)); do
    http "http://127.0.0.1:$port/moto-api/" >/dev/null && break
    kill -0 "$(<"$dir/server.pid")" 2>/dev/null || { tail -n 30 "$dir/server.log" >&2; die "moto exited during start"; }
    sleep 0.25
  done
  ((i < 240)) || { tail -n 30 "$dir/server.log" >&2; die "moto did not answer on port $port within 60 s"; }
  # An unsigned request is fine: moto does not check signatures.
  http -X PUT "http://127.0.0.1:$port/$bucket" >/dev/null || die "cannot create bucket $bucket"
  url="s3://$bucket/reports?endpoint=http://127.0.0.1:$port&region=us-east-1"
  cat >"$dir/env" <<EOF
export MB_TEST_S3_URL='$url'
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export MB_S3_DIR='$dir'
EOF
  say "moto's S3 on 127.0.0.1:$port, bucket $bucket; started in $((SECONDS - started)) s"
  echo "$dir/env"
}

cmd_stop() {
  local dir pid i
  dir=$(resolve_dir "${1:-}")
  if [[ -z $dir || ! -d $dir ]]; then
    say "nothing to stop${dir:+ ($dir is gone)}"
    [[ -f $state_file && $(<"$state_file") == "$dir" ]] && rm -f "$state_file"
    return 0
  fi
  [[ -f $dir/$marker ]] || die "$dir is not a folder made by scripts/s3.sh start; not removing it"
  if [[ -f $dir/server.pid ]]; then
    pid=$(<"$dir/server.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  [[ -f $state_file && $(<"$state_file") == "$dir" ]] && rm -f "$state_file"
  say "stopped; removed $dir"
}

cmd_status() {
  local dir
  dir=$(resolve_dir "${1:-}")
  [[ -n $dir && -f $dir/$marker ]] || die "not started (no folder recorded)"
  if http "http://127.0.0.1:$port/moto-api/" >/dev/null; then
    echo "s3: up (127.0.0.1:$port, bucket $bucket, folder $dir)"
  else
    echo "s3: down (folder $dir)"
    return 1
  fi
}

case ${1:-} in
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
*)
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
