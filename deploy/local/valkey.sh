#!/usr/bin/env bash
# Valkey from Debian bookworm-backports, unpacked into CACHE_DIR with a private apt configuration:
# the system's apt sources are never touched.
# Usage: deploy/local/valkey.sh install|start|stop|status
# Env: VALKEY_PORT (6379), STACK_DIR, CACHE_DIR, DEBIAN_MIRROR (default: the mirror apt already uses).
LOG_TAG=valkey
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VALKEY_PORT="${VALKEY_PORT:-6379}"
VALKEY_HOME="$CACHE_DIR/valkey-$VALKEY_DEB_VERSION"
VALKEY_BIN="$VALKEY_HOME/root/usr/bin/valkey-server"
VALKEY_CLI="$VALKEY_HOME/root/usr/bin/valkey-cli"

# The Debian mirror apt already uses, so no new host is contacted.
system_mirror() {
  local m
  m=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
    grep -oE 'https?://[^ ]+' | head -n 1 || true)
  m="${DEBIAN_MIRROR:-$m}"
  [[ -n $m ]] || die "no Debian mirror found in /etc/apt/sources.list*; set DEBIAN_MIRROR"
  echo "$m"
}

run() { LD_LIBRARY_PATH="$VALKEY_HOME/root/usr/lib/x86_64-linux-gnu" "$@"; }

install() {
  [[ -x $VALKEY_BIN ]] && run "$VALKEY_BIN" --version | grep -q "v=$VALKEY_DEB_VERSION" && return 0
  command -v apt-get >/dev/null || die "apt-get is needed to fetch Valkey from Debian"
  local apt="$VALKEY_HOME/apt" mirror
  mirror=$(system_mirror)
  log "fetching valkey $VALKEY_DEB_VERSION from $mirror bookworm-backports (once, cached in $CACHE_DIR)"
  rm -rf "$VALKEY_HOME" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  cat >"$apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-backports main
SRC
  local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User="$(id -un)" -q)
  apt-get "${opts[@]}" update >/dev/null
  local ver
  ver=$(apt-cache "${opts[@]}" madison valkey-server | awk -v v="$VALKEY_DEB_VERSION" '$3 ~ "^"v {print $3; exit}')
  [[ -n $ver ]] || die "bookworm-backports has no valkey-server $VALKEY_DEB_VERSION"
  (cd "$apt/debs" && apt-get "${opts[@]}" download "valkey-server=$ver" "valkey-tools=$ver" liblzf1 libjemalloc2 >/dev/null)
  for deb in "$apt/debs"/*.deb; do dpkg -x "$deb" "$VALKEY_HOME/root"; done
  rm -rf "$apt"
  run "$VALKEY_BIN" --version >/dev/null
}

cli() { run "$VALKEY_CLI" -h "$BIND_HOST" -p "$VALKEY_PORT" "$@"; }
healthy() { [[ $(cli ping 2>/dev/null) == PONG ]]; }

start() {
  install
  if is_running valkey; then
    log "already running (pid $(cat "$(pid_file valkey)"))"
    return 0
  fi
  local data="$STACK_DIR/data/valkey"
  mkdir -p "$data"
  start_bg valkey env LD_LIBRARY_PATH="$VALKEY_HOME/root/usr/lib/x86_64-linux-gnu" "$VALKEY_BIN" \
    --bind "$BIND_HOST" --port "$VALKEY_PORT" --dir "$data" --daemonize no \
    --appendonly yes --save "" --protected-mode yes
  if ! wait_for "valkey on $VALKEY_PORT" 30 healthy; then
    tail -n 40 "$(log_file valkey)" >&2
    exit 1
  fi
  log "ready on redis://$BIND_HOST:$VALKEY_PORT"
}

status() {
  if is_running valkey && healthy; then
    echo "valkey   running  redis://$BIND_HOST:$VALKEY_PORT"
  else
    echo "valkey   stopped"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_pid valkey ;;
  status) status ;;
  cli) shift; cli "$@" ;;
  *) die "usage: $0 install|start|stop|status|cli" ;;
esac
