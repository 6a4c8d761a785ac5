#!/usr/bin/env bash
# A throwaway SMTP server on 127.0.0.1 for the e-mail delivery tests
# (crates/meterbook-notify/tests/smtp.rs): aiosmtpd, from PyPI, installed into
# .venv-smtp on first run, storing every message it accepts in a maildir the
# tests read back. Why aiosmtpd: it is the Python project's own SMTP server
# (the successor of the standard library's smtpd), speaks ESMTP as a relay
# does, and installs with pip like the project's other test tools.
#
#   scripts/smtp.sh start [DIR]   start it, write DIR/env (DIR: default a fresh
#                                 mktemp -d); the env file's path is the last
#                                 line printed
#   scripts/smtp.sh stop [DIR]    stop it and remove DIR (safe twice)
#   scripts/smtp.sh status [DIR]
#
# DIR for stop/status: the argument, else $MB_SMTP_DIR, else the folder the
# last `start` recorded in target/smtp-dir.
# DIR/env exports MB_TEST_SMTP_ADDR (127.0.0.1:PORT), MB_TEST_SMTP_MAILDIR
# (DIR/maildir: one file a message in its new/ folder), MB_REQUIRE_SMTP=1 (the
# tests then fail instead of skipping) and MB_SMTP_DIR.
# A second server on TLS_PORT requires STARTTLS before it takes mail, with a
# certificate for 127.0.0.1 from a throwaway CA that openssl makes in DIR/tls
# (the `tls` feature's tests): MB_TEST_SMTP_TLS_ADDR and MB_TEST_SMTP_CA (the
# CA's PEM file) join the env file. Without openssl it is left out, with a note.
# Knobs: MB_SMTP_PORT (58025), MB_SMTP_TLS_PORT (PORT + 1), SMTP_VENV (.venv-smtp).
# Needs a Python >= 3.12 (python3.13, python3.12 or a pyenv version, as
# scripts/focus-gate.sh), else python3 if it is >= 3.9 (aiosmtpd's floor).
# Timing: `start` under a second once installed (the first install, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${SMTP_VENV:-.venv-smtp}
port=${MB_SMTP_PORT:-58025}
tls_port=${MB_SMTP_TLS_PORT:-$((port + 1))}
state_file=$repo/target/smtp-dir
marker=.meterbook-smtp

say() { echo "smtp: $*" >&2; }
die() {
  say "$*"
  exit 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_aiosmtpd() {
  [[ -x $venv/bin/aiosmtpd ]] && return
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
  say "installing aiosmtpd from PyPI into $venv (first run only)"
  "$venv/bin/pip" install --disable-pip-version-check -q "aiosmtpd>=1.4,<2" >&2 ||
    die "aiosmtpd did not install into $venv"
}

resolve_dir() {
  local dir=${1:-${MB_SMTP_DIR:-}}
  if [[ -z $dir && -f $state_file ]]; then dir=$(<"$state_file"); fi
  echo "$dir"
}

# A CA and a certificate for 127.0.0.1 it signs, in $1 (ca.pem, cert.pem, key.pem).
make_certs() {
  local d=$1
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=Meterbook test CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -subj "/CN=127.0.0.1" -keyout "$d/key.pem" -out "$d/cert.csr" 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext" &&
    openssl x509 -req -in "$d/cert.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
      -days 2 -extfile "$d/ext" -out "$d/cert.pem" 2>/dev/null
}

# The server's greeting, read straight off the port ($1, default the plain one).
greets() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/${1:-$port}" || return 1
  IFS= read -r -t 2 line <&3 || line=""
  printf 'QUIT\r\n' >&3 || true
  exec 3<&- 3>&-
  [[ $line == 220* ]]
}

cmd_start() {
  local dir=${1:-} started=$SECONDS i
  install_aiosmtpd
  port_open "$port" && die "port $port is taken (MB_SMTP_PORT); is one running already? (scripts/smtp.sh status)"
  port_open "$tls_port" && die "port $tls_port is taken (MB_SMTP_TLS_PORT); is one running already? (scripts/smtp.sh status)"
  if [[ -z $dir ]]; then
    dir=$(mktemp -d -t meterbook-smtp.XXXXXX)
  else
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ -z $(ls -A "$dir") ]] || die "$dir is not empty; give an empty or new folder"
  fi
  touch "$dir/$marker"
  mkdir -p "$repo/target"
  echo "$dir" >"$state_file"
  # -n: no setuid to nobody; Mailbox: each message into a maildir (Python's
  # mailbox.Maildir, which creates it). In its own session, so that the
  # caller's Ctrl-C or exit does not reach it.
  setsid "$venv/bin/python" -m aiosmtpd -n -l "127.0.0.1:$port" \
    -c aiosmtpd.handlers.Mailbox "$dir/maildir" </dev/null >"$dir/server.log" 2>&1 &
  echo $! >"$dir/server.pid"
  for ((i = 0; i < 120; i++)); do
    port_open "$port" && greets && break
    kill -0 "$(<"$dir/server.pid")" 2>/dev/null || { tail -n 30 "$dir/server.log" >&2; die "aiosmtpd exited during start"; }
    sleep 0.25
  done
  ((i < 120)) || { tail -n 30 "$dir/server.log" >&2; die "aiosmtpd did not answer on port $port within 30 s"; }
  cat >"$dir/env" <<EOF2
export MB_TEST_SMTP_ADDR='127.0.0.1:$port'
export MB_TEST_SMTP_MAILDIR='$dir/maildir'
export MB_REQUIRE_SMTP=1
export MB_SMTP_DIR='$dir'
EOF2
  if ! command -v openssl >/dev/null; then
    say "no openssl: the STARTTLS server is left out (apt-get install openssl)"
  elif ! make_certs "$dir/tls"; then
    die "openssl could not make the test certificates"
  else
    # Same maildir; STARTTLS is required before MAIL (aiosmtpd's default
    # once it has a certificate).
    setsid "$venv/bin/python" -m aiosmtpd -n -l "127.0.0.1:$tls_port" \
      --tlscert "$dir/tls/cert.pem" --tlskey "$dir/tls/key.pem" \
      -c aiosmtpd.handlers.Mailbox "$dir/maildir" </dev/null >"$dir/server-tls.log" 2>&1 &
    echo $! >"$dir/server-tls.pid"
    for ((i = 0; i < 120; i++)); do
      port_open "$tls_port" && greets "$tls_port" && break
      kill -0 "$(<"$dir/server-tls.pid")" 2>/dev/null || { tail -n 30 "$dir/server-tls.log" >&2; die "aiosmtpd (STARTTLS) exited during start"; }
      sleep 0.25
    done
    ((i < 120)) || { tail -n 30 "$dir/server-tls.log" >&2; die "aiosmtpd (STARTTLS) did not answer on port $tls_port within 30 s"; }
    cat >>"$dir/env" <<EOF2
export MB_TEST_SMTP_TLS_ADDR='127.0.0.1:$tls_port'
export MB_TEST_SMTP_CA='$dir/tls/ca.pem'
EOF2
    say "aiosmtpd with STARTTLS on 127.0.0.1:$tls_port"
  fi
  say "aiosmtpd on 127.0.0.1:$port, messages in $dir/maildir; started in $((SECONDS - started)) s"
  echo "$dir/env"
}

cmd_stop() {
  local dir pid i pid_file
  dir=$(resolve_dir "${1:-}")
  if [[ -z $dir || ! -d $dir ]]; then
    say "nothing to stop${dir:+ ($dir is gone)}"
    [[ -f $state_file && $(<"$state_file") == "$dir" ]] && rm -f "$state_file"
    return 0
  fi
  [[ -f $dir/$marker ]] || die "$dir is not a folder made by scripts/smtp.sh start; not removing it"
  for pid_file in "$dir/server.pid" "$dir/server-tls.pid"; do
    [[ -f $pid_file ]] || continue
    pid=$(<"$pid_file")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
  [[ -f $state_file && $(<"$state_file") == "$dir" ]] && rm -f "$state_file"
  say "stopped; removed $dir"
}

cmd_status() {
  local dir
  dir=$(resolve_dir "${1:-}")
  [[ -n $dir && -f $dir/$marker ]] || die "not started (no folder recorded)"
  if port_open "$port" && greets; then
    echo "smtp: up (127.0.0.1:$port, maildir $dir/maildir)"
  else
    echo "smtp: down (folder $dir)"
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
