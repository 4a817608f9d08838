#!/usr/bin/env bash
# The images' root filesystem from Debian packages already downloaded: unpacked, without what
# nothing reads at run time, with the package list and os-release for scanners, the CA bundle, a
# passwd/group entry for the service user and /tmp. Shared by deploy/images/build.sh and the
# Dockerfile, so both install the same.
# Usage: deploy/images/rootfs.sh <dest> <user> <uid> <gid> <package.deb...>
set -euo pipefail
(($# >= 5)) || { echo "usage: $0 <dest> <user> <uid> <gid> <package.deb...>" >&2; exit 2; }
root=$1 user=$2 uid=$3 gid=$4
shift 4
mkdir -p "$root/var/lib/dpkg/status.d"
for deb in "$@"; do
  dpkg -x "$deb" "$root"
  # What was installed, where scanners (trivy, grype) look in images without dpkg (as distroless).
  { dpkg-deb -f "$deb" && echo "Status: install ok installed"; } >"$root/var/lib/dpkg/status.d/$(dpkg-deb -f "$deb" Package)"
done
# Which distribution the packages are from, for the same scanners (base-files is not installed).
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n' \
  >"$root/etc/os-release"
# Documentation, manuals, translations and package-maintainer data: nothing at run time reads them.
rm -rf "$root"/usr/share/{doc,man,info,lintian,locale,bug}
# ca-certificates builds its bundle in a maintainer script, which dpkg -x does not run.
mkdir -p "$root/etc/ssl/certs"
find "$root/usr/share/ca-certificates" -name '*.crt' -print0 | LC_ALL=C sort -z |
  xargs -0 cat >"$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n%s:x:%s:%s:context service:/nonexistent:/usr/sbin/nologin\n' \
  "$user" "$uid" "$gid" >"$root/etc/passwd"
printf 'root:x:0:\n%s:x:%s:\n' "$user" "$gid" >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
# The only writable place is /tmp (an emptyDir under a read-only root); /app stays root's.
mkdir -p "$root/tmp" "$root/app"
chmod -R u+w,go-w "$root"
chmod 1777 "$root/tmp"
