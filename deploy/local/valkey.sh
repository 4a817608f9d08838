#!/usr/bin/env bash
# Valkey from Debian bookworm-backports, unpacked into CACHE_DIR with a private apt configuration:
# the system's apt sources are never touched.
# Usage: deploy/local/valkey.sh install|start|stop|status|acl-reload|acl|cli
# Env: VALKEY_PORT (6379), STACK_DIR, CACHE_DIR, DEBIAN_MIRROR (default: the mirror apt already uses),
#      VALKEY_KEY_PATTERN (the read model's keys: READ_MODEL_NAMESPACE:*, default ctx:*),
#      VALKEY_TLS (0; 1: VALKEY_PORT speaks TLS only, certificate from the stack's CA in $STACK_DIR/pki).
#
# Access is by ACL users only (the default user is off): on first start a password per user is
# generated into $STACK_DIR/secrets/valkey/<user> (0600), and users.acl beside them holds only their
# SHA-256. Users: admin (everything; tests and emergencies), projector and ctx (read and write the
# read model's keys with the commands and scripts the projection runs), query (read only: the
# read-only script commands and the reads they run, on read-only key patterns).
LOG_TAG=valkey
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VALKEY_PORT="${VALKEY_PORT:-6379}"
VALKEY_KEY_PATTERN="${VALKEY_KEY_PATTERN:-${READ_MODEL_NAMESPACE:-ctx}:*}"
[[ $VALKEY_KEY_PATTERN =~ ^[^[:space:]]+$ ]] || die "VALKEY_KEY_PATTERN must be one glob without spaces, not '$VALKEY_KEY_PATTERN'"
VALKEY_TLS="${VALKEY_TLS:-0}"
[[ $VALKEY_TLS == 0 || $VALKEY_TLS == 1 ]] || die "VALKEY_TLS must be 0 or 1, not '$VALKEY_TLS'"
SECRETS_DIR="$STACK_DIR/secrets/valkey"
PKI_DIR="$STACK_DIR/pki"
USERS=(admin projector ctx query)
VALKEY_HOME="$CACHE_DIR/valkey-$VALKEY_DEB_VERSION"
VALKEY_BIN="$VALKEY_HOME/root/usr/bin/valkey-server"
VALKEY_CLI="$VALKEY_HOME/root/usr/bin/valkey-cli"

run() { LD_LIBRARY_PATH="$VALKEY_HOME/root/usr/lib/x86_64-linux-gnu" "$@"; }

install() {
  [[ -x $VALKEY_BIN ]] && run "$VALKEY_BIN" --version | grep -q "v=$VALKEY_DEB_VERSION" && return 0
  command -v apt-get >/dev/null || die "apt-get is needed to fetch Valkey from Debian"
  local apt="$VALKEY_HOME/apt" mirror
  mirror=$(debian_mirror)
  log "fetching valkey $VALKEY_DEB_VERSION from $mirror bookworm-backports (once, cached in $CACHE_DIR)"
  rm -rf "$VALKEY_HOME" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  cat >"$apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-backports main
SRC
  local opts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User="$(id -un)" -q)
  apt-get "${opts[@]}" update >/dev/null
  local ver
  ver=$(apt-cache "${opts[@]}" madison valkey-server | awk -v v="$VALKEY_DEB_VERSION" '$3 ~ "^"v {print $3; exit}')
  [[ -n $ver ]] || die "bookworm-backports has no valkey-server $VALKEY_DEB_VERSION"
  (cd "$apt/debs" && apt-get "${opts[@]}" download "valkey-server=$ver" "valkey-tools=$ver" liblzf1 libjemalloc2 >/dev/null)
  for deb in "$apt/debs"/*.deb; do dpkg -x "$deb" "$VALKEY_HOME/root"; done
  rm -rf "$apt"
  run "$VALKEY_BIN" --version >/dev/null
}

# The commands each user may run. Every command a script runs is checked against its caller's
# rules too, so query's scripts cannot write: they run as EVAL_RO/EVALSHA_RO (which refuse writes),
# on keys it may only read (%R~), and it has no write command. (%R~ alone refuses EVAL/EVALSHA:
# their keys count as written.) SCAN lists key names outside the pattern; it reads no values.
rules() {
  local connect="+ping +hello +info +client|setname +client|setinfo"
  case $1 in
    admin) echo "~* &* +@all" ;;
    projector | ctx)
      echo "resetkeys ~$VALKEY_KEY_PATTERN resetchannels -@all $connect" \
        "+get +hget +hmget +smembers +scan +set +hset +hdel +sadd +srem +zadd +zrem +del +unlink" \
        "+multi +exec +discard +evalsha +eval +evalsha_ro +eval_ro +script|load" ;;
    query)
      echo "resetkeys %R~$VALKEY_KEY_PATTERN resetchannels -@all $connect" \
        "+evalsha_ro +eval_ro +get +hget +hmget +smembers +zrange" ;;
    *) die "no rules for user $1" ;;
  esac
}

# write_acl: a password per user (made once), and users.acl with their hashes (made every time, so
# a replaced password file or a changed key pattern takes effect on the next start or acl-reload).
write_acl() {
  mkdir -p "$SECRETS_DIR"
  chmod 700 "$STACK_DIR/secrets" "$SECRETS_DIR"
  local u hash acl="$SECRETS_DIR/users.acl"
  for u in "${USERS[@]}"; do
    [[ -s $SECRETS_DIR/$u ]] || (umask 077 && openssl rand -hex 24 | tr -d '\n' >"$SECRETS_DIR/$u")
  done
  (
    umask 077
    {
      # Nobody logs in as the default user (off, no password), but Valkey replays its append-only
      # file as that user and checks the user's rights again at each EXEC (valkey-io/valkey#3983):
      # without rights, every transaction of the read model was dropped at a restart, silently.
      # The rights are safe on a user no connection can authenticate as.
      echo "user default off resetpass ~* &* +@all"
      for u in "${USERS[@]}"; do
        hash=$(tr -d '\n' <"$SECRETS_DIR/$u" | sha256sum | cut -d' ' -f1)
        echo "user $u on resetpass #$hash $(rules "$u")"
      done
    } >"$acl.tmp"
  )
  mv "$acl.tmp" "$acl"
}

# TLS: a server certificate from the stack's CA (pki.sh keeps the CA, renews what expires soon).
write_cert() {
  "$(dirname "${BASH_SOURCE[0]}")/pki.sh" ca "$PKI_DIR"
  if ! [[ -f $PKI_DIR/valkey.pem ]] || ! openssl x509 -checkend 86400 -noout -in "$PKI_DIR/valkey.pem" >/dev/null; then
    "$(dirname "${BASH_SOURCE[0]}")/pki.sh" server "$PKI_DIR" valkey
  fi
}

# The admin's password reaches valkey-cli through the environment, never the command line (ps).
cli() {
  local tls=()
  [[ $VALKEY_TLS == 1 ]] && tls=(--tls --cacert "$PKI_DIR/ca.pem")
  REDISCLI_AUTH="$(cat "$SECRETS_DIR/admin")" run "$VALKEY_CLI" -h "$BIND_HOST" -p "$VALKEY_PORT" "${tls[@]}" --user admin --no-auth-warning "$@"
}
healthy() { [[ $(cli ping 2>/dev/null) == PONG ]]; }

# acl-reload: rewrites users.acl from the password files and loads it into the running server.
acl_reload() {
  write_acl
  [[ $(cli acl load) == OK ]] || die "ACL LOAD failed"
  log "ACL reloaded from $SECRETS_DIR/users.acl"
}

start() {
  install
  if is_running valkey; then
    log "already running (pid $(cat "$(pid_file valkey)"))"
    return 0
  fi
  local data="$STACK_DIR/data/valkey" listen=(--port "$VALKEY_PORT") scheme=redis
  mkdir -p "$data"
  write_acl
  if [[ $VALKEY_TLS == 1 ]]; then
    write_cert
    # TLS only: the plain port is closed. Client certificates are checked when presented.
    listen=(--port 0 --tls-port "$VALKEY_PORT" --tls-cert-file "$PKI_DIR/valkey.pem"
      --tls-key-file "$PKI_DIR/valkey-key.pem" --tls-ca-cert-file "$PKI_DIR/ca.pem" --tls-auth-clients optional)
    scheme=rediss
  fi
  start_bg valkey env LD_LIBRARY_PATH="$VALKEY_HOME/root/usr/lib/x86_64-linux-gnu" "$VALKEY_BIN" \
    --bind "$BIND_HOST" "${listen[@]}" --dir "$data" --daemonize no \
    --appendonly yes --save "" --protected-mode yes --aclfile "$SECRETS_DIR/users.acl"
  if ! wait_for "valkey on $VALKEY_PORT" 30 healthy; then
    tail -n 40 "$(log_file valkey)" >&2
    exit 1
  fi
  log "ready on $scheme://$BIND_HOST:$VALKEY_PORT (users and passwords in $SECRETS_DIR)"
}

status() {
  if is_running valkey && healthy; then
    echo "valkey   running  $([[ $VALKEY_TLS == 1 ]] && echo rediss || echo redis)://$BIND_HOST:$VALKEY_PORT"
  else
    echo "valkey   stopped"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_pid valkey ;;
  status) status ;;
  acl-reload) acl_reload ;;
  acl) write_acl ;; # passwords and users.acl only (deploy/k8s/secrets.sh makes the Kubernetes Secret of them)
  cli) shift; cli "$@" ;;
  *) die "usage: $0 install|start|stop|status|acl-reload|acl|cli" ;;
esac
