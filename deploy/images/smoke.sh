#!/usr/bin/env bash
# The images in real containers (make test-images): each image starts read-only and resolves
# every module (a configuration error, not a missing module, is the expected stop); then
# the command service's image runs against a NATS of deploy/local (on free ports, its own stack
# folder, the command user's seed mounted read-only), /readyz answers 200 and one CreateContext
# through the container is stored in the stream.
# Usage: deploy/images/smoke.sh   (after deploy/images/build.sh; root: podman runs rootful here)
# Env: IMAGES_DIR (<repo>/.build/images), PODMAN_STATE, CACHE_DIR.
LOG_TAG=smoke
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

IMAGES_DIR="${IMAGES_DIR:-$REPO_ROOT/.build/images}"
PODMAN="$REPO_ROOT/deploy/images/podman.sh"
NODE="$REPO_ROOT/.tools/bin/node"
[[ -f $IMAGES_DIR/images.json ]] || die "no images in $IMAGES_DIR; run 'make images' first"
export STACK_DIR="$REPO_ROOT/.stack/images-smoke"
LINKS="/tmp/ctx-smoke-$$"
CONTAINER="ctx-smoke-command-$$"

free_port() { "$NODE" -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'; }

cleanup() {
  "$PODMAN" rm -f --time 10 "$CONTAINER" >/dev/null 2>&1 || true
  "$REPO_ROOT/deploy/local/nats.sh" stop >/dev/null 2>&1 || true
  rm -rf "$LINKS" "$STACK_DIR"
}
trap cleanup EXIT

# Every image, without configuration, read-only and with nothing writable at all: the process
# must get as far as reading its configuration (all static imports resolved) and stop on it.
# In parallel: podman notices a container's exit only after conmon's 20 s timeout here.
check_starts() {
  local name out pids=()
  for name in command query projector cli; do
    "$PODMAN" run --rm --read-only --network none --cap-drop ALL --security-opt no-new-privileges \
      "localhost/ctx-$name:smoke" >"$LINKS/$name.out" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  for name in command query projector cli; do
    out=$(cat "$LINKS/$name.out")
    if grep -q 'ERR_MODULE_NOT_FOUND\|Cannot find module\|ERR_UNSUPPORTED' <<<"$out"; then
      die "ctx-$name does not load its modules: $out"
    fi
    # The services stop on their configuration; ctx (command --help) prints its usage.
    grep -q 'invalid configuration\|^Usage: ctx' <<<"$out" || die "ctx-$name did not start: $out"
    log "ctx-$name starts read-only and loads: $(grep -m1 -oE '"msg":"[^"]{0,100}|^Usage: .*' <<<"$out")"
  done
}

main() {
  local owner
  owner=$("$NODE" -p 'const { uid, gid } = require(process.argv[1]).user; `${uid}:${gid}`' "$REPO_ROOT/deploy/images/images.json")
  "$PODMAN" info >/dev/null || die "podman does not work here"
  "$PODMAN" rm -af >/dev/null 2>&1 || true
  mkdir -p "$LINKS"
  "$PODMAN" load-images "$IMAGES_DIR" smoke
  check_starts

  # A NATS of the local stack on free ports, with its users; the streams provisioned by ctx.
  rm -rf "$STACK_DIR"
  NATS_PORT=$(free_port) NATS_MONITOR_PORT=$(free_port)
  export NATS_PORT NATS_MONITOR_PORT
  "$REPO_ROOT/deploy/local/nats.sh" start
  "$REPO_ROOT/deploy/local/services.sh" ctx provision >/dev/null

  # What the container may read, owned by its uid: the command user's seed and the JWKS.
  local secrets="$STACK_DIR/container-secrets" auth="$STACK_DIR/secrets/auth" seed line
  mkdir -p "$secrets" "$auth"
  "$REPO_ROOT/bin/ctx" token keygen --dir "$auth" >/dev/null
  local token
  token=$("$REPO_ROOT/bin/ctx" token mint --key "$auth/signing-key.pem" --issuer ctx-smoke \
    --audience context-service --subject smoke --roles writer --ttl 10m)
  local env=()
  while IFS= read -r line; do
    [[ -z $line ]] && continue
    case $line in
      NATS_NKEY_SEED_FILE=*) seed=${line#*=} ;;
      *) env+=(-e "$line") ;;
    esac
  done <"$STACK_DIR/secrets/nats/command.env"
  [[ -n ${seed:-} ]] || die "no NATS seed for the command user in $STACK_DIR/secrets/nats/command.env"
  cp "$seed" "$secrets/command.nk" && cp "$auth/jwks.json" "$secrets/jwks.json"
  chown -R "$owner" "$secrets" && chmod 0400 "$secrets/command.nk"

  local port ops
  port=$(free_port) ops=$(free_port)
  "$PODMAN" run -d --name "$CONTAINER" --read-only --network host --cap-drop ALL \
    --security-opt no-new-privileges \
    -v "$secrets:/run/secrets/ctx:ro" \
    -e NATS_URL="nats://127.0.0.1:$NATS_PORT" -e NATS_NKEY_SEED_FILE=/run/secrets/ctx/command.nk "${env[@]}" \
    -e COMMAND_LISTEN="127.0.0.1:$port" -e COMMAND_OPS_LISTEN="127.0.0.1:$ops" \
    -e AUTH=jwt -e AUTH_JWKS_FILE=/run/secrets/ctx/jwks.json -e AUTH_ISSUER=ctx-smoke \
    -e AUTH_AUDIENCE=context-service \
    localhost/ctx-command:smoke >/dev/null
  if ! wait_for "the command container's /readyz" 60 curl -fsS "http://127.0.0.1:$ops/readyz"; then
    "$PODMAN" logs "$CONTAINER" | tail -n 30 >&2
    die "the command service in its container did not get ready"
  fi
  local uid
  uid=$("$PODMAN" exec "$CONTAINER" /usr/local/bin/node -e 'process.stdout.write(`${process.getuid()}:${process.getgid()}`)')
  [[ $uid == "$owner" ]] || die "the command service runs as $uid, not $owner"
  log "ctx-command (read-only, uid:gid $uid, all capabilities dropped) is ready: /readyz 200"

  # One CreateContext over Connect (JSON over cleartext HTTP/2), then the event read back from the stream.
  local story="smoke-$$" answer
  answer=$(curl -fsS --http2-prior-knowledge "http://127.0.0.1:$port/context.v1.ContextCommandService/CreateContext" \
    -H 'content-type: application/json' -H "authorization: Bearer $token" \
    -d "{\"storyId\":\"$story\",\"title\":\"Smoke test\"}") ||
    { "$PODMAN" logs "$CONTAINER" | tail -n 30 >&2; die "CreateContext through the container failed"; }
  log "CreateContext answered: $answer"
  "$REPO_ROOT/deploy/local/services.sh" ctx events list --story "$story" | grep -q . ||
    die "the event of $story is not in the stream"
  log "the event of $story is in the stream: the image works"
}

main "$@"
