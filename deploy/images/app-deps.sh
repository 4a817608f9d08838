#!/usr/bin/env bash
# The production dependencies of the four services, installed into a copy of the workspace (its
# package.json files, the lockfile and the libs' and services' sources, without tests), and what
# the image does not need removed. Shared by deploy/images/build.sh and the Dockerfile.
# Usage: deploy/images/app-deps.sh <app-dir>
# Env: NODE, PNPM (default: node and pnpm on PATH).
set -euo pipefail
(($# == 1)) || { echo "usage: $0 <app-dir>" >&2; exit 2; }
app=$1 here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE="${NODE:-node}" PNPM="${PNPM:-pnpm}"
# Production manifests (no dev or test-only peer dependencies): the lockfile stays the source of
# every version, but pnpm must re-check it against the trimmed manifests (no --frozen-lockfile).
"$NODE" "$here/image-spec.ts" production-manifests "$app/package.json" "$app"/libs/*/package.json \
  "$app"/services/*/package.json
# Copies, not links, so nothing in the build touches pnpm's store.
(cd "$app" && "$PNPM" install --prod --no-frozen-lockfile --prefer-offline --reporter=silent \
  --config.package-import-method=copy --config.node-linker=isolated)
# pnpm's own bookkeeping (with install times) and the .bin shims (with the build machine's paths)
# are not needed to run.
rm -rf "$app/node_modules/.modules.yaml" "$app/node_modules/.pnpm/lock.yaml" \
  "$app"/node_modules/.pnpm-workspace-state*.json
find "$app" -type d -name .bin -path '*/node_modules/*' -prune -exec rm -rf {} +
# Source maps of the dependencies' bundles: Node reads none without --enable-source-maps, which the
# images do not pass (about a third of the PDF and chart libraries' size).
find "$app/node_modules" -type f -name '*.map' -delete
chmod -R u+w,go-w,a+rX "$app"
