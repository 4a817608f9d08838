#!/usr/bin/env bash
# The test control plane's stand-in for a storage provisioner (deploy/k8s/control-plane.sh starts
# it): watches PersistentVolumeClaims and, for each Pending one, creates a hostPath PersistentVolume
# of the claim's size, access modes, volume mode and storage class, pre-bound to the claim; the
# controller-manager's PV controller then binds them. kwok's nodes never mount anything, so the
# path is never created. A PV is named after the claim's uid: a claim deleted and created again
# gets a new one.
# Usage: deploy/k8s/pv-binder.sh <kubeconfig>
set -euo pipefail
kc=$1
fields='{.metadata.uid}{" "}{.metadata.namespace}{" "}{.metadata.name}{" "}{.status.phase}{" "}{.spec.resources.requests.storage}{" "}{.spec.volumeMode}{" "}{.spec.storageClassName}{" "}{.spec.accessModes}{"\n"}'

bind() {
  local uid=$1 ns=$2 name=$3 size=$4 mode=$5 class=$6 access=$7
  kubectl --kubeconfig "$kc" create -f - <<PV >/dev/null 2>&1 || return 0
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-$uid
  labels: {app.kubernetes.io/managed-by: pv-binder}
spec:
  capacity: {storage: "$size"}
  accessModes: $access
  volumeMode: ${mode:-Filesystem}
  storageClassName: "$class"
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: $ns, name: $name, uid: $uid}
  hostPath: {path: /var/lib/pv-binder/$uid}
PV
  echo "created pv-$uid for $ns/$name ($size, class '${class}')"
}

# control-plane.sh starts this script in a session of its own and stops it by pid: take the watch
# (kubectl and the reading subshell) down with it. Bash runs a trap only between commands, so the
# watch runs in the background and the script waits for it.
trap 'trap - TERM; kill -- -$$ 2>/dev/null; exit 0' TERM

watch_claims() {
  kubectl --kubeconfig "$kc" get pvc --all-namespaces --watch -o "jsonpath=$fields" 2>/dev/null |
    while read -r uid ns name phase size mode class access; do
      # An unset storage class prints as nothing: the access modes move one field to the left.
      if [[ -z $access && $class == \[* ]]; then
        access=$class
        class=""
      fi
      [[ $phase == Pending ]] && bind "$uid" "$ns" "$name" "$size" "$mode" "$class" "$access"
    done
}

# A watch ends now and then (the server's timeout, a restart): watch again.
while true; do
  watch_claims &
  wait $!
  sleep 1 &
  wait $!
done
