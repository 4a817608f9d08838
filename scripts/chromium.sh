#!/usr/bin/env bash
# Usage: scripts/chromium.sh
# Debian's Chromium for the browser test (examples/examples.e2e.spec.ts drives it headless with
# playwright-core), pinned to CHROMIUM_DEBIAN_VERSION (versions.env): see scripts/apt-tool.sh.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO_ROOT/versions.env"
"$REPO_ROOT/scripts/apt-tool.sh" chromium "$CHROMIUM_DEBIAN_VERSION" chromium chromium-common
echo "[chromium] $(/usr/bin/chromium --version)" >&2
