#!/usr/bin/env bash
# The manifests' pods in real containers (make test-pods, root): the command, query and both
# projector pods of the dev overlay, generated from its pod templates by deploy/k8s/pods-plan.ts
# (same images, environment, security contexts, resources and mounts; what differs is printed),
# run by podman (`kube play`, runc) against NATS, Valkey and Neo4j of deploy/local on free ports.
# Checks: every pod gets ready, runs as the image's uid with a read-only root and /tmp writable,
# and the demo story (ctx demo, through the command pod) reaches both read models and reads back
# through the query pod.
# Usage: deploy/k8s/pods.sh   (after make images)
# Env: IMAGES_DIR (<repo>/.build/images), KUBECTL (kubectl), PODMAN_STATE, CACHE_DIR.
LOG_TAG=k8s-pods
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

IMAGES_DIR="${IMAGES_DIR:-$REPO_ROOT/.build/images}"
KUBECTL="${KUBECTL:-kubectl}"
PODMAN="$REPO_ROOT/deploy/images/podman.sh"
NODE="$REPO_ROOT/.tools/bin/node"
TAG=pods
export STACK_DIR="$REPO_ROOT/.stack/k8s-pods"
OUT="$STACK_DIR/pods"

[[ $(id -u) == 0 ]] || die "the pods run under rootful podman: run it as root"
[[ -f $IMAGES_DIR/images.json ]] || die "no images in $IMAGES_DIR; run 'make images' first"
command -v "$KUBECTL" >/dev/null || die "kubectl is needed to render the overlay (or set KUBECTL)"

# json <text> <expression>: a field of a JSON text (e.g. json "$summary" '.auth.issuer').
json() { "$NODE" -p "const v = JSON.parse(process.argv[1])$2; typeof v === 'string' ? v : JSON.stringify(v)" "$1"; }
free_port() { "$NODE" -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }

cleanup() {
  if [[ -f $OUT/pods.yaml ]]; then
    "$PODMAN" kube down "$OUT/pods.yaml" >/dev/null 2>&1 || true
  fi
  "$REPO_ROOT/deploy/local/stack.sh" down >/dev/null 2>&1 || true
  rm -rf "$STACK_DIR"
}
trap cleanup EXIT

# show_logs: each container's last lines, when something failed.
show_logs() {
  local c
  for c in $("$PODMAN" ps -a --format '{{.Names}}' | grep -v -- '-infra$'); do
    echo "--- $c" >&2
    "$PODMAN" logs "$c" 2>&1 | tail -n 20 >&2
  done
}

main() {
  "$PODMAN" info >/dev/null || die "podman does not work here"
  rm -rf "$STACK_DIR" && mkdir -p "$OUT"
  "$PODMAN" load-images "$IMAGES_DIR" "$TAG"

  # The stores, as make up runs them (authentication on), on free ports.
  NATS_PORT=$(free_port) NATS_MONITOR_PORT=$(free_port) VALKEY_PORT=$(free_port) NEO4J_BOLT_PORT=$(free_port)
  export NATS_PORT NATS_MONITOR_PORT VALKEY_PORT NEO4J_BOLT_PORT
  "$REPO_ROOT/deploy/local/stack.sh" up
  "$REPO_ROOT/deploy/local/services.sh" ctx provision >/dev/null

  # The pods' ports: on the host network each needs its own.
  COMMAND_PORT=$(free_port) COMMAND_OPS_PORT=$(free_port) QUERY_PORT=$(free_port) QUERY_OPS_PORT=$(free_port)
  PROJECTOR_NEO4J_OPS_PORT=$(free_port) PROJECTOR_VALKEY_OPS_PORT=$(free_port)
  export COMMAND_PORT COMMAND_OPS_PORT QUERY_PORT QUERY_OPS_PORT PROJECTOR_NEO4J_OPS_PORT PROJECTOR_VALKEY_OPS_PORT

  # The signing key whose JWKS the pods' auth-jwks Secret stands for.
  "$REPO_ROOT/bin/ctx" token keygen --dir "$STACK_DIR/secrets/auth" >/dev/null

  "$KUBECTL" kustomize "$REPO_ROOT/k8s/overlays/dev" >"$OUT/dev.yaml"
  local summary
  summary=$(IMAGE_TAG=$TAG NATS_URL="nats://127.0.0.1:$NATS_PORT" VALKEY_URL="redis://127.0.0.1:$VALKEY_PORT" \
    NEO4J_URL="bolt://127.0.0.1:$NEO4J_BOLT_PORT" "$NODE" "$REPO_ROOT/deploy/k8s/pods-plan.ts" "$OUT/dev.yaml" "$OUT")
  log "pods from k8s/overlays/dev: $(json "$summary" '.pods.join(", ")')"
  log "overridden (addresses only): $(json "$summary" .overridden)"

  # Pods of an earlier run that was killed before its cleanup have the same names.
  "$PODMAN" kube down "$OUT/pods.yaml" >/dev/null 2>&1 || true
  "$PODMAN" kube play --signature-policy "${PODMAN_STATE:-$REPO_ROOT/.stack/podman}/policy.json" "$OUT/pods.yaml" >/dev/null || { show_logs; die "podman kube play failed"; }
  local name port
  for name in command:$COMMAND_OPS_PORT query:$QUERY_OPS_PORT projector-neo4j-0:$PROJECTOR_NEO4J_OPS_PORT \
    projector-valkey-0:$PROJECTOR_VALKEY_OPS_PORT; do
    port=${name#*:} name=${name%%:*}
    if ! wait_for "pod $name /readyz" 90 curl -fsS "http://127.0.0.1:$port/readyz"; then
      show_logs
      die "pod $name did not get ready"
    fi
  done
  log "every pod is ready"

  # What the manifests ask of each container holds: the image's uid, a read-only root, /tmp writable.
  local owner container check
  owner=$("$NODE" -p 'const { uid, gid } = require(process.argv[1]).user; `${uid}:${gid}`' "$REPO_ROOT/deploy/images/images.json")
  for container in command-command query-query projector-neo4j-0-projector projector-valkey-0-projector; do
    check=$("$PODMAN" exec "$container" /usr/local/bin/node -e '
      const fs = require("node:fs");
      let root = "writable";
      try { fs.writeFileSync("/probe", "x"); } catch (e) { root = e.code; }
      fs.writeFileSync("/tmp/probe", "x");
      process.stdout.write(`${process.getuid()}:${process.getgid()} ${root}`);') ||
      die "cannot look into $container"
    [[ $check == "$owner EROFS" ]] || die "$container runs as uid:gid and root '$check', not '$owner EROFS'"
  done
  log "every container runs as $owner, read-only root, /tmp writable"

  # The demo through the pods, with a token of the issuer the manifests configure.
  local issuer audience
  issuer=$(json "$summary" .auth.issuer) audience=$(json "$summary" .auth.audience)
  CTX_TOKEN=$("$REPO_ROOT/bin/ctx" token mint --key "$STACK_DIR/secrets/auth/signing-key.pem" \
    --issuer "$issuer" --audience "$audience" --subject pods-test --roles "writer reader admin" --ttl 10m)
  export CTX_TOKEN
  if ! "$REPO_ROOT/deploy/local/services.sh" ctx demo --command-url "http://127.0.0.1:$COMMAND_PORT" \
    --query-url "http://127.0.0.1:$QUERY_PORT" --story pods-demo >"$OUT/demo.txt" 2>&1; then
    cat "$OUT/demo.txt" >&2
    show_logs
    die "the demo story did not go through the pods"
  fi
  grep -q "neo4j read model holds the story" "$OUT/demo.txt" || die "the Neo4j read model did not get the demo story"
  grep -q "valkey read model holds the story" "$OUT/demo.txt" || die "the Valkey read model did not get the demo story"
  sed 's/^/  /' "$OUT/demo.txt"
  log "the demo story went through the command pod, reached both read models and read back through the query pod"
}

main "$@"
