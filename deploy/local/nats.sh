#!/usr/bin/env bash
# NATS server with JetStream, pinned in versions.env, built from the Go module proxy into CACHE_DIR.
# Usage: deploy/local/nats.sh install|auth|start|stop|status
# Authentication is always on: at every start `ctx nats auth-config` writes the users (one NKey per
# role, public keys only) to $STACK_DIR/nats/auth.conf and keeps or creates each role's seed in
# $STACK_DIR/secrets/nats/<role>.nk (0600) with <role>.env (the variables a process connects with).
# Env: NATS_PORT (4222), NATS_MONITOR_PORT (8222), NATS_PROFILE_PORT (unset: no Go pprof endpoint),
#      NATS_SERVER_TLS_CERT + NATS_SERVER_TLS_KEY (unset: no TLS), NATS_SERVER_TLS_CA (with it,
#      clients must present a certificate it signed), STACK_DIR, CACHE_DIR, and the stream names
#      the permissions are written for (EVENT_STREAM, ... as the services read them).
LOG_TAG=nats
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NATS_PORT="${NATS_PORT:-4222}"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}"
NATS_BIN="$CACHE_DIR/nats-server-$NATS_SERVER_VERSION/bin/nats-server"

install() {
  [[ -x $NATS_BIN ]] && return 0
  command -v go >/dev/null || die "go is needed to build nats-server $NATS_SERVER_VERSION"
  log "building nats-server $NATS_SERVER_VERSION with go install (once, cached in $CACHE_DIR)"
  GOBIN="$(dirname "$NATS_BIN")" GOFLAGS=-mod=mod \
    go install "github.com/nats-io/nats-server/v2@v$NATS_SERVER_VERSION"
}

# auth: writes the users (public keys) to $STACK_DIR/nats/auth.conf and each role's seed, kept if
# present, to $STACK_DIR/secrets/nats (also for a NATS started otherwise, e.g. deploy/compose).
auth() {
  mkdir -p "$STACK_DIR/nats"
  "$REPO_ROOT/bin/ctx" nats auth-config --config "$STACK_DIR/nats/auth.conf" \
    --secrets "$STACK_DIR/secrets/nats" >/dev/null
}

healthy() { curl -fsS "http://$BIND_HOST:$NATS_MONITOR_PORT/healthz?js-enabled-only=true" >/dev/null; }

start() {
  install
  if is_running nats; then
    log "already running (pid $(cat "$(pid_file nats)"))"
    return 0
  fi
  local store="$STACK_DIR/data/nats" conf="$STACK_DIR/nats"
  mkdir -p "$store"
  auth
  {
    echo 'include "auth.conf"'
    if [[ -n ${NATS_SERVER_TLS_CERT:-} ]]; then
      echo "tls {"
      echo "  cert_file: \"$NATS_SERVER_TLS_CERT\""
      echo "  key_file: \"$NATS_SERVER_TLS_KEY\""
      if [[ -n ${NATS_SERVER_TLS_CA:-} ]]; then
        echo "  ca_file: \"$NATS_SERVER_TLS_CA\""
        echo "  verify: true"
      fi
      echo "}"
    fi
  } >"$conf/server.conf"
  start_bg nats "$NATS_BIN" -c "$conf/server.conf" -a "$BIND_HOST" -p "$NATS_PORT" \
    -m "$NATS_MONITOR_PORT" -js -sd "$store" -n "ctx-local-$NATS_PORT" \
    ${NATS_PROFILE_PORT:+--profile "$NATS_PROFILE_PORT"}
  if ! wait_for "nats on $NATS_PORT" 30 healthy; then
    tail -n 40 "$(log_file nats)" >&2
    exit 1
  fi
  log "ready on nats://$BIND_HOST:$NATS_PORT (monitoring http://$BIND_HOST:$NATS_MONITOR_PORT; users in $conf/auth.conf)"
}

status() {
  if is_running nats && healthy; then
    echo "nats     running  nats://$BIND_HOST:$NATS_PORT"
  else
    echo "nats     stopped"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  auth) auth ;;
  start) start ;;
  stop) stop_pid nats ;;
  status) status ;;
  *) die "usage: $0 install|auth|start|stop|status" ;;
esac
