# shellcheck shell=bash
# Helpers shared by scripts/test and scripts/peers/*.sh. Source it; it defines functions only.

# log MSG... -- a progress line on stderr, prefixed so it stands out from cargo's output.
log() { printf '[harness] %s\n' "$*" >&2; }

# die MSG... -- print an error and exit 1.
die() { printf '[harness] error: %s\n' "$*" >&2; exit 1; }

# alive PID -- true while PID exists and is not a zombie.
alive() {
  [ -d "/proc/$1" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# stop_pid PID [NAME] -- SIGTERM, SIGKILL after a 5 s grace period. Returns once PID is gone
# (or after another 2 s if even SIGKILL did not take it).
stop_pid() {
  local pid=$1 name=${2:-process} i
  [ -n "$pid" ] || return 0
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 5 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) is still there after SIGKILL"
}

# stop_pidfile FILE [NAME] -- stop_pid on the PID stored in FILE, if the file exists.
stop_pidfile() {
  [ -f "$1" ] || return 0
  stop_pid "$(cat "$1")" "${2:-$1}"
}

# tcp_open PORT -- true if something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_tcp PORT SECONDS PID -- wait until 127.0.0.1:PORT accepts connections; fail early if
# PID (the server we started) exits.
wait_tcp() {
  local port=$1 secs=$2 pid=${3:-} i
  for ((i = 0; i < secs * 10; i++)); do
    tcp_open "$port" && return 0
    if [ -n "$pid" ] && ! alive "$pid"; then return 1; fi
    sleep 0.1
  done
  return 1
}

# port_busy PROTO PORT -- true if a socket is bound to PORT (PROTO tcp or udp) on any address.
port_busy() {
  local flag=-lnt
  [ "$1" = udp ] && flag=-lnu
  ss -H "$flag" "sport = :$2" 2>/dev/null | grep -q .
}

# who_has PROTO PORT -- describe the process bound to PORT (for error messages).
who_has() {
  local flag=-lntp
  [ "$1" = udp ] && flag=-lnup
  ss -H "$flag" "sport = :$2" 2>/dev/null | sed 's/^/    /'
}

# fail_with_log NAME LOGFILE... -- print the last lines of each log, then exit 1.
fail_with_log() {
  local name=$1 f
  shift
  printf '[harness] error: %s did not come up\n' "$name" >&2
  for f in "$@"; do
    [ -f "$f" ] || continue
    printf '[harness] ---- last lines of %s ----\n' "$f" >&2
    tail -n 25 "$f" | sed 's/^/    /' >&2
  done
  exit 1
}
