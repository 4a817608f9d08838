#!/usr/bin/env bash
# buf breaking for proto/ against the previous commit. Stored events live forever, so a wire-breaking
# edit of their messages must fail the build: such a change needs a new schema version and an upcaster.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

against="${BUF_BREAKING_AGAINST:-HEAD~1}"
if ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null; then
  echo "[buf-breaking] no commit $against to compare with; skipped" >&2
  exit 0
fi
if [[ -z $(git ls-tree -d "$against" proto) ]]; then
  echo "[buf-breaking] $against has no proto/; skipped" >&2
  exit 0
fi
# The earlier protos import third-party ones that are not in git (.tools/proto-deps): build the
# earlier image from its proto/ and buf.yaml plus today's third-party protos.
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
git archive "$against" proto buf.yaml | tar -x -C "$old"
mkdir -p "$old/.tools" && cp -R .tools/proto-deps "$old/.tools/"
(cd "$old" && buf build -o image.binpb)
buf build -o "$old/new.binpb"
buf breaking "$old/new.binpb" --against "$old/image.binpb"
echo "[buf-breaking] proto/ is wire-compatible with $against" >&2
