# Pod Security "restricted", checked before an API server does: every pod runs as non-root with
# the RuntimeDefault seccomp profile, every container without privilege escalation, with every
# capability dropped and a read-only root filesystem; no host namespaces or host paths.
package main

import rego.v1

deny contains msg if {
	some obj in workloads
	not pod_spec(obj).securityContext.runAsNonRoot == true
	msg := sprintf("%s: the pod must set securityContext.runAsNonRoot: true", [name(obj)])
}

deny contains msg if {
	some obj in workloads
	pod_spec(obj).securityContext.runAsUser == 0
	msg := sprintf("%s: the pod must not run as uid 0", [name(obj)])
}

deny contains msg if {
	some obj in workloads
	not pod_spec(obj).securityContext.seccompProfile.type == "RuntimeDefault"
	msg := sprintf("%s: the pod must set securityContext.seccompProfile.type: RuntimeDefault", [name(obj)])
}

deny contains msg if {
	some obj in workloads
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	pod_spec(obj)[field] == true
	msg := sprintf("%s: the pod must not use %s", [name(obj), field])
}

deny contains msg if {
	some obj in workloads
	some v in object.get(pod_spec(obj), "volumes", [])
	v.hostPath
	msg := sprintf("%s: volume %s is a hostPath", [name(obj), v.name])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	not entry.c.securityContext.allowPrivilegeEscalation == false
	msg := sprintf("%s: container %s must set allowPrivilegeEscalation: false", [name(obj), entry.c.name])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	not "ALL" in object.get(entry.c, ["securityContext", "capabilities", "drop"], [])
	msg := sprintf("%s: container %s must drop ALL capabilities", [name(obj), entry.c.name])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	count(object.get(entry.c, ["securityContext", "capabilities", "add"], [])) > 0
	msg := sprintf("%s: container %s must add no capability", [name(obj), entry.c.name])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	entry.c.securityContext.privileged == true
	msg := sprintf("%s: container %s must not be privileged", [name(obj), entry.c.name])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	not entry.c.securityContext.readOnlyRootFilesystem == true
	msg := sprintf("%s: container %s must set readOnlyRootFilesystem: true", [name(obj), entry.c.name])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	entry.c.securityContext.runAsUser == 0
	msg := sprintf("%s: container %s must not run as uid 0", [name(obj), entry.c.name])
}

# No service-account token in any pod: none of them talks to the API server.
deny contains msg if {
	some obj in workloads
	not pod_spec(obj).automountServiceAccountToken == false
	msg := sprintf("%s: the pod must set automountServiceAccountToken: false", [name(obj)])
}

# The namespace enforces restricted, so the API server refuses what these rules miss.
deny contains msg if {
	some obj in objects
	obj.kind == "Namespace"
	not obj.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
	msg := sprintf("Namespace/%s: must be labelled pod-security.kubernetes.io/enforce: restricted", [obj.metadata.name])
}
