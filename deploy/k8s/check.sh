#!/usr/bin/env bash
# The offline checks of the Kubernetes manifests (make test-manifests, part of make test):
#   1. render every overlay of k8s/overlays with `kubectl kustomize`;
#   2. validate every object strictly (unknown fields are errors) against the Kubernetes
#      v$KUBERNETES_SCHEMA_VERSION schemas and the prometheus-operator CRDs, from local files only;
#   3. the project's policies (k8s/policy, conftest with --combine: all objects of an overlay at
#      once), after proving each rule fires on its failing fixture (conftest verify);
#   4. nats-server reads the NATS configuration of each overlay (nats-server -t), with users from
#      `ctx nats auth-config` and routes as docs/DEPLOYMENT.md makes them.
# kubectl is taken from the machine (KUBECTL overrides it): it is in the machine image here
# (v1.32, kustomize v5.5) and cannot be fetched offline (not a Go module the proxy serves). The
# other tools are built and cached by deploy/k8s/tools.sh. Rendered overlays go to .build/k8s/.
LOG_TAG=k8s-check
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

KUBECTL="${KUBECTL:-kubectl}"
command -v "$KUBECTL" >/dev/null ||
  die "kubectl is needed to render the overlays (kubectl kustomize); install kubectl ≥ 1.27 or set KUBECTL"
"$REPO_ROOT/deploy/k8s/tools.sh"

K8S_TOOLS="$CACHE_DIR/k8s-tools"
KUBECONFORM="$K8S_TOOLS/kubeconform-$KUBECONFORM_VERSION/bin/kubeconform"
CONFTEST="$K8S_TOOLS/conftest-$CONFTEST_VERSION/bin/conftest"
SCHEMAS="$K8S_TOOLS/schemas/k8s-$KUBERNETES_VALIDATE_VERSION-v$KUBERNETES_SCHEMA_VERSION+prom-$PROMETHEUS_OPERATOR_VERSION"
OUT="$REPO_ROOT/.build/k8s"
POLICY="$REPO_ROOT/k8s/policy"
mkdir -p "$OUT"

# The policies' own tests first: each rule is shown to pass its good fixture and fire on its bad one.
"$CONFTEST" verify --no-color --policy "$POLICY" >"$OUT/policy-verify.txt" 2>&1 || {
  cat "$OUT/policy-verify.txt" >&2
  die "the policies' tests failed (conftest verify --policy k8s/policy)"
}
log "policies: $(tail -n 1 "$OUT/policy-verify.txt")"

NATS_BIN="$CACHE_DIR/nats-server-$NATS_SERVER_VERSION/bin/nats-server"
"$REPO_ROOT/deploy/local/nats.sh" install
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# Users as `ctx nats auth-config` writes them (fresh keys, thrown away), routes as the Secret
# nats-routes holds them, and a certificate where the Secret nats-server-tls is mounted.
mkdir -p "$scratch/nats-auth" "$scratch/nats-routes" "$scratch/nats-tls"
"$REPO_ROOT/bin/ctx" nats auth-config --config "$scratch/nats-auth/auth.conf" --secrets "$scratch/seeds" >/dev/null
"$REPO_ROOT/deploy/k8s/secrets.sh" routes-conf checkpassword >"$scratch/nats-routes/routes.conf"
"$REPO_ROOT/deploy/local/pki.sh" server "$scratch/pki" nats nats-0.nats-headless
cp "$scratch/pki/nats.pem" "$scratch/nats-tls/tls.crt"
cp "$scratch/pki/nats-key.pem" "$scratch/nats-tls/tls.key"
cp "$scratch/pki/ca.pem" "$scratch/nats-tls/ca.crt"

for dir in "$REPO_ROOT"/k8s/overlays/*/; do
  overlay=$(basename "$dir")
  rendered="$OUT/$overlay.yaml"
  "$KUBECTL" kustomize "$dir" >"$rendered" || die "$overlay: kubectl kustomize failed"
  "$KUBECONFORM" -strict -summary -output text \
    -schema-location "$SCHEMAS/k8s/v$KUBERNETES_SCHEMA_VERSION-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$SCHEMAS/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$rendered" >"$OUT/$overlay.kubeconform.txt" 2>&1 || {
    cat "$OUT/$overlay.kubeconform.txt" >&2
    die "$overlay: schema validation failed"
  }
  "$CONFTEST" test --combine --no-color --policy "$POLICY" "$rendered" >"$OUT/$overlay.conftest.txt" 2>&1 || {
    cat "$OUT/$overlay.conftest.txt" >&2
    die "$overlay: policy check failed"
  }
  # The NATS configuration of the overlay, as the pods mount it.
  mkdir -p "$scratch/$overlay/nats-config"
  PYTHONPATH="$K8S_TOOLS/pyyaml-$PYYAML_VERSION" python3 - "$rendered" "$scratch/$overlay/nats-config/nats.conf" "$scratch/$overlay" <<'PY'
import sys, yaml
rendered, target, root = sys.argv[1:]
for doc in yaml.safe_load_all(open(rendered)):
    if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("nats-config"):
        conf = doc["data"]["nats.conf"]
        conf = conf.replace("/data/jetstream", root + "/jetstream").replace("/var/run/nats/", root + "/")
        conf = conf.replace("/etc/nats-tls/", root + "/nats-tls/")
        open(target, "w").write(conf)
        break
else:
    sys.exit("no ConfigMap nats-config in " + rendered)
PY
  ln -sfn "$scratch/nats-auth" "$scratch/$overlay/nats-auth"
  ln -sfn "$scratch/nats-routes" "$scratch/$overlay/nats-routes"
  ln -sfn "$scratch/nats-tls" "$scratch/$overlay/nats-tls"
  SERVER_NAME=nats-0 "$NATS_BIN" -t -c "$scratch/$overlay/nats-config/nats.conf" >"$OUT/$overlay.nats.txt" 2>&1 || {
    cat "$OUT/$overlay.nats.txt" >&2
    die "$overlay: nats-server refuses the NATS configuration"
  }
  log "$overlay: $(tail -n 1 "$OUT/$overlay.kubeconform.txt"); $(tail -n 1 "$OUT/$overlay.conftest.txt"); nats.conf valid"
done
