#!/usr/bin/env bash
# Puts the third-party .proto files we build against into .tools/proto-deps for buf:
# - buf/validate/validate.proto (protovalidate's rule annotations), from build.buf:protovalidate;
# - grpc/health/v1 and grpc/reflection/v1 (standard gRPC services), from io.grpc:grpc-services.
# Both Java artefacts on Maven Central ship their .proto files; the Buf Schema Registry is not
# reachable from every build machine. Versions are pinned in versions.env, jars cached in CACHE_DIR.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO_ROOT/versions.env"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/context-service}"
DEST="$REPO_ROOT/.tools/proto-deps"

# extract <group:artifact:version> <path-in-jar>...
extract() {
  local coords=$1
  shift
  IFS=: read -r group artifact version <<<"$coords"
  local jar="$CACHE_DIR/maven/$artifact-$version.jar"
  if [[ ! -s $jar ]]; then
    command -v mvn >/dev/null || { echo "[proto-deps] mvn is needed to fetch $coords" >&2; exit 1; }
    echo "[proto-deps] fetching $coords from Maven Central" >&2
    mvn -q -B dependency:copy -Dartifact="$coords" -DoutputDirectory="$(dirname "$jar")" >&2
  fi
  local path
  for path in "$@"; do
    if [[ ! -s $DEST/$path || $jar -nt $DEST/$path ]]; then
      mkdir -p "$(dirname "$DEST/$path")"
      unzip -p "$jar" "$path" >"$DEST/$path.tmp"
      mv "$DEST/$path.tmp" "$DEST/$path"
    fi
  done
}

extract "build.buf:protovalidate:$PROTOVALIDATE_PROTO_VERSION" buf/validate/validate.proto
extract "io.grpc:grpc-services:$GRPC_JAVA_VERSION" grpc/health/v1/health.proto \
  grpc/reflection/v1/reflection.proto
