#!/usr/bin/env bash
# A private certificate authority for the local stack and the tests: TLS on every hop without a
# public CA. Keys never leave the folder they are made in (an ignored stack folder).
#
#   deploy/local/pki.sh ca <dir>                     ca.pem, ca-key.pem (once; kept if present)
#   deploy/local/pki.sh server <dir> <name> [<dns,...>]
#                                                    <name>.pem, <name>-key.pem for 127.0.0.1, ::1, localhost
#                                                    and the DNS names given (e.g. a Kubernetes service's)
#   deploy/local/pki.sh client <dir> <name> [<cn>] [<ou,...>]
#                                                    <name>.pem, <name>-key.pem with CN <cn> (default <name>)
#                                                    and one OU per role (the gRPC services read roles from OU)
#
# Certificates are ECDSA P-256, valid 30 days (the stack regenerates what has expired), signed by
# the CA of <dir>. Keys are written 0600.
LOG_TAG=pki
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DAYS=30

ca() {
  local dir=$1
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [[ -f $dir/ca.pem && -f $dir/ca-key.pem ]] && openssl x509 -checkend 86400 -noout -in "$dir/ca.pem" >/dev/null; then
    return 0
  fi
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca-key.pem")
  openssl req -x509 -new -key "$dir/ca-key.pem" -sha256 -days "$DAYS" -subj "/CN=context-service local CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem" 2>/dev/null
}

# leaf <dir> <name> <subject> <extensions...>: a key and a certificate signed by the CA of <dir>.
leaf() {
  local dir=$1 name=$2 subject=$3
  shift 3
  ca "$dir"
  local ext
  ext=$(mktemp)
  printf '%s\n' "$@" >"$ext"
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name-key.pem")
  openssl req -new -key "$dir/$name-key.pem" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days "$DAYS" -sha256 -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$ext" "$dir/ca.srl"
}

server() {
  local sans="IP:127.0.0.1,IP:::1,DNS:localhost" dns
  if [[ -n ${3:-} ]]; then
    IFS=, read -r -a names <<<"$3"
    for dns in "${names[@]}"; do sans+=",DNS:$dns"; done
  fi
  leaf "$1" "$2" "/CN=$2" \
    "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$sans"
}

client() {
  local subject="/CN=${3:-$2}" ou
  if [[ -n ${4:-} ]]; then
    IFS=, read -r -a ous <<<"$4"
    for ou in "${ous[@]}"; do subject+="/OU=$ou"; done
  fi
  leaf "$1" "$2" "$subject" \
    "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
}

command -v openssl >/dev/null || die "openssl is needed to make the local certificates"
case "${1:-}" in
  ca) [[ $# -eq 2 ]] || die "usage: $0 ca <dir>"; ca "$2" ;;
  server) [[ $# -eq 3 || $# -eq 4 ]] || die "usage: $0 server <dir> <name> [<dns,...>]"; server "$2" "$3" "${4:-}" ;;
  client) [[ $# -ge 3 ]] || die "usage: $0 client <dir> <name> [<cn>] [<ou,...>]"; client "$2" "$3" "${4:-}" "${5:-}" ;;
  *) die "usage: $0 ca|server|client <dir> ..." ;;
esac
