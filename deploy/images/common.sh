# shellcheck shell=bash
# Shared helpers for the deploy/images scripts. Source it; do not run it.
# Builds on deploy/local/common.sh (REPO_ROOT, versions.env, CACHE_DIR, log, die).
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

IMAGES_CACHE="$CACHE_DIR/images"
CRANE="$IMAGES_CACHE/crane-$CRANE_VERSION/bin/crane"

# crane from the Go module proxy, built once into the cache.
install_crane() {
  [[ -x $CRANE ]] && return 0
  command -v go >/dev/null || die "Go is needed to build crane $CRANE_VERSION"
  log "building crane $CRANE_VERSION (once, cached in $IMAGES_CACHE)"
  GOBIN="$(dirname "$CRANE")" go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
}

# debian_debs <name> <package=version...>: prints a folder holding exactly those .deb files,
# downloaded once (cached under the name and the list's hash) with a private apt configuration:
# the system's apt sources and cache are never touched.
debian_debs() {
  local name=$1
  shift
  local key dir
  key=$(printf '%s\n' "$@" | sha256sum | cut -c1-16)
  dir="$IMAGES_CACHE/debs/$name-$key"
  if [[ ! -f $dir/.complete ]]; then
    command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian packages"
    local apt="$IMAGES_CACHE/apt" mirror
    mirror=$(debian_mirror)
    log "fetching $* from $mirror bookworm (once, cached in $dir)"
    rm -rf "$apt" "$dir" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir.tmp"
    cat >"$apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
SRC
    local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
      -o "Dir::State::lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Get::List-Cleanup=0
      -o APT::Sandbox::User="$(id -un)" -q)
    apt-get "${opts[@]}" update >/dev/null
    (cd "$dir.tmp" && apt-get "${opts[@]}" download "$@" >/dev/null) ||
      die "Debian has not (or no longer) the pinned packages $*; update versions.env"
    rm -rf "$apt"
    touch "$dir.tmp/.complete"
    mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# debian_unpack <name> <home> <package=version...>: the packages fetched (debian_debs) and
# unpacked into <home>/root, once: <home> appears whole or not at all. No maintainer script runs.
debian_unpack() {
  local name=$1 home=$2 debs deb
  shift 2
  debs=$(debian_debs "$name" "$@")
  rm -rf "$home.tmp" && mkdir -p "$home.tmp/root"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$home.tmp/root"; done
  rm -rf "$home" && mv "$home.tmp" "$home"
}

# repro_tar <folder> <out.tar>: a tar of the folder's contents that depends on nothing but them:
# sorted names, mtime 0, owner root (numeric), no hard links, GNU format (no atime/ctime).
repro_tar() {
  local entries
  mapfile -t entries < <(cd "$1" && LC_ALL=C ls -A)
  tar --create --file "$2" --directory "$1" --sort=name --mtime=@0 --owner=0 --group=0 \
    --numeric-owner --hard-dereference --format=gnu "${entries[@]}"
}
