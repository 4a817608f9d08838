#!/usr/bin/env bash
# The context services as local processes (Node from .tools/), detached, logs in the stack folder.
# Usage: deploy/local/services.sh start|stop|status
# Env: STACK_DIR, NATS_PORT, COMMAND_PORT (50051), COMMAND_OPS_PORT (9551).
LOG_TAG=services
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NODE="$REPO_ROOT/.tools/bin/node"
NATS_PORT="${NATS_PORT:-4222}"
COMMAND_PORT="${COMMAND_PORT:-50051}"
COMMAND_OPS_PORT="${COMMAND_OPS_PORT:-9551}"

ready() { curl -fsS "http://$BIND_HOST:$1/readyz" >/dev/null; }

# start_service <name> <ops-port> <entry> [VAR=value...]
start_service() {
  local name=$1 ops_port=$2 entry=$3
  shift 3
  if is_running "$name"; then
    log "$name already running (pid $(cat "$(pid_file "$name")"))"
    return 0
  fi
  start_bg "$name" env NATS_URL="nats://$BIND_HOST:$NATS_PORT" "$@" "$NODE" "$REPO_ROOT/$entry"
  if ! wait_for "$name" 60 ready "$ops_port"; then
    tail -n 40 "$(log_file "$name")" >&2
    exit 1
  fi
}

case "${1:-}" in
  start)
    [[ -x $NODE ]] || die "Node is not provisioned; run 'make deps' first"
    start_service command "$COMMAND_OPS_PORT" services/command/src/main.ts \
      COMMAND_LISTEN="$BIND_HOST:$COMMAND_PORT" COMMAND_OPS_LISTEN="$BIND_HOST:$COMMAND_OPS_PORT"
    ;;
  stop)
    stop_pid command
    ;;
  status)
    if is_running command && ready "$COMMAND_OPS_PORT"; then
      echo "command  running  grpc://$BIND_HOST:$COMMAND_PORT (ops http://$BIND_HOST:$COMMAND_OPS_PORT)"
    else
      echo "command  stopped"
      exit 1
    fi
    ;;
  *) die "usage: $0 start|stop|status" ;;
esac
