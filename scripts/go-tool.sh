#!/usr/bin/env bash
# Usage: scripts/go-tool.sh protoc-gen-doc|grpcurl
# Builds a Go tool pinned in versions.env with `go install` from the Go module proxy into CACHE_DIR,
# once, and links it into .tools/bin:
# - protoc-gen-doc: `make generate` renders the API reference (docs/reference/proto.md) with it;
# - grpcurl: `make test` calls the services with it, as users do (libs/rpc/src/clients.int.spec.ts).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO_ROOT/versions.env"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/context-service}"
name=${1:?usage: $0 protoc-gen-doc|grpcurl}
case $name in
  protoc-gen-doc) module=github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc version=$PROTOC_GEN_DOC_VERSION ;;
  grpcurl) module=github.com/fullstorydev/grpcurl/cmd/grpcurl version=$GRPCURL_VERSION ;;
  *) echo "[go-tool] unknown tool $name" >&2; exit 2 ;;
esac
dest="$CACHE_DIR/go-tools/$name-$version"
if [[ ! -x $dest/$name ]]; then
  command -v go >/dev/null || { echo "[go-tool] Go is needed to build $name" >&2; exit 1; }
  echo "[go-tool] building $name $version (go install)" >&2
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  GOBIN="$dest.tmp" GOFLAGS=-mod=mod go install "$module@$version"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
mkdir -p "$REPO_ROOT/.tools/bin"
ln -sf "$dest/$name" "$REPO_ROOT/.tools/bin/$name"
