# shellcheck shell=bash
# Shared helpers for the deploy/local scripts. Source it; do not run it.
#
# Layout (all overridable through the environment):
#   CACHE_DIR  downloads and built artefacts shared by every clone  (~/.cache/context-service)
#   STACK_DIR  data, logs and pid files of one running stack         (<repo>/.stack/local)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../../versions.env
. "$REPO_ROOT/versions.env"

CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/context-service}"
STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack/local}"
BIND_HOST=127.0.0.1

log() { printf '[%s] %s\n' "${LOG_TAG:-stack}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for <description> <timeout-seconds> <command...>: polls the command until it succeeds.
wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

pid_file() { echo "$STACK_DIR/run/$1.pid"; }
log_file() { echo "$STACK_DIR/log/$1.log"; }

# is_running <name>: the pid file names a live process.
is_running() {
  local f
  f=$(pid_file "$1")
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_bg <name> <command...>: starts a detached process, its output in the stack's log folder.
start_bg() {
  local name=$1
  shift
  mkdir -p "$STACK_DIR/run" "$STACK_DIR/log"
  setsid "$@" >>"$(log_file "$name")" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
}

# stop_pid <name>: stops the process named by the pid file (TERM, then KILL), and only that one.
stop_pid() {
  local name=$1 f pid
  f=$(pid_file "$name")
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop in 30s; killing $pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

# debian_mirror: the Debian mirror apt already uses (DEBIAN_MIRROR overrides it), so that fetching
# packages with a private apt configuration contacts no new host.
debian_mirror() {
  local m
  m=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
    grep -oE 'https?://[^ ]+' | head -n 1 || true)
  m="${DEBIAN_MIRROR:-$m}"
  [[ -n $m ]] || die "no Debian mirror found in /etc/apt/sources.list*; set DEBIAN_MIRROR"
  echo "$m"
}

# tcp_open <port>: something accepts connections on 127.0.0.1:<port>.
tcp_open() { (exec 3<>"/dev/tcp/$BIND_HOST/$1") 2>/dev/null; }
