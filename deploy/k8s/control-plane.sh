#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for `make test-k8s` and for trying the manifests by
# hand: etcd (Debian's etcd-server, unpacked), kube-apiserver, kube-controller-manager and
# kube-scheduler (built from deploy/k8s/control-plane/go.mod), kwok simulating nodes in three zones,
# and a PV binder (no storage provisioner exists here: it makes a hostPath PV for each Pending claim).
# Everything is cached under CACHE_DIR; state, certificates, logs and the admin kubeconfig live in
# $STACK_DIR/k8s. Pod Security admission is on: a namespace labelled
# pod-security.kubernetes.io/enforce=restricted refuses pods that break the restricted profile.
#
# Usage: deploy/k8s/control-plane.sh install|start|stop|status|kubeconfig
#   install     builds/fetches the binaries into CACHE_DIR (once; ~15 min cold on 2 cores)
#   start       starts everything (free ports unless set), waits until the nodes are Ready
#   stop        stops what start started, by pid; state stays in $STACK_DIR/k8s (delete it to reset)
#   status      what runs and where
#   kubeconfig  prints the admin kubeconfig's path (export KUBECONFIG=$(... kubeconfig))
# Env: STACK_DIR, CACHE_DIR, DEBIAN_MIRROR, K8S_ETCD_PORT, K8S_ETCD_PEER_PORT, K8S_API_PORT,
#      K8S_CONTROLLER_MANAGER_PORT, K8S_SCHEDULER_PORT (free ports when unset), K8S_NODES (3).
LOG_TAG=k8s
# shellcheck source=../images/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../images/common.sh"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_CACHE="$CACHE_DIR/k8s"
# Keyed by the wrapper module too: a changed replace or dependency is a rebuild.
KUBE_BIN="$K8S_CACHE/kubernetes-$KUBERNETES_VERSION-$(cat "$(dirname "${BASH_SOURCE[0]}")"/control-plane/go.{mod,sum} | sha256sum | cut -c1-12)"
ETCD_HOME="$K8S_CACHE/etcd-$(printf '%s\n' $ETCD_DEBIAN_PACKAGES | sha256sum | cut -c1-16)"
ETCD="$ETCD_HOME/root/usr/bin/etcd"
KWOK_HOME="$K8S_CACHE/kwok-$KWOK_VERSION"
KWOK="$KWOK_HOME/bin/kwok"
CRDS="$K8S_CACHE/crds-prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
STATE="$STACK_DIR/k8s"
K8S_NODES="${K8S_NODES:-3}"
ZONES=(zone-a zone-b zone-c)
# The components of this control plane, in start order (stop goes the other way).
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok pv-binder)

# --- install ------------------------------------------------------------------------------------

install_kubernetes() {
  [[ -x $KUBE_BIN/kube-apiserver && -x $KUBE_BIN/kube-controller-manager && -x $KUBE_BIN/kube-scheduler ]] && return 0
  command -v go >/dev/null || die "Go is needed to build Kubernetes $KUBERNETES_VERSION"
  [[ $(cd "$here/control-plane" && go list -m -f '{{.Version}}' k8s.io/kubernetes) == "$KUBERNETES_VERSION" ]] ||
    die "deploy/k8s/control-plane/go.mod does not require k8s.io/kubernetes $KUBERNETES_VERSION (versions.env): keep them in step"
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $KUBERNETES_VERSION (once, ~15 min cold; cached in $KUBE_BIN)"
  local minor=${KUBERNETES_VERSION#v*.}
  minor=${minor%%.*}
  rm -rf "$KUBE_BIN.tmp" && mkdir -p "$KUBE_BIN.tmp"
  (cd "$here/control-plane" && go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    -o "$KUBE_BIN.tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
  rm -rf "$KUBE_BIN" && mv "$KUBE_BIN.tmp" "$KUBE_BIN"
}

install_etcd() {
  [[ -x $ETCD ]] && return 0
  # shellcheck disable=SC2086 # a list of package=version words
  debian_unpack etcd "$ETCD_HOME" $ETCD_DEBIAN_PACKAGES
}

# kwok and the Stage files shipped in its module (without Stages, kwok leaves nodes and pods alone):
# nodes become Ready and keep their leases, pods become Running/Ready, Job pods complete, and
# deleted pods go away.
install_kwok() {
  [[ -x $KWOK && -f $KWOK_HOME/stages.yaml ]] && return 0
  command -v go >/dev/null || die "Go is needed to build kwok $KWOK_VERSION"
  log "building kwok $KWOK_VERSION (once, cached in $KWOK_HOME)"
  rm -rf "$KWOK_HOME.tmp" && mkdir -p "$KWOK_HOME.tmp/bin"
  GOBIN="$KWOK_HOME.tmp/bin" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  local mod stage
  mod=$(cd "$KWOK_HOME.tmp" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $mod/kustomize/stage ]] || die "kwok's module has no kustomize/stage folder"
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cat "$mod/kustomize/stage/$stage.yaml"
    printf -- '---\n'
  done >"$KWOK_HOME.tmp/stages.yaml"
  rm -rf "$KWOK_HOME" && mv "$KWOK_HOME.tmp" "$KWOK_HOME"
}

# The CustomResourceDefinitions of the kinds the manifests use beyond Kubernetes' own
# (PodMonitor, ServiceMonitor, PrometheusRule), from the prometheus-operator Go module.
install_crds() {
  [[ -f $CRDS/.complete ]] && return 0
  command -v go >/dev/null || die "Go is needed to fetch prometheus-operator $PROMETHEUS_OPERATOR_VERSION's CRDs"
  local mod
  mod=$(cd "$K8S_CACHE" && GOFLAGS=-mod=mod go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  rm -rf "$CRDS.tmp" && mkdir -p "$CRDS.tmp"
  cp "$mod"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$CRDS.tmp/"
  touch "$CRDS.tmp/.complete"
  rm -rf "$CRDS" && mv "$CRDS.tmp" "$CRDS"
}

install() {
  command -v kubectl >/dev/null || die "kubectl is needed (the machine image has v1.32)"
  mkdir -p "$K8S_CACHE"
  install_etcd
  install_kwok
  install_crds
  install_kubernetes
}

# --- certificates and kubeconfigs -------------------------------------------------------------------

# client_cert <name> <cn> <group>: a client certificate of the state's CA; Kubernetes reads the
# user from CN and the groups from O (deploy/local/pki.sh client writes OU, so it is not used here).
client_cert() {
  local dir=$STATE/pki name=$1 ext
  ext=$(mktemp)
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" >"$ext"
  (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name-key.pem")
  openssl req -new -key "$dir/$name-key.pem" -subj "/O=$3/CN=$2" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/ca.srl" "$ext"
}

# kubeconfig <name>: a kubeconfig for the client certificate <name>, in $STATE/<name>.kubeconfig.
kubeconfig_for() {
  local f=$STATE/$1.kubeconfig
  (umask 077 && cat >"$f" <<KC
apiVersion: v1
kind: Config
clusters:
- name: context-service-test
  cluster:
    server: https://$BIND_HOST:$K8S_API_PORT
    certificate-authority: $STATE/pki/ca.pem
users:
- name: $1
  user:
    client-certificate: $STATE/pki/$1.pem
    client-key: $STATE/pki/$1-key.pem
contexts:
- name: context-service-test
  context: {cluster: context-service-test, user: $1}
current-context: context-service-test
KC
  )
}

# The CA and serving certificate come from deploy/local/pki.sh; the client certificates are all in
# system:masters (a test control plane: every component may do everything).
make_pki() {
  local dir=$STATE/pki
  if [[ ! -f $dir/apiserver.pem ]] || ! openssl x509 -checkend 86400 -noout -in "$dir/apiserver.pem" >/dev/null; then
    rm -rf "$dir"
    "$REPO_ROOT/deploy/local/pki.sh" ca "$dir"
    "$REPO_ROOT/deploy/local/pki.sh" server "$dir" apiserver
    (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$dir/service-account-key.pem")
    openssl ec -in "$dir/service-account-key.pem" -pubout -out "$dir/service-account.pem" 2>/dev/null
    for c in admin kube-controller-manager kube-scheduler kwok pv-binder; do client_cert "$c" "$c" system:masters; done
  fi
  for c in admin kube-controller-manager kube-scheduler kwok pv-binder; do kubeconfig_for "$c"; done
}

# --- ports ----------------------------------------------------------------------------------------

# free_port: a port nothing listens on (the state keeps the choice, so restarts keep their ports).
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    tcp_open "$p" || {
      echo "$p"
      return 0
    }
  done
  die "no free port found"
}

# Ports: the environment wins, then the ports of the previous start, then free ones.
load_ports() {
  # shellcheck disable=SC1091
  [[ -f $STATE/ports.env ]] && . "$STATE/ports.env"
  K8S_ETCD_PORT=${K8S_ETCD_PORT:-${SAVED_ETCD_PORT:-$(free_port)}}
  K8S_ETCD_PEER_PORT=${K8S_ETCD_PEER_PORT:-${SAVED_ETCD_PEER_PORT:-$(free_port)}}
  K8S_API_PORT=${K8S_API_PORT:-${SAVED_API_PORT:-$(free_port)}}
  K8S_CONTROLLER_MANAGER_PORT=${K8S_CONTROLLER_MANAGER_PORT:-${SAVED_CONTROLLER_MANAGER_PORT:-$(free_port)}}
  K8S_SCHEDULER_PORT=${K8S_SCHEDULER_PORT:-${SAVED_SCHEDULER_PORT:-$(free_port)}}
  mkdir -p "$STATE"
  cat >"$STATE/ports.env" <<PORTS
SAVED_ETCD_PORT=$K8S_ETCD_PORT
SAVED_ETCD_PEER_PORT=$K8S_ETCD_PEER_PORT
SAVED_API_PORT=$K8S_API_PORT
SAVED_CONTROLLER_MANAGER_PORT=$K8S_CONTROLLER_MANAGER_PORT
SAVED_SCHEDULER_PORT=$K8S_SCHEDULER_PORT
PORTS
}

# --- start ----------------------------------------------------------------------------------------

kctl() { kubectl --kubeconfig "$STATE/admin.kubeconfig" "$@"; }

api_ready() { kctl get --raw /readyz >/dev/null 2>&1; }

start_etcd() {
  is_running etcd && return 0
  mkdir -p "$STATE/etcd" && chmod 700 "$STATE/etcd"
  start_bg etcd "$ETCD" --name k8s --data-dir "$STATE/etcd" \
    --listen-client-urls "http://$BIND_HOST:$K8S_ETCD_PORT" --advertise-client-urls "http://$BIND_HOST:$K8S_ETCD_PORT" \
    --listen-peer-urls "http://$BIND_HOST:$K8S_ETCD_PEER_PORT" --initial-advertise-peer-urls "http://$BIND_HOST:$K8S_ETCD_PEER_PORT" \
    --initial-cluster "k8s=http://$BIND_HOST:$K8S_ETCD_PEER_PORT" --quota-backend-bytes 2147483648 --log-level warn
  wait_for "etcd on port $K8S_ETCD_PORT" 30 tcp_open "$K8S_ETCD_PORT"
}

start_apiserver() {
  is_running kube-apiserver && return 0
  local pki=$STATE/pki
  # --endpoint-reconciler-type=none: the "kubernetes" Service may not point at a loopback address.
  start_bg kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --bind-address "$BIND_HOST" --advertise-address "$BIND_HOST" --secure-port "$K8S_API_PORT" \
    --etcd-servers "http://$BIND_HOST:$K8S_ETCD_PORT" \
    --tls-cert-file "$pki/apiserver.pem" --tls-private-key-file "$pki/apiserver-key.pem" --client-ca-file "$pki/ca.pem" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/service-account.pem" \
    --service-account-signing-key-file "$pki/service-account-key.pem" \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    --authorization-mode RBAC --enable-admission-plugins PodSecurity \
    --allow-privileged=false --profiling=false --cert-dir "$STATE/apiserver-certs"
  wait_for "kube-apiserver on port $K8S_API_PORT" 90 api_ready || {
    tail -n 20 "$(log_file kube-apiserver)" >&2
    return 1
  }
}

# serving_flags <name> <port>: kube-controller-manager and kube-scheduler serve health and metrics
# on 127.0.0.1 with a self-signed certificate in the state folder, and ask the API server who calls.
serving_flags() {
  printf '%s\n' --bind-address "$BIND_HOST" --secure-port "$2" --cert-dir "$STATE/$1-certs" \
    --kubeconfig "$STATE/$1.kubeconfig" --authentication-kubeconfig "$STATE/$1.kubeconfig" \
    --authorization-kubeconfig "$STATE/$1.kubeconfig" --leader-elect=false
}

# --node-monitor-grace-period 10m: a node whose lease renewals stall (kwok starved of CPU on a busy
# machine; seen once during a test run) would turn NotReady after the default 50 s and have its pods
# marked unready, which kwok never undoes (its Stages make Pending pods ready, not Running ones).
start_controller_manager() {
  is_running kube-controller-manager && return 0
  local flags
  mapfile -t flags < <(serving_flags kube-controller-manager "$K8S_CONTROLLER_MANAGER_PORT")
  start_bg kube-controller-manager "$KUBE_BIN/kube-controller-manager" "${flags[@]}" \
    --service-account-private-key-file "$STATE/pki/service-account-key.pem" --root-ca-file "$STATE/pki/ca.pem" \
    --use-service-account-credentials=false --controllers '*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle' \
    --cluster-name context-service-test --node-monitor-grace-period 10m
}

start_scheduler() {
  is_running kube-scheduler && return 0
  local flags
  mapfile -t flags < <(serving_flags kube-scheduler "$K8S_SCHEDULER_PORT")
  start_bg kube-scheduler "$KUBE_BIN/kube-scheduler" "${flags[@]}"
}

start_kwok() {
  is_running kwok && return 0
  # etcd 3.4 has no watch progress requests, so the API server cannot stream lists; kwok's client
  # asks for them (its log says so), and a kwok started without this left new pods Pending here:
  # make it list and watch.
  KUBE_FEATURE_WatchListClient=false start_bg kwok "$KWOK" --kubeconfig "$STATE/kwok.kubeconfig" --config "$KWOK_HOME/stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr 10.244.0.0/16 --node-ip 10.0.0.1 --node-lease-duration-seconds 40
}

# The simulated nodes: round-robin over three zones, each with room for the prod overlay.
apply_nodes() {
  local i name zone
  for ((i = 0; i < K8S_NODES; i++)); do
    zone=${ZONES[i % ${#ZONES[@]}]}
    name="node-$((i + 1))-$zone"
    cat <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/worker: ""
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: $zone
    type: kwok
status:
  allocatable: {cpu: "16", memory: 64Gi, ephemeral-storage: 200Gi, pods: "110"}
  capacity: {cpu: "16", memory: 64Gi, ephemeral-storage: 200Gi, pods: "110"}
---
NODE
  done | kctl apply -f - >/dev/null
}

nodes_ready() {
  local ready
  ready=$(kctl get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)
  ((ready >= K8S_NODES))
}

start() {
  install
  load_ports
  make_pki
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_kwok
  apply_nodes
  wait_for "$K8S_NODES Ready nodes" 60 nodes_ready || {
    tail -n 20 "$(log_file kwok)" >&2
    return 1
  }
  # Server-side: the CRDs are larger than the annotation client-side apply would keep.
  kctl apply --server-side --field-manager control-plane -f "$CRDS" >/dev/null
  kctl wait --for condition=Established --timeout 60s -f "$CRDS" >/dev/null
  is_running pv-binder || start_bg pv-binder "$here/pv-binder.sh" "$STATE/pv-binder.kubeconfig"
  status
}

# stop_component <name>: TERM, then KILL after 10 s, by the pid file, and only that process. The API
# server's shutdown hangs against etcd 3.4 (its storage statistics retry until killed), and nothing
# here keeps state that a kill could lose except etcd, which stops at once.
stop_component() {
  local f pid deadline
  f=$(pid_file "$1")
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -TERM "$pid" 2>/dev/null; then
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[i]}"; done
}

status() {
  local c rc=0
  for c in "${COMPONENTS[@]}"; do
    if is_running "$c"; then log "$c running (pid $(cat "$(pid_file "$c")"))"; else
      log "$c stopped"
      rc=1
    fi
  done
  if [[ -f $STATE/ports.env ]]; then
    # shellcheck disable=SC1091
    . "$STATE/ports.env"
    log "API server https://$BIND_HOST:$SAVED_API_PORT; kubeconfig $STATE/admin.kubeconfig; logs $STACK_DIR/log"
  fi
  return $rc
}

# The common.sh helpers keep pid files and logs in $STACK_DIR/{run,log}: keep ours beside the state.
STACK_DIR="$STATE"

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  kubeconfig) echo "$STATE/admin.kubeconfig" ;;
  *) die "usage: $0 install|start|stop|status|kubeconfig" ;;
esac
