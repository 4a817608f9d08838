#!/usr/bin/env bash
# The tools and schemas of the offline manifest checks (deploy/k8s/check.sh), installed once into
# CACHE_DIR/k8s-tools and reused; every version pinned in versions.env. Prints nothing on a warm
# cache. Usage: deploy/k8s/tools.sh [kubeconform|conftest|schemas]... (none: all three)
# Needs: go (the module proxy), python3 with pip (PyPI). kubectl is taken from the machine (see
# check.sh).
LOG_TAG=k8s-tools
. "$(dirname "${BASH_SOURCE[0]}")/../local/common.sh"

K8S_TOOLS="$CACHE_DIR/k8s-tools"
KUBECONFORM="$K8S_TOOLS/kubeconform-$KUBECONFORM_VERSION/bin/kubeconform"
CONFTEST="$K8S_TOOLS/conftest-$CONFTEST_VERSION/bin/conftest"
# PyYAML for the Python helpers (openapi2jsonschema.py, check.sh), when python3 has none of its own.
PYLIB="$K8S_TOOLS/pyyaml-$PYYAML_VERSION"
SCHEMAS="$K8S_TOOLS/schemas/k8s-$KUBERNETES_VALIDATE_VERSION-v$KUBERNETES_SCHEMA_VERSION+prom-$PROMETHEUS_OPERATOR_VERSION"

need_go() { command -v go >/dev/null || die "Go is needed to build $1 (go install from the module proxy)"; }

# go_tool <binary path> <module@version> [note]: go install into the binary's folder, once.
go_tool() {
  local bin=$1 module=$2 note=${3:-}
  [[ -x $bin ]] && return 0
  need_go "$(basename "$bin")"
  log "building ${module##*/}${note:+ ($note)} once, cached in $K8S_TOOLS"
  GOBIN="$(dirname "$bin")" GOFLAGS=-mod=mod go install "$module"
}

install_kubeconform() {
  go_tool "$KUBECONFORM" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
}

install_conftest() {
  go_tool "$CONFTEST" "github.com/open-policy-agent/conftest@$CONFTEST_VERSION" "a few minutes"
}

install_pyyaml() {
  [[ -f $PYLIB/.complete ]] && return 0
  python3 -c 'import yaml' 2>/dev/null && mkdir -p "$PYLIB" && touch "$PYLIB/.complete" && return 0
  log "installing PyYAML $PYYAML_VERSION from PyPI (once, cached in $PYLIB)"
  rm -rf "$PYLIB" && python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --target "$PYLIB" "pyyaml==$PYYAML_VERSION"
  touch "$PYLIB/.complete"
}

# build_schemas: kubeconform's schema folder, offline. Kubernetes: the standalone (strict) schemas of
# KUBERNETES_SCHEMA_VERSION from kubernetes-validate, with their $refs inlined
# (deploy/k8s/inline-schemas.py). CRDs: prometheus-operator's CRD YAML from its Go module, converted
# by the openapi2jsonschema.py that ships in the kubeconform module.
build_schemas() {
  [[ -f $SCHEMAS/.complete ]] && return 0
  command -v python3 >/dev/null || die "python3 is needed to build the Kubernetes schemas"
  need_go "the CRD schemas"
  install_pyyaml
  local tmp="$SCHEMAS.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp/pypi" "$tmp/k8s" "$tmp/crds"
  log "building JSON schemas: kubernetes-validate $KUBERNETES_VALIDATE_VERSION (v$KUBERNETES_SCHEMA_VERSION), prometheus-operator $PROMETHEUS_OPERATOR_VERSION (once, cached in $SCHEMAS)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp/pypi" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  python3 -m zipfile -e "$tmp/pypi"/kubernetes_validate-*.whl "$tmp/pypi/wheel"
  local src="$tmp/pypi/wheel/kubernetes_validate/kubernetes-json-schema/v$KUBERNETES_SCHEMA_VERSION-local-strict"
  [[ -d $src ]] || die "kubernetes-validate $KUBERNETES_VALIDATE_VERSION has no schemas for v$KUBERNETES_SCHEMA_VERSION ($(ls "$tmp/pypi/wheel/kubernetes_validate/kubernetes-json-schema" | tr '\n' ' '))"
  python3 "$REPO_ROOT/deploy/k8s/inline-schemas.py" "$src" "$tmp/k8s/v$KUBERNETES_SCHEMA_VERSION-local-strict"

  local mods kc po
  mods=$(go env GOMODCACHE)
  GOFLAGS=-mod=mod go mod download "github.com/yannh/kubeconform@$KUBECONFORM_VERSION" \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
  kc="$mods/github.com/yannh/kubeconform@$KUBECONFORM_VERSION"
  po="$mods/github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
  (cd "$tmp/crds" && PYTHONPATH="$PYLIB" FILENAME_FORMAT='{kind}_{version}' \
    python3 "$kc/scripts/openapi2jsonschema.py" "$po"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml >/dev/null)
  mkdir -p "$tmp/crds/monitoring.coreos.com"
  mv "$tmp/crds"/*.json "$tmp/crds/monitoring.coreos.com/"
  rm -rf "$tmp/pypi"
  touch "$tmp/.complete"
  rm -rf "$SCHEMAS" && mv "$tmp" "$SCHEMAS"
}

if (($# == 0)); then set -- kubeconform conftest pyyaml schemas; fi
for what in "$@"; do
  case "$what" in
    kubeconform) install_kubeconform ;;
    conftest) install_conftest ;;
    pyyaml) install_pyyaml ;;
    schemas) build_schemas ;;
    *) die "usage: $0 [kubeconform|conftest|pyyaml|schemas]..." ;;
  esac
done
