#!/usr/bin/env bash
# Debian's podman with runc, unpacked into CACHE_DIR (never installed system-wide), with the
# project's own configuration: containers.conf (runc, cgroupfs, this shell's open-file limit), storage and
# run state under PODMAN_STATE, a signature policy and an empty registries.conf. Needs root (no
# user namespaces are set up) and no network of its own: containers run with --network host.
# Usage: deploy/images/podman.sh install | load-images <images-dir> <tag> | <podman arguments...>
#   load-images: every image of <images-dir>/images.json (make images) as localhost/ctx-<name>:<tag>,
#   and the pause image of the pods `podman kube play` runs.
# Env: PODMAN_STATE (<repo>/.stack/podman), PODMAN_STORAGE_DRIVER (overlay; vfs where the kernel
#      has no overlayfs: slower, it copies every layer), CACHE_DIR, DEBIAN_MIRROR.
LOG_TAG=podman
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PODMAN_STATE="${PODMAN_STATE:-$REPO_ROOT/.stack/podman}"
PODMAN_STORAGE_DRIVER="${PODMAN_STORAGE_DRIVER:-overlay}"
PODMAN_HOME="$IMAGES_CACHE/podman-$(printf '%s\n' $PODMAN_DEBIAN_PACKAGES | sha256sum | cut -c1-16)"
ROOT="$PODMAN_HOME/root"

install() {
  [[ -x $ROOT/usr/bin/podman ]] && return 0
  # shellcheck disable=SC2086 # a list of package=version words
  debian_unpack podman "$PODMAN_HOME" $PODMAN_DEBIAN_PACKAGES
}

# The configuration, written on every call (cheap; paths follow PODMAN_STATE and the cache).
configure() {
  # Podman's defaults for root (1048576 open files, 4194304 processes) are refused where this
  # process's hard limits are lower: give the containers exactly the limits we have.
  local nofile nproc
  nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
  [[ $nofile == unlimited ]] && nofile=1048576
  # runc was refused nproc at this machine's hard limit (96367) but not at 32768: take the lower.
  [[ $nproc == unlimited ]] || ((nproc > 32768)) && nproc=32768
  mkdir -p "$PODMAN_STATE"/{storage,run,tmp,libpod,volumes,networks}
  cat >"$PODMAN_STATE/containers.conf.$$" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
seccomp_profile = "$ROOT/usr/share/containers/seccomp.json"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_STATE/events.log"
runtime = "runc"
infra_image = "$PAUSE_IMAGE"
conmon_path = ["$ROOT/usr/bin/conmon"]
static_dir = "$PODMAN_STATE/libpod"
tmp_dir = "$PODMAN_STATE/tmp"
volume_path = "$PODMAN_STATE/volumes"

[engine.runtimes]
runc = ["$ROOT/usr/bin/runc"]

[network]
network_config_dir = "$PODMAN_STATE/networks"
CONF
  cat >"$PODMAN_STATE/storage.conf.$$" <<CONF
[storage]
driver = "$PODMAN_STORAGE_DRIVER"
graphroot = "$PODMAN_STATE/storage"
runroot = "$PODMAN_STATE/run"
CONF
  printf '{ "default": [{ "type": "reject" }], "transports": { "oci": { "": [{ "type": "insecureAcceptAnything" }] }, "oci-archive": { "": [{ "type": "insecureAcceptAnything" }] } } }\n' \
    >"$PODMAN_STATE/policy.json.$$"
  : >"$PODMAN_STATE/registries.conf.$$"
  # Renamed into place: podman calls running at the same time never read a half-written file.
  local f
  for f in containers.conf storage.conf policy.json registries.conf; do
    mv -f "$PODMAN_STATE/$f.$$" "$PODMAN_STATE/$f"
  done
}

# The pods' pause process (podman kube play): Debian's static catatonit alone in an image of our
# own. Podman would build the same itself, but its build reads /etc/containers/policy.json, which
# this machine does not have and the project does not write.
PAUSE_IMAGE="localhost/ctx-pause:catatonit"
pause_image() {
  "$0" image exists "$PAUSE_IMAGE" && return 0
  local ctx
  ctx=$(mktemp -d)
  cp "$ROOT/usr/bin/catatonit" "$ctx/catatonit"
  printf 'FROM scratch\nCOPY catatonit /catatonit\nENTRYPOINT ["/catatonit", "-P"]\n' >"$ctx/Containerfile"
  "$0" build -q --signature-policy "$PODMAN_STATE/policy.json" -t "$PAUSE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# load_images <images-dir> <tag>: each OCI layout in, tagged localhost/ctx-<name>:<tag>.
load_images() {
  local dir=$1 tag=$2 links name id
  [[ -f $dir/images.json ]] || die "no images in $dir; run 'make images' first"
  # A layout's image name comes from its folder's path (oci: transport), which must be a valid
  # reference: a lower-case link folder per call.
  links="/tmp/ctx-images-$$" && rm -rf "$links" && mkdir -p "$links"
  for name in $("$REPO_ROOT/.tools/bin/node" -p 'require(process.argv[1]).images.map((i) => i.name).join(" ")' "$dir/images.json"); do
    ln -s "$(cd "$dir" && pwd)/$name" "$links/ctx-$name"
    id=$("$0" pull -q --signature-policy "$PODMAN_STATE/policy.json" "oci:$links/ctx-$name")
    "$0" tag "$id" "localhost/ctx-$name:$tag"
  done
  rm -rf "$links"
  pause_image
}

case "${1:-}" in
  install) install ;;
  load-images)
    [[ -n ${2:-} && -n ${3:-} ]] || die "usage: $0 load-images <images-dir> <tag>"
    load_images "$2" "$3"
    ;;
  "") die "usage: $0 install | load-images <images-dir> <tag> | <podman arguments...>" ;;
  *)
    [[ $(id -u) == 0 ]] || die "the podman smoke run needs root (no user namespace is configured)"
    install
    configure
    export CONTAINERS_CONF="$PODMAN_STATE/containers.conf" CONTAINERS_STORAGE_CONF="$PODMAN_STATE/storage.conf" \
      CONTAINERS_REGISTRIES_CONF="$PODMAN_STATE/registries.conf" \
      LD_LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu" PATH="$ROOT/usr/bin:$PATH"
    exec "$ROOT/usr/bin/podman" --root "$PODMAN_STATE/storage" --runroot "$PODMAN_STATE/run" "$@"
    ;;
esac
