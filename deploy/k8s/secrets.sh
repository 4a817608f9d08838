#!/usr/bin/env bash
# The Secrets the Kubernetes manifests (k8s/) reference, generated from the project's own tools.
# Nothing of it is committed; keep the folder where only operators can read it (it holds every
# identity's key), or feed it to your secret manager instead of applying it.
#
# Usage:
#   deploy/k8s/secrets.sh make <dir> [namespace]   generate (or keep) every secret in <dir>, and write
#                                                  <dir>/secrets.yaml: `kubectl apply -f <dir>/secrets.yaml`
#   deploy/k8s/secrets.sh routes-conf <password>   print the nats-routes file (routes.conf) for them
#
# What <dir> holds (existing files are kept, so running it again changes nothing):
#   nats/auth.conf, nats/seeds/<role>.nk    `ctx nats auth-config`: the users (public keys) and seeds
#   nats/route.password                     the password of the NATS routes
#   valkey/<user>, valkey/users.acl         deploy/local/valkey.sh acl: passwords and the ACL file (hashes)
#   neo4j/password                          Neo4j's password
#   auth/jwks.json (+ signing-key.pem)      `ctx token keygen`: for trying it out; in production the
#                                           JWKS is your identity provider's (replace the file)
#   pki/ca.pem, pki/nats.pem, nats-key.pem  deploy/local/pki.sh: a private CA and the NATS servers'
#                                           certificate (the nodes' names; 30 days: cert-manager in production)
# Env: NATS_REPLICAS (3), READ_MODEL_NAMESPACE (ctx) and the stream names, as the services get them.
LOG_TAG=k8s-secrets
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

NATS_REPLICAS="${NATS_REPLICAS:-3}"
# Who gets a NATS user Secret (nats-user-<role>), and which Valkey users a Secret (valkey-user-<user>).
NATS_ROLES=(command query snapshotter projector-neo4j projector-valkey ctx)
VALKEY_USERS=(projector query ctx)

# routes_conf <password>: the cluster's route user and a route to every node of the StatefulSet.
routes_conf() {
  local password=$1 i
  [[ $password =~ ^[A-Za-z0-9]+$ ]] || die "the route password must be letters and digits only (it goes into URLs)"
  echo "# The NATS routes (included in cluster {} of nats.conf): route user, and one route per node."
  echo "authorization { user: route, password: \"$password\" }"
  echo "routes: ["
  for ((i = 0; i < NATS_REPLICAS; i++)); do
    echo "  \"nats://route:$password@nats-$i.nats-headless:6222\""
  done
  echo "]"
}

# nats_names: the DNS names of the NATS nodes and of the nats service, comma-separated.
nats_names() {
  local i names=() svc
  for svc in nats "nats.$namespace.svc" "nats.$namespace.svc.cluster.local"; do names+=("$svc"); done
  for ((i = 0; i < NATS_REPLICAS; i++)); do
    names+=("nats-$i.nats-headless" "nats-$i.nats-headless.$namespace.svc"
      "nats-$i.nats-headless.$namespace.svc.cluster.local")
  done
  (IFS=,; echo "${names[*]}")
}

secret() { "${KUBECTL:-kubectl}" create secret generic "$@" --namespace "$namespace" --dry-run=client -o yaml; }

make_secrets() {
  local dir=$1 f role user
  mkdir -p "$dir" && chmod 700 "$dir"
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/nats" "$dir/neo4j" "$dir/auth"
  "$REPO_ROOT/bin/ctx" nats auth-config --config "$dir/nats/auth.conf" --secrets "$dir/nats/seeds" >/dev/null
  f="$dir/nats/route.password"
  [[ -s $f ]] || (umask 077 && openssl rand -hex 24 | tr -d '\n' >"$f")
  (umask 077 && routes_conf "$(cat "$f")" >"$dir/nats/routes.conf")
  STACK_DIR="$dir/.valkey" "$REPO_ROOT/deploy/local/valkey.sh" acl
  rm -rf "$dir/valkey" && mv "$dir/.valkey/secrets/valkey" "$dir/valkey" && rm -rf "$dir/.valkey"
  f="$dir/neo4j/password"
  [[ -s $f ]] || (umask 077 && openssl rand -hex 24 | tr -d '\n' >"$f")
  [[ -s $dir/auth/jwks.json ]] || "$REPO_ROOT/bin/ctx" token keygen --dir "$dir/auth" >/dev/null
  # The checkpoint key (docs/AUDIT.md): kept once made; a rotation adds a key beside it.
  [[ -n $(ls -A "$dir/audit" 2>/dev/null) ]] ||
    "$REPO_ROOT/bin/ctx" audit keygen --keys "$dir/audit" >/dev/null
  # The NATS nodes' certificate (client TLS and routes, in the prod overlay): every name a client
  # or a route dials. Made again when less than a day is left.
  if ! [[ -f $dir/pki/nats.pem ]] || ! openssl x509 -checkend 86400 -noout -in "$dir/pki/nats.pem" >/dev/null; then
    "$REPO_ROOT/deploy/local/pki.sh" server "$dir/pki" nats "$(nats_names)"
  fi
  {
    secret nats-auth --from-file=auth.conf="$dir/nats/auth.conf"
    echo ---
    secret nats-routes --from-file=routes.conf="$dir/nats/routes.conf"
    for role in "${NATS_ROLES[@]}"; do
      echo ---
      secret "nats-user-$role" --from-file=seed.nk="$dir/nats/seeds/$role.nk"
    done
    echo ---
    secret valkey-acl --from-file=users.acl="$dir/valkey/users.acl"
    for user in "${VALKEY_USERS[@]}"; do
      echo ---
      secret "valkey-user-$user" --from-file=password="$dir/valkey/$user"
    done
    echo ---
    secret neo4j-auth --from-file=password="$dir/neo4j/password" \
      --from-literal=auth="neo4j/$(cat "$dir/neo4j/password")"
    echo ---
    secret auth-jwks --from-file=jwks.json="$dir/auth/jwks.json"
    echo ---
    secret nats-server-tls --from-file=tls.crt="$dir/pki/nats.pem" \
      --from-file=tls.key="$dir/pki/nats-key.pem" --from-file=ca.crt="$dir/pki/ca.pem"
    echo ---
    secret nats-ca --from-file=ca.crt="$dir/pki/ca.pem"
    echo ---
    secret audit-keys --from-file="$dir/audit"
  } >"$dir/secrets.yaml.tmp"
  chmod 600 "$dir/secrets.yaml.tmp" && mv "$dir/secrets.yaml.tmp" "$dir/secrets.yaml"
  log "wrote $dir/secrets.yaml (namespace $namespace): kubectl apply -f $dir/secrets.yaml"
}

case "${1:-}" in
  make)
    [[ -n ${2:-} ]] || die "usage: $0 make <dir> [namespace]"
    namespace="${3:-context-service}"
    make_secrets "$2"
    ;;
  routes-conf)
    [[ -n ${2:-} ]] || die "usage: $0 routes-conf <password>"
    routes_conf "$2"
    ;;
  *) die "usage: $0 make <dir> [namespace] | routes-conf <password>" ;;
esac
