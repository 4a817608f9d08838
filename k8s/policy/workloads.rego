# What every workload needs to be operated: probes on long-running containers, resource requests
# and a memory limit on every container, pinned images.
package main

import rego.v1

deny contains msg if {
	some obj in workloads
	obj.kind in long_running_kinds
	some entry in containers(obj)
	not entry.init
	some probe in ["readinessProbe", "livenessProbe"]
	not entry.c[probe]
	msg := sprintf("%s: container %s has no %s", [name(obj), entry.c.name, probe])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	some resource in ["cpu", "memory"]
	not entry.c.resources.requests[resource]
	msg := sprintf("%s: container %s has no %s request", [name(obj), entry.c.name, resource])
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	not entry.c.resources.limits.memory
	msg := sprintf("%s: container %s has no memory limit", [name(obj), entry.c.name])
}

# An image is pinned by a digest, or by a tag other than latest.
pinned(image) if contains(image, "@sha256:")

pinned(image) if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
	tag != ""
	tag != "latest"
}

deny contains msg if {
	some obj in workloads
	some entry in containers(obj)
	not pinned(entry.c.image)
	msg := sprintf("%s: container %s: image %s is not pinned (a tag other than latest, or a digest)", [name(obj), entry.c.name, entry.c.image])
}
