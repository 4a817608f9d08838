# Cross-object rules: every workload is selected by a NetworkPolicy of its own (beyond the
# namespace's default deny), and every workload that may run more than one replica has a
# PodDisruptionBudget.
package main

import rego.v1

network_policies contains np if {
	some np in objects
	np.kind == "NetworkPolicy"
}

deny contains msg if {
	some obj in workloads
	not selected_by_network_policy(obj)
	msg := sprintf("%s: no NetworkPolicy (other than a select-all default) selects its pods", [name(obj)])
}

selected_by_network_policy(obj) if {
	some np in network_policies
	not empty_selector(np.spec.podSelector)
	selector_matches(np.spec.podSelector, pod_labels(obj))
}

# The most replicas a workload may run: its replicas, or its HorizontalPodAutoscaler's maximum.
max_replicas(obj) := object.get(obj.spec, "replicas", 1) if not autoscaled(obj)

max_replicas(obj) := hpa.spec.maxReplicas if {
	some hpa in autoscalers_of(obj)
}

autoscalers_of(obj) := {hpa |
	some hpa in objects
	hpa.kind == "HorizontalPodAutoscaler"
	hpa.spec.scaleTargetRef.kind == obj.kind
	hpa.spec.scaleTargetRef.name == obj.metadata.name
}

autoscaled(obj) if count(autoscalers_of(obj)) > 0

deny contains msg if {
	some obj in workloads
	obj.kind in long_running_kinds
	max_replicas(obj) > 1
	not has_pdb(obj)
	msg := sprintf("%s: runs up to %d replicas but no PodDisruptionBudget selects its pods", [name(obj), max_replicas(obj)])
}

has_pdb(obj) if {
	some pdb in objects
	pdb.kind == "PodDisruptionBudget"
	selector_matches(pdb.spec.selector, pod_labels(obj))
}
