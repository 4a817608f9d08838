#!/usr/bin/env bash
# NATS server with JetStream, pinned in versions.env, built from the Go module proxy into CACHE_DIR.
# Usage: deploy/local/nats.sh install|auth|start|stop|status|urls
# One server by default; NATS_CLUSTER=3 (any n ≥ 3, odd) starts a JetStream cluster of n servers on
# 127.0.0.1 instead: routes between them (authenticated with a password generated into the secrets),
# a data folder each ($STACK_DIR/data/nats-<i>), server names nats-0 … nats-<n-1>. The stack
# remembers its size ($STACK_DIR/nats/nodes): stop, status and services.sh need not be told again,
# and starting it with another size while its data exists is refused (make reset first).
# `urls` prints the client URLs of every node, comma-separated (what NATS_URL takes).
# Authentication is always on: at every start `ctx nats auth-config` writes the users (one NKey per
# role, public keys only) to $STACK_DIR/nats/auth.conf and keeps or creates each role's seed in
# $STACK_DIR/secrets/nats/<role>.nk (0600) with <role>.env (the variables a process connects with).
# Env: NATS_PORT (4222), NATS_MONITOR_PORT (8222), NATS_PROFILE_PORT (unset: no Go pprof endpoint),
#      NATS_CLUSTER (1), NATS_CLUSTER_PORT (6222); node i listens on NATS_PORT+i, NATS_MONITOR_PORT+i
#      and NATS_CLUSTER_PORT+i unless NATS_PORTS, NATS_MONITOR_PORTS, NATS_CLUSTER_PORTS list them
#      (comma-separated, one per node),
#      NATS_SERVER_TLS_CERT + NATS_SERVER_TLS_KEY (unset: no TLS), NATS_SERVER_TLS_CA (with it,
#      clients must present a certificate it signed), STACK_DIR, CACHE_DIR, and the stream names
#      the permissions are written for (EVENT_STREAM, ... as the services read them).
LOG_TAG=nats
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NATS_PORT="${NATS_PORT:-4222}"
NATS_MONITOR_PORT="${NATS_MONITOR_PORT:-8222}"
NATS_CLUSTER_PORT="${NATS_CLUSTER_PORT:-6222}"
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

# The nodes of this stack, one line each: index, server name, client, monitoring and route ports.
nodes_file() { echo "$STACK_DIR/nats/nodes"; }

# port_of <list> <base> <index>: the index-th entry of a comma-separated list, or base + index.
port_of() {
  local list=$1 base=$2 i=$3
  if [[ -n $list ]]; then
    local -a ports
    IFS=, read -r -a ports <<<"$list"
    [[ -n ${ports[i]:-} ]] || die "$list names fewer ports than NATS_CLUSTER=$NATS_CLUSTER nodes"
    echo "${ports[i]}"
  else
    echo $((base + i))
  fi
}

# plan: writes the nodes file for NATS_CLUSTER nodes, or checks it against a stack that ran before.
plan() {
  local requested=${NATS_CLUSTER:-} recorded=0
  [[ -f $(nodes_file) ]] && recorded=$(wc -l <"$(nodes_file)")
  if [[ -z $requested ]]; then
    if ((recorded > 0)); then
      NATS_CLUSTER=$recorded
      return 0
    fi
    requested=1
  fi
  [[ $requested =~ ^[0-9]+$ ]] || die "NATS_CLUSTER must be a number of servers, not '$requested'"
  if ((requested != 1 && (requested < 3 || requested % 2 == 0))); then
    die "NATS_CLUSTER=$requested: a JetStream cluster needs an odd number of servers, 3 or more (or 1 for a single server)"
  fi
  if ((recorded > 0 && recorded != requested)); then
    if [[ -d $STACK_DIR/data/nats || -d $STACK_DIR/data/nats-0 ]]; then
      die "this stack ran NATS with $recorded server(s) and keeps their data in $STACK_DIR/data; to start $requested, delete it first (make reset) or use another STACK_DIR"
    fi
  fi
  NATS_CLUSTER=$requested
  mkdir -p "$STACK_DIR/nats"
  local i name
  : >"$(nodes_file)"
  for ((i = 0; i < requested; i++)); do
    if ((requested == 1)); then name="ctx-local-$NATS_PORT"; else name="nats-$i"; fi
    echo "$i $name $(port_of "${NATS_PORTS:-}" "$NATS_PORT" "$i") $(port_of "${NATS_MONITOR_PORTS:-}" "$NATS_MONITOR_PORT" "$i") $(port_of "${NATS_CLUSTER_PORTS:-}" "$NATS_CLUSTER_PORT" "$i")" >>"$(nodes_file)"
  done
}

# each_node <function>: calls it with index, name, client, monitoring and route port of every node.
each_node() {
  local fn=$1 i name port monitor route
  [[ -f $(nodes_file) ]] || return 0
  while read -r i name port monitor route; do "$fn" "$i" "$name" "$port" "$monitor" "$route"; done <"$(nodes_file)"
}

node_count() { if [[ -f $(nodes_file) ]]; then wc -l <"$(nodes_file)"; else echo 0; fi; }
# A single server keeps the names it always had (pid and log "nats", data/nats).
proc_name() { if (($(node_count) == 1)); then echo nats; else echo "nats-$1"; fi; }

urls() {
  local list=() add
  add() { list+=("nats://$BIND_HOST:$3"); }
  each_node add
  ((${#list[@]} > 0)) || die "no NATS was started in $STACK_DIR"
  (IFS=,; echo "${list[*]}")
}

# healthy <monitor port>: JetStream is up; in a cluster, also current (a meta leader, streams caught up).
healthy() {
  if (($(node_count) == 1)); then
    curl -fsS --max-time 2 "http://$BIND_HOST:$1/healthz?js-enabled-only=true" >/dev/null
  else
    curl -fsS --max-time 2 "http://$BIND_HOST:$1/healthz" >/dev/null
  fi
}

# The password of the routes between the nodes, generated once per stack.
route_password() {
  local file="$STACK_DIR/secrets/nats/route.password"
  if [[ ! -s $file ]]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# write_conf <index> <name> <client port> <monitor port> <route port>
write_conf() {
  local i=$1 name=$2 port=$3 monitor=$4 route=$5 conf="$STACK_DIR/nats"
  local proc store
  proc=$(proc_name "$i")
  store="$STACK_DIR/data/$proc"
  mkdir -p "$store"
  {
    echo 'include "auth.conf"'
    echo "server_name: \"$name\""
    echo "listen: \"$BIND_HOST:$port\""
    echo "http: \"$BIND_HOST:$monitor\""
    echo "jetstream { store_dir: \"$store\" }"
    if (($(node_count) > 1)); then
      local password routes=() add_route
      password=$(route_password)
      add_route() { routes+=("\"nats-route://route:$password@$BIND_HOST:$5\""); }
      each_node add_route
      echo "cluster {"
      echo "  name: \"${NATS_CLUSTER_NAME:-ctx-local}\""
      echo "  listen: \"$BIND_HOST:$route\""
      echo "  authorization { user: route, password: \"$password\" }"
      echo "  routes: [$(IFS=,; echo "${routes[*]}")]"
      echo "}"
    fi
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
  } >"$conf/$proc.conf"
  chmod 600 "$conf/$proc.conf"
}

# start_node <index> <name> <client port> <monitor port> <route port>: starts it unless running.
start_node() {
  local proc
  proc=$(proc_name "$1")
  if is_running "$proc"; then
    return 0
  fi
  write_conf "$@"
  local profile=()
  # One Go pprof endpoint: a single server's (the cluster's nodes would race for the port).
  if [[ -n ${NATS_PROFILE_PORT:-} ]] && (($(node_count) == 1)); then profile=(--profile "$NATS_PROFILE_PORT"); fi
  start_bg "$proc" "$NATS_BIN" -c "$STACK_DIR/nats/$proc.conf" "${profile[@]}"
  log "started $2 (pid $(cat "$(pid_file "$proc")"))"
}

# wait_node <index> <name> <client port> <monitor port> <route port>
wait_node() {
  local proc
  proc=$(proc_name "$1")
  if ! wait_for "$2 on $3" "${NATS_START_TIMEOUT:-60}" healthy "$4"; then
    # In a cluster the cause is often another node's (a port it could not bind, a route refused).
    each_node log_tail >&2
    exit 1
  fi
}

# log_tail <index> <name> ...: the end of a node's log, and whether its process still runs.
log_tail() {
  local proc pid
  proc=$(proc_name "$1")
  pid=$(cat "$(pid_file "$proc")" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    echo "--- $2 (pid $pid, running): $(log_file "$proc")"
  else
    echo "--- $2 (not running): $(log_file "$proc")"
  fi
  tail -n 15 "$(log_file "$proc")" 2>/dev/null || true
}

start() {
  install
  plan
  auth
  # Every node first, then the waits: a cluster is healthy only once a quorum is up.
  each_node start_node
  each_node wait_node
  if ((NATS_CLUSTER == 1)); then
    local monitor
    monitor=$(awk '{print $4}' "$(nodes_file)")
    log "ready on $(urls) (monitoring http://$BIND_HOST:$monitor; users in $STACK_DIR/nats/auth.conf)"
  else
    log "cluster of $NATS_CLUSTER ready on $(urls) (users in $STACK_DIR/nats/auth.conf)"
  fi
}

stop_node() { stop_pid "$(proc_name "$1")"; }

stop() {
  # A stack started before the nodes file existed: its one server.
  [[ -f $(nodes_file) ]] || {
    stop_pid nats
    return 0
  }
  # All at once: one after another, the last ones would wait for a quorum that is gone.
  local pids=() stop_bg
  stop_bg() { stop_node "$1" & pids+=($!); }
  each_node stop_bg
  for pid in "${pids[@]}"; do wait "$pid" || true; done
}

status() {
  local rc=0 show
  show() {
    if is_running "$(proc_name "$1")" && healthy "$4"; then
      printf '%-8s running  nats://%s:%s  (%s)\n' nats "$BIND_HOST" "$3" "$2"
    else
      printf '%-8s stopped  (%s)\n' nats "$2"
      rc=1
    fi
  }
  if (($(node_count) == 0)); then
    echo "nats     stopped"
    return 1
  fi
  each_node show
  return $rc
}

case "${1:-}" in
  install) install ;;
  auth) auth ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  urls) urls ;;
  *) die "usage: $0 install|auth|start|stop|status|urls" ;;
esac
