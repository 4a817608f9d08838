# Shared helpers of the manifest policies. conftest runs them with --combine: input is the list
# of every rendered object of an overlay ({path, contents}), so that rules can look across objects
# (a NetworkPolicy for every workload, a PDB for every replicated one).
package main

import rego.v1

objects contains obj if {
	some doc in input
	obj := doc.contents
	is_object(obj)
}

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}

# Workloads that run until stopped (probes apply to them, not to Jobs).
long_running_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}

workloads contains obj if {
	some obj in objects
	obj.kind in workload_kinds
}

name(obj) := sprintf("%s/%s", [obj.kind, obj.metadata.name])

pod_template(obj) := obj.spec.jobTemplate.spec.template if obj.kind == "CronJob"

pod_template(obj) := obj.spec.template if obj.kind != "CronJob"

pod_spec(obj) := pod_template(obj).spec

pod_labels(obj) := object.get(pod_template(obj), ["metadata", "labels"], {})

# Every container of a workload, with whether it is an init container.
containers(obj) := array.concat(
	[{"c": c, "init": false} | some c in object.get(pod_spec(obj), "containers", [])],
	[{"c": c, "init": true} | some c in object.get(pod_spec(obj), "initContainers", [])],
)

# A label selector (matchLabels and matchExpressions) matches a set of labels.
selector_matches(selector, labels) if {
	every k, v in object.get(selector, "matchLabels", {}) {
		labels[k] == v
	}
	every e in object.get(selector, "matchExpressions", []) {
		expression_matches(e, labels)
	}
}

expression_matches(e, labels) if {
	e.operator == "In"
	labels[e.key] in e.values
}

expression_matches(e, labels) if {
	e.operator == "NotIn"
	not labels[e.key] in e.values
}

expression_matches(e, labels) if {
	e.operator == "Exists"
	labels[e.key]
}

expression_matches(e, labels) if {
	e.operator == "DoesNotExist"
	not labels[e.key]
}

# An empty selector ({}) selects every pod: the default deny, which says nothing about a workload.
empty_selector(selector) if {
	count(object.get(selector, "matchLabels", {})) == 0
	count(object.get(selector, "matchExpressions", [])) == 0
}
