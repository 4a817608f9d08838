#!/usr/bin/env bash
# Usage: scripts/apt-tool.sh <binary> <version> <package> [<package> ...]
# A tool of Debian's that a test needs (Chromium, pdftotext): installed with apt from the system's
# own sources (never changed), as root, once, and linked as .tools/bin/<binary>. Each package is
# pinned to <version> (versions.env); a build that has left the archive (security updates replace
# builds) gives way to the archive's current one, with a warning saying so, rather than no tool.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary=$1 version=$2
shift 2
log() { echo "[apt-tool $binary] $*" >&2; }
link() {
  mkdir -p "$REPO_ROOT/.tools/bin"
  ln -sf "/usr/bin/$binary" "$REPO_ROOT/.tools/bin/$binary"
}
if [[ -x /usr/bin/$binary ]]; then
  link
  exit 0
fi
[[ $(id -u) == 0 ]] || { log "installing it needs root (apt-get install $*)"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || log "apt-get update failed; trying with the package lists there are"
if apt-cache madison "$1" | awk '{print $3}' | grep -qxF "$version"; then
  log "installing $* $version (apt, once)"
  apt-get install -y -qq --no-install-recommends "${@/%/=$version}" >&2
else
  log "warning: $1 $version is no longer in the archive; installing its current build"
  apt-get install -y -qq --no-install-recommends "$@" >&2
fi
link
