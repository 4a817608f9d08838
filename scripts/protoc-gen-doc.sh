#!/usr/bin/env bash
# Builds protoc-gen-doc (PROTOC_GEN_DOC_VERSION in versions.env) with `go install` from the Go module
# proxy into CACHE_DIR, once, and links it into .tools/bin for `make generate` (buf.gen.docs.yaml),
# which renders the API reference (docs/reference/proto.md) from proto/ and its comments.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO_ROOT/versions.env"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/context-service}"
dest="$CACHE_DIR/go-tools/protoc-gen-doc-$PROTOC_GEN_DOC_VERSION"
if [[ ! -x $dest/protoc-gen-doc ]]; then
  command -v go >/dev/null || { echo "[protoc-gen-doc] Go is needed to build protoc-gen-doc" >&2; exit 1; }
  echo "[protoc-gen-doc] building protoc-gen-doc $PROTOC_GEN_DOC_VERSION (go install)" >&2
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  GOBIN="$dest.tmp" GOFLAGS=-mod=mod go install \
    "github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc@$PROTOC_GEN_DOC_VERSION"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
fi
mkdir -p "$REPO_ROOT/.tools/bin"
ln -sf "$dest/protoc-gen-doc" "$REPO_ROOT/.tools/bin/protoc-gen-doc"
