#!/usr/bin/env bash
# Embedded Neo4j community server for local development, without Docker or a Neo4j distribution:
# the jars come from Maven Central (deploy/local/neo4j/pom.xml), the tiny launcher
# (deploy/local/neo4j/Launcher.java) is compiled into the cache.
#
#   deploy/local/neo4j.sh install|start|stop|status
#
# Env: NEO4J_BOLT_PORT (7687), NEO4J_HEAP (1g), NEO4J_PAGECACHE (512m), STACK_DIR, CACHE_DIR (see
#      common.sh), NEO4J_AUTH (unset: authentication on, see below; "none" turns it off).
#
# Authentication is on: on first start a password for the built-in user neo4j is generated into
# $STACK_DIR/secrets/neo4j/password (0600); the launcher reads it from there (never from the command
# line) and sets it at every start, so replacing the file and restarting rotates it.
#
# NEO4J_TLS=1: Bolt with TLS only (bolt+s://), a certificate from the stack's CA ($STACK_DIR/pki).
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
LOG_TAG=neo4j

NEO4J_BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
[[ $NEO4J_BOLT_PORT =~ ^[0-9]+$ ]] || die "NEO4J_BOLT_PORT must be a port number, not '$NEO4J_BOLT_PORT'"
NEO4J_HEAP="${NEO4J_HEAP:-1g}"
SRC_DIR="$REPO_ROOT/deploy/local/neo4j"
NEO4J_CACHE="$CACHE_DIR/neo4j-$NEO4J_VERSION"
LIB_DIR="$NEO4J_CACHE/lib"
INSTALLED_MARKER="$NEO4J_CACHE/.installed"
DATA_DIR="$STACK_DIR/data/neo4j"
PORT_FILE="$STACK_DIR/run/neo4j.port"
SECRETS_DIR="$STACK_DIR/secrets/neo4j"
PKI_DIR="$STACK_DIR/pki"
NEO4J_TLS="${NEO4J_TLS:-0}"
[[ $NEO4J_TLS == 0 || $NEO4J_TLS == 1 ]] || die "NEO4J_TLS must be 0 or 1, not '$NEO4J_TLS'"
NEO4J_AUTH="${NEO4J_AUTH:-}"
[[ -z $NEO4J_AUTH || $NEO4J_AUTH == none ]] || die "NEO4J_AUTH must be unset (a generated password) or 'none', not '${NEO4J_AUTH%%/*}/...'"
START_TIMEOUT=120

# The JVM flags of Neo4j's own neo4j.conf, trimmed. Its page cache reflects into java.nio
# (DirectByteBuffer) and its native file access into java.io/sun.nio.ch (file descriptors):
# without these opens it warns and falls back to slower paths. java.lang and java.util are
# not needed by anything seen so far; they are opened as a cheap precaution against code
# paths (procedures, plugins) that reflect into them. The heap is fixed at its size (-Xms =
# -Xmx), as neo4j.conf advises: a heap that grows under the first load collects again and again.
JVM_OPTS=(
  "-Xms$NEO4J_HEAP" "-Xmx$NEO4J_HEAP"
  -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow -XX:+DisableExplicitGC
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  -Dio.netty.tryReflectionSetAccessible=true
  -Djdk.nio.maxCachedBufferSize=1024
  -Dlog4j2.disable.jmx=true
)

sha() { sha256sum "$@" | cut -d' ' -f1; }

# The jars: resolved once per version (and pom) into the cache, marker written last.
install_jars() {
  local want
  want="$NEO4J_VERSION $(sha "$SRC_DIR/pom.xml")"
  [[ -f $INSTALLED_MARKER && $(cat "$INSTALLED_MARKER") == "$want" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found (Maven 3.8+ and Java 17 are needed)"
  log "resolving Neo4j $NEO4J_VERSION jars with Maven into $LIB_DIR (first time takes a while)"
  rm -rf "$LIB_DIR.tmp"
  # (sed: Debian's Maven prints stray colour resets even in batch mode.)
  mvn -B -q -Dstyle.color=never -f "$SRC_DIR/pom.xml" \
    -Dneo4j.version="$NEO4J_VERSION" \
    -Dneo4j.build.dir="$NEO4J_CACHE/build" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB_DIR.tmp" 2>&1 \
    | sed 's/\x1b\[0m//g' >&2 \
    || die "maven could not resolve the Neo4j jars"
  rm -rf "$LIB_DIR" "$NEO4J_CACHE/build"
  mv "$LIB_DIR.tmp" "$LIB_DIR"
  echo "$want" >"$INSTALLED_MARKER"
}

# The launcher: compiled once per version of Launcher.java, into a folder named after its hash, so
# clones with different launchers share the cache without recompiling over each other.
LAUNCHER_SHA=$(sha "$SRC_DIR/Launcher.java")
CLASSES_DIR="$NEO4J_CACHE/launcher-$LAUNCHER_SHA"
install_launcher() {
  [[ -f $CLASSES_DIR/Launcher.class ]] && return 0
  command -v javac >/dev/null || die "javac not found (a Java 17 JDK is needed)"
  log "compiling the launcher"
  local tmp
  tmp=$(mktemp -d "$NEO4J_CACHE/launcher.XXXXXX")
  javac -nowarn -d "$tmp" -cp "$LIB_DIR/*" "$SRC_DIR/Launcher.java" || die "javac failed"
  mv -T "$tmp" "$CLASSES_DIR" 2>/dev/null || rm -rf "$tmp" # another start compiled it meanwhile
}

install() {
  mkdir -p "$NEO4J_CACHE"
  install_jars
  install_launcher
}

# bolt_answers <port>: a Bolt handshake on the port gets a version back (not just an open socket).
bolt_answers() {
  local reply
  reply=$(
    exec 3<>"/dev/tcp/$BIND_HOST/$1" || exit 1
    # Magic preamble, then four proposals: 5.0-5.8, 4.4, none, none.
    printf '\x60\x60\xb0\x17\x00\x08\x08\x05\x00\x00\x04\x04\x00\x00\x00\x00\x00\x00\x00\x00' >&3
    timeout 2 head -c 4 <&3 | od -An -tx1 | tr -d ' \n'
  ) || return 1
  [[ ${#reply} -eq 8 && $reply != 00000000 ]]
}

# started_or_dead <log-offset>: the launcher has logged "ready" since <log-offset> and Bolt
# answers, or the process is gone (checked by the caller).
started_or_dead() {
  is_running neo4j || return 0
  grep -q '^neo4j ready: ' < <(tail -c "+$(($1 + 1))" "$(log_file neo4j)") || return 1
  # Behind TLS the plain handshake is refused: an accepting port is what can be checked here.
  if [[ $NEO4J_TLS == 1 ]]; then tcp_open "$NEO4J_BOLT_PORT"; else bolt_answers "$NEO4J_BOLT_PORT"; fi
}

# running_port: the Bolt port the running instance was started with.
running_port() { cat "$PORT_FILE" 2>/dev/null || echo "$NEO4J_BOLT_PORT"; }

start() {
  install
  if is_running neo4j; then
    log "already running (pid $(cat "$(pid_file neo4j)"), bolt://$BIND_HOST:$(running_port))"
    return 0
  fi
  tcp_open "$NEO4J_BOLT_PORT" && die "port $NEO4J_BOLT_PORT is already taken by another process"
  mkdir -p "$DATA_DIR" "$STACK_DIR/log"
  local log offset t0=$SECONDS
  log=$(log_file neo4j)
  offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
  local auth=(NEO4J_AUTH=none) how="authentication off"
  if [[ $NEO4J_AUTH != none ]]; then
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$STACK_DIR/secrets" "$SECRETS_DIR"
    [[ -s $SECRETS_DIR/password ]] || (umask 077 && openssl rand -hex 24 | tr -d '\n' >"$SECRETS_DIR/password")
    auth=(NEO4J_AUTH= NEO4J_PASSWORD_FILE="$SECRETS_DIR/password")
    how="user neo4j, password in $SECRETS_DIR/password"
  fi
  local tls=() scheme=bolt
  if [[ $NEO4J_TLS == 1 ]]; then
    # Neo4j's layout: private.key (PKCS#8) and public.crt in one folder, with trusted/ and revoked/.
    local bolt="$PKI_DIR/neo4j-bolt"
    "$(dirname "${BASH_SOURCE[0]}")/pki.sh" ca "$PKI_DIR"
    if ! [[ -f $PKI_DIR/neo4j.pem ]] || ! openssl x509 -checkend 86400 -noout -in "$PKI_DIR/neo4j.pem" >/dev/null; then
      "$(dirname "${BASH_SOURCE[0]}")/pki.sh" server "$PKI_DIR" neo4j
    fi
    mkdir -p "$bolt/trusted" "$bolt/revoked"
    (umask 077 && openssl pkcs8 -topk8 -nocrypt -in "$PKI_DIR/neo4j-key.pem" -out "$bolt/private.key")
    cp "$PKI_DIR/neo4j.pem" "$bolt/public.crt"
    tls=(NEO4J_TLS_DIR="$bolt")
    scheme=bolt+s
  fi
  log "starting on $scheme://$BIND_HOST:$NEO4J_BOLT_PORT (data $DATA_DIR, log $log; $how)"
  start_bg neo4j env NEO4J_BOLT_PORT="$NEO4J_BOLT_PORT" "${auth[@]}" "${tls[@]}" \
    java "${JVM_OPTS[@]}" -cp "$CLASSES_DIR:$LIB_DIR/*" Launcher "$DATA_DIR"
  echo "$NEO4J_BOLT_PORT" >"$PORT_FILE"
  if ! wait_for "neo4j to answer on Bolt" "$START_TIMEOUT" started_or_dead "$offset"; then
    tail -c "+$((offset + 1))" "$log" | tail -n 40 >&2
    stop
    die "neo4j did not become ready in ${START_TIMEOUT}s"
  fi
  if ! is_running neo4j; then
    log "neo4j exited during startup; last 40 lines of $log:"
    tail -c "+$((offset + 1))" "$log" | tail -n 40 >&2
    rm -f "$(pid_file neo4j)" "$PORT_FILE"
    die "neo4j failed to start"
  fi
  log "ready on $scheme://$BIND_HOST:$NEO4J_BOLT_PORT in $((SECONDS - t0))s (pid $(cat "$(pid_file neo4j)"))"
}

stop() {
  if is_running neo4j; then
    log "stopping (pid $(cat "$(pid_file neo4j)"))"
  fi
  stop_pid neo4j
  rm -f "$PORT_FILE"
}

status() {
  if is_running neo4j; then
    echo "neo4j    running  $([[ $NEO4J_TLS == 1 ]] && echo bolt+s || echo bolt)://$BIND_HOST:$(running_port)"
  else
    echo "neo4j    stopped"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 install|start|stop|status" ;;
esac
