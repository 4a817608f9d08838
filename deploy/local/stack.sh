#!/usr/bin/env bash
# The local stack: NATS (JetStream), Valkey and Neo4j as plain processes on 127.0.0.1.
# Usage: deploy/local/stack.sh install|up|down|status
# Env: STACK_DIR, CACHE_DIR, NATS_PORT, NATS_MONITOR_PORT, VALKEY_PORT, NEO4J_BOLT_PORT.
LOG_TAG=stack
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
here="$(dirname "${BASH_SOURCE[0]}")"
servers=(nats valkey neo4j)

# run_all <action>: runs the action for every server at once (Neo4j alone takes 6-20 s to start).
run_all() {
  local action=$1 pids=() failed=0 s
  for s in "${servers[@]}"; do
    "$here/$s.sh" "$action" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  return $failed
}

case "${1:-}" in
  install) run_all install ;;
  up)
    # Installs run one after another: they share apt, Maven and Go caches.
    for s in "${servers[@]}"; do "$here/$s.sh" install; done
    run_all start
    ;;
  down) run_all stop ;;
  status)
    rc=0
    for s in "${servers[@]}"; do "$here/$s.sh" status || rc=1; done
    exit $rc
    ;;
  *) die "usage: $0 install|up|down|status" ;;
esac
