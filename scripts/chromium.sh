#!/usr/bin/env bash
# Usage: scripts/chromium.sh
# Debian's Chromium for the browser test (examples/examples.e2e.spec.ts drives it headless with
# playwright-core): installed with apt from the system's own sources (never changed), as root,
# once, and linked as .tools/bin/chromium.
#
# CHROMIUM_DEBIAN_VERSION (versions.env) is the build the test was written against. Chromium's
# builds come through bookworm-security, which keeps only recent ones: when the pinned build is no
# longer in the archive, the archive's current one is installed, with a warning saying so, rather
# than no browser at all.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO_ROOT/versions.env"
log() { echo "[chromium] $*" >&2; }
link() {
  mkdir -p "$REPO_ROOT/.tools/bin"
  ln -sf /usr/bin/chromium "$REPO_ROOT/.tools/bin/chromium"
}
if [[ -x /usr/bin/chromium ]]; then
  link
  exit 0
fi
[[ $(id -u) == 0 ]] || { log "installing Debian's chromium needs root (apt-get install chromium)"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || log "apt-get update failed; trying with the package lists there are"
if apt-cache madison chromium | awk '{print $3}' | grep -qxF "$CHROMIUM_DEBIAN_VERSION"; then
  log "installing chromium $CHROMIUM_DEBIAN_VERSION (apt, once)"
  apt-get install -y -qq --no-install-recommends "chromium=$CHROMIUM_DEBIAN_VERSION" \
    "chromium-common=$CHROMIUM_DEBIAN_VERSION" >&2
else
  log "warning: chromium $CHROMIUM_DEBIAN_VERSION is no longer in the archive; installing its current build"
  apt-get install -y -qq --no-install-recommends chromium >&2
fi
log "$(/usr/bin/chromium --version)"
link
