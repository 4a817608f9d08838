#!/usr/bin/env bash
# The context services as local processes (Node from .tools/), detached, logs in the stack folder.
# Usage: deploy/local/services.sh start|stop|status|token|ctx <args...>
# Each service logs in to NATS as its own user (the seeds deploy/local/nats.sh keeps in
# $STACK_DIR/secrets/nats); `ctx <args>` runs bin/ctx as the operator (ctx provision, ctx demo, ...).
# Env: STACK_DIR, NATS_PORT (a single server's; a cluster's nodes are read from the stack),
#      EVENT_STREAM_REPLICAS (3 on a cluster, else 1), VALKEY_PORT, NEO4J_BOLT_PORT, COMMAND_PORT (50051), COMMAND_OPS_PORT (9551),
#      QUERY_PORT (50052), QUERY_OPS_PORT (9552), PROJECTOR_OPS_PORT_BASE (9561: replicas use 9561..9564),
#      VALKEY_TLS, NEO4J_TLS (0; 1 when valkey.sh / neo4j.sh run with TLS),
#      AUTH (jwt; off serves every caller unauthenticated, logged by the services).
# Each service logs in to Valkey as its own user (query: read only; projectors: the read model's
# keys) and to Neo4j as neo4j, with the passwords the stack generated, given as files.
LOG_TAG=services
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NODE="$REPO_ROOT/.tools/bin/node"
# Flags every service runs with (one source: deploy/service-node-flags; why: docs/OPERATIONS.md).
mapfile -t NODE_FLAGS < <(grep -v '^[[:space:]]*\(#\|$\)' "$REPO_ROOT/deploy/service-node-flags")
NATS_PORT="${NATS_PORT:-4222}"
COMMAND_PORT="${COMMAND_PORT:-50051}"
COMMAND_OPS_PORT="${COMMAND_OPS_PORT:-9551}"
QUERY_PORT="${QUERY_PORT:-50052}"
QUERY_OPS_PORT="${QUERY_OPS_PORT:-9552}"
VALKEY_PORT="${VALKEY_PORT:-6379}"
NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
PROJECTOR_OPS_PORT_BASE="${PROJECTOR_OPS_PORT_BASE:-9561}"
VALKEY_TLS="${VALKEY_TLS:-0}"
NEO4J_TLS="${NEO4J_TLS:-0}"
# Two replicas per read model, as a StatefulSet would run them: name, projection, ops port.
PROJECTORS=(
  "projector-neo4j-0 neo4j $((PROJECTOR_OPS_PORT_BASE + 0))"
  "projector-neo4j-1 neo4j $((PROJECTOR_OPS_PORT_BASE + 1))"
  "projector-valkey-0 valkey $((PROJECTOR_OPS_PORT_BASE + 2))"
  "projector-valkey-1 valkey $((PROJECTOR_OPS_PORT_BASE + 3))"
)

ready() { curl -fsS "http://$BIND_HOST:$1/readyz" >/dev/null; }

# Where NATS listens: every node of the stack's cluster (deploy/local/nats.sh remembers them), and
# its streams' replicas: 3 on a cluster (R3), 1 on one server; EVENT_STREAM_REPLICAS set wins.
if [[ -f $STACK_DIR/nats/nodes ]]; then
  NATS_URL=$("$REPO_ROOT/deploy/local/nats.sh" urls)
  nats_nodes=$(wc -l <"$STACK_DIR/nats/nodes")
else
  NATS_URL="nats://$BIND_HOST:$NATS_PORT"
  nats_nodes=1
fi
if ((nats_nodes >= 3)); then default_replicas=3; else default_replicas=1; fi
export EVENT_STREAM_REPLICAS="${EVENT_STREAM_REPLICAS:-$default_replicas}"

# role_env <array> <role> [prefix]: appends a role's NATS variables (seed file, inbox prefix).
role_env() {
  local -n into=$1
  local file="$STACK_DIR/secrets/nats/$2.env" line
  [[ -f $file ]] || die "no NATS credentials for $2 in $file; start NATS first (deploy/local/stack.sh up)"
  while IFS= read -r line; do [[ -n $line ]] && into+=("${3:-}$line"); done <"$file"
}

# store_env <valkey-user>: VAR=value lines that log in to the stack's Valkey as that user and to
# its Neo4j; nothing for a store whose secrets this stack did not generate (LOCAL_SERVERS=0).
store_env() {
  local secrets="$STACK_DIR/secrets"
  if [[ -f $secrets/valkey/$1 ]]; then
    echo "VALKEY_USER=$1"
    echo "VALKEY_PASSWORD_FILE=$secrets/valkey/$1"
  fi
  if [[ $VALKEY_TLS == 1 ]]; then
    echo "VALKEY_URL=rediss://$BIND_HOST:$VALKEY_PORT"
    echo "VALKEY_TLS_CA=$STACK_DIR/pki/ca.pem"
  fi
  if [[ $NEO4J_TLS == 1 ]]; then
    echo "NEO4J_URL=bolt+s://$BIND_HOST:$NEO4J_BOLT_PORT"
    echo "NEO4J_TLS_CA=$STACK_DIR/pki/ca.pem"
  fi
  [[ -f $secrets/neo4j/password ]] && echo "NEO4J_PASSWORD_FILE=$secrets/neo4j/password"
  return 0
}

# Authentication of the gRPC services: bearer JWTs verified against a key set in the ignored stack
# folder, with a development token (sub dev, every role, 12 h) that make up prints and ctx uses.
AUTH="${AUTH:-jwt}"
AUTH_DIR="$STACK_DIR/secrets/auth"
AUTH_ISSUER=ctx-local
AUTH_AUDIENCE=context-service
auth_env() {
  if [[ $AUTH == off ]]; then
    echo AUTH=off
  else
    echo AUTH="$AUTH" AUTH_JWKS_FILE="$AUTH_DIR/jwks.json" AUTH_ISSUER="$AUTH_ISSUER" AUTH_AUDIENCE="$AUTH_AUDIENCE"
  fi
}
# auth_setup: the signing key and JWKS (kept across restarts) and a fresh development token.
auth_setup() {
  [[ $AUTH == off ]] && { log "AUTH=off: the gRPC services serve every caller unauthenticated"; return 0; }
  mkdir -p "$AUTH_DIR"
  chmod 700 "$STACK_DIR/secrets" "$AUTH_DIR"
  "$REPO_ROOT/bin/ctx" token keygen --dir "$AUTH_DIR" >/dev/null
  (umask 077 && "$REPO_ROOT/bin/ctx" token mint --key "$AUTH_DIR/signing-key.pem" \
    --issuer "$AUTH_ISSUER" --audience "$AUTH_AUDIENCE" --subject dev --roles "writer reader auditor admin" \
    --ttl 12h >"$AUTH_DIR/dev-token.tmp" && mv "$AUTH_DIR/dev-token.tmp" "$AUTH_DIR/dev-token")
}

# start_service <name> <ops-port> <entry> [VAR=value...]
start_service() {
  local name=$1 ops_port=$2 entry=$3
  shift 3
  if is_running "$name"; then
    log "$name already running (pid $(cat "$(pid_file "$name")"))"
    return 0
  fi
  start_bg "$name" env NATS_URL="$NATS_URL" VALKEY_URL="redis://$BIND_HOST:$VALKEY_PORT" \
    NEO4J_URL="bolt://$BIND_HOST:$NEO4J_BOLT_PORT" "$@" "$NODE" "${NODE_FLAGS[@]}" "$REPO_ROOT/$entry"
  if ! wait_for "$name" 60 ready "$ops_port"; then
    tail -n 40 "$(log_file "$name")" >&2
    exit 1
  fi
}

case "${1:-}" in
  start)
    [[ -x $NODE ]] || die "Node is not provisioned; run 'make deps' first"
    auth_setup
    read -r -a AUTH_VARS <<<"$(auth_env)"
    command_env=()
    role_env command_env command
    # A smaller young generation than V8 grows to by itself (64 MB semi-spaces here): each young
    # collection copies the story cache's new entries, and at 64 MB it paused the command service
    # for 15-22 ms, which set the p99 of its calls (docs/OPERATIONS.md, docs/BENCHMARKS.md).
    start_service command "$COMMAND_OPS_PORT" services/command/src/main.ts "${command_env[@]}" \
      COMMAND_LISTEN="$BIND_HOST:$COMMAND_PORT" COMMAND_OPS_LISTEN="$BIND_HOST:$COMMAND_OPS_PORT" \
      "${AUTH_VARS[@]}" NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--max-semi-space-size=16"
    # The snapshotter in the query process writes with its own user; the query user only reads.
    query_env=()
    role_env query_env query
    role_env query_env snapshotter SNAPSHOTTER_
    mapfile -t -O "${#query_env[@]}" query_env < <(store_env query)
    start_service query "$QUERY_OPS_PORT" services/query/src/main.ts "${query_env[@]}" \
      QUERY_LISTEN="$BIND_HOST:$QUERY_PORT" QUERY_OPS_LISTEN="$BIND_HOST:$QUERY_OPS_PORT" \
      "${AUTH_VARS[@]}"
    for p in "${PROJECTORS[@]}"; do
      read -r name projection port <<<"$p"
      projector_env=()
      role_env projector_env "projector-$projection"
      mapfile -t -O "${#projector_env[@]}" projector_env < <(store_env projector)
      # A larger young generation: projecting allocates heavily and briefly per event; with
      # V8's default semi-space the Valkey projector spent 22 % of its CPU collecting
      # (docs/BENCHMARKS.md, projection).
      start_service "$name" "$port" services/projector/src/main.ts "${projector_env[@]}" \
        PROJECTION="$projection" \
        PROJECTOR_REPLICA_ID="$name" PROJECTOR_OPS_LISTEN="$BIND_HOST:$port" \
        NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--max-semi-space-size=64"
    done
    ;;
  stop)
    for p in "${PROJECTORS[@]}"; do
      read -r name _ _ <<<"$p"
      stop_pid "$name" &
    done
    stop_pid query &
    stop_pid command
    wait
    ;;
  status)
    rc=0
    if is_running command && ready "$COMMAND_OPS_PORT"; then
      echo "command  running  grpc://$BIND_HOST:$COMMAND_PORT (ops http://$BIND_HOST:$COMMAND_OPS_PORT)"
    else
      echo "command  stopped"
      rc=1
    fi
    if is_running query && ready "$QUERY_OPS_PORT"; then
      echo "query    running  grpc://$BIND_HOST:$QUERY_PORT (ops http://$BIND_HOST:$QUERY_OPS_PORT; reflection on)"
    else
      echo "query    stopped"
      rc=1
    fi
    for p in "${PROJECTORS[@]}"; do
      read -r name _ port <<<"$p"
      if is_running "$name" && ready "$port"; then
        echo "$name  running  (ops http://$BIND_HOST:$port)"
      else
        echo "$name  stopped"
        rc=1
      fi
    done
    exit $rc
    ;;
  ctx)
    shift
    ctx_env=()
    role_env ctx_env ctx
    mapfile -t -O "${#ctx_env[@]}" ctx_env < <(store_env ctx)
    exec env STACK_DIR="$STACK_DIR" NATS_URL="$NATS_URL" VALKEY_URL="redis://$BIND_HOST:$VALKEY_PORT" \
      NEO4J_URL="bolt://$BIND_HOST:$NEO4J_BOLT_PORT" COMMAND_URL="http://$BIND_HOST:$COMMAND_PORT" \
      QUERY_URL="http://$BIND_HOST:$QUERY_PORT" "${ctx_env[@]}" "$REPO_ROOT/bin/ctx" "$@"
    ;;
  token)
    # How to call the running services: the development token and a grpcurl line that uses it.
    proto="-import-path proto -import-path .tools/proto-deps -proto context/v1/command_service.proto"
    if [[ $AUTH == off ]]; then
      echo "Call it:   grpcurl -plaintext $proto \\"
    else
      [[ -f $AUTH_DIR/dev-token ]] || die "no development token; run 'make up' first"
      token=$(cat "$AUTH_DIR/dev-token")
      echo "Development token (sub dev, roles writer reader auditor admin, 12 h; also in $AUTH_DIR/dev-token):"
      echo "authorization: Bearer $token"
      echo
      echo "Call it:   grpcurl -plaintext -H 'authorization: Bearer $token' \\"
      echo "             $proto \\"
    fi
    echo "             -d '{\"story_id\":\"s-1\",\"title\":\"My story\"}' $BIND_HOST:$COMMAND_PORT context.v1.ContextCommandService/CreateContext"
    ;;
  *) die "usage: $0 start|stop|status|token|ctx <args...>" ;;
esac
