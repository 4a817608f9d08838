# Tests of the policies (conftest verify --policy k8s/policy): a workload that passes every rule,
# then one failing fixture per rule, derived from it by a JSON patch, each shown to fire with its
# own message. The inputs have the shape conftest --combine gives: [{path, contents}].
package main

import rego.v1

good_pod := {
	"metadata": {"labels": {"app.kubernetes.io/name": "demo"}},
	"spec": {
		"automountServiceAccountToken": false,
		"securityContext": {
			"runAsNonRoot": true,
			"runAsUser": 10001,
			"seccompProfile": {"type": "RuntimeDefault"},
		},
		"initContainers": [container("init", false)],
		"containers": [container("app", true)],
		"volumes": [{"name": "tmp", "emptyDir": {}}],
	},
}

container(name, probes) := object.union(
	{
		"name": name,
		"image": "registry.example.com/demo:1.0.0",
		"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
		"securityContext": {
			"allowPrivilegeEscalation": false,
			"readOnlyRootFilesystem": true,
			"capabilities": {"drop": ["ALL"]},
		},
	},
	probe_fields(probes),
)

probe_fields(true) := {
	"readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
	"livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
}

probe_fields(false) := {}

good_deployment := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "demo"},
	"spec": {
		"replicas": 2,
		"selector": {"matchLabels": {"app.kubernetes.io/name": "demo"}},
		"template": good_pod,
	},
}

good_job := {
	"apiVersion": "batch/v1",
	"kind": "Job",
	"metadata": {"name": "demo-job"},
	"spec": {"template": json.patch(good_pod, [
		{"op": "replace", "path": "/metadata/labels", "value": {"app.kubernetes.io/name": "demo-job"}},
		{"op": "replace", "path": "/spec/containers/0", "value": container("job", false)},
	])},
}

network_policy(selector) := {
	"apiVersion": "networking.k8s.io/v1",
	"kind": "NetworkPolicy",
	"metadata": {"name": "np"},
	"spec": {"podSelector": selector, "policyTypes": ["Ingress"]},
}

pdb := {
	"apiVersion": "policy/v1",
	"kind": "PodDisruptionBudget",
	"metadata": {"name": "demo"},
	"spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "demo"}}},
}

namespace(labels) := {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "labels": labels}}

good_objects := [
	namespace({"pod-security.kubernetes.io/enforce": "restricted"}),
	good_deployment,
	good_job,
	network_policy({"matchLabels": {"app.kubernetes.io/name": "demo"}}),
	network_policy({"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["demo-job"]}]}),
	pdb,
]

combined(objs) := [{"path": sprintf("fixture-%d.yaml", [i]), "contents": o} | some i, o in objs]

# The good fixture with the Deployment (index 1) changed by a JSON patch.
with_deployment(ops) := combined(array.concat(
	array.concat(array.slice(good_objects, 0, 1), [json.patch(good_deployment, ops)]),
	array.slice(good_objects, 2, count(good_objects)),
))

# fires(inputs, text): some denial of the inputs mentions text.
fires(inputs, text) if {
	msgs := deny with input as inputs
	some msg in msgs
	contains(msg, text)
}

test_good_fixture_passes if {
	msgs := deny with input as combined(good_objects)
	count(msgs) == 0
}

test_the_real_manifests_shape_a_cronjob_is_checked if {
	cron := {
		"apiVersion": "batch/v1",
		"kind": "CronJob",
		"metadata": {"name": "cron"},
		"spec": {"jobTemplate": {"spec": {"template": json.patch(good_job.spec.template, [
			{"op": "remove", "path": "/spec/automountServiceAccountToken"},
		])}}},
	}
	fires(combined(array.concat(good_objects, [cron])), "CronJob/cron: the pod must set automountServiceAccountToken: false")
}

test_root_pod_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/securityContext/runAsNonRoot"}]), "runAsNonRoot")
}

test_uid_0_denied if {
	fires(with_deployment([{"op": "replace", "path": "/spec/template/spec/securityContext/runAsUser", "value": 0}]), "must not run as uid 0")
}

test_no_seccomp_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/securityContext/seccompProfile"}]), "RuntimeDefault")
}

test_host_network_denied if {
	fires(with_deployment([{"op": "add", "path": "/spec/template/spec/hostNetwork", "value": true}]), "must not use hostNetwork")
}

test_host_path_denied if {
	fires(with_deployment([{"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "host", "hostPath": {"path": "/"}}}]), "volume host is a hostPath")
}

test_privilege_escalation_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/containers/0/securityContext/allowPrivilegeEscalation"}]), "container app must set allowPrivilegeEscalation: false")
}

test_init_container_checked_too if {
	fires(with_deployment([{"op": "replace", "path": "/spec/template/spec/initContainers/0/securityContext/allowPrivilegeEscalation", "value": true}]), "container init must set allowPrivilegeEscalation: false")
}

test_capabilities_kept_denied if {
	fires(with_deployment([{"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/capabilities/drop", "value": ["NET_RAW"]}]), "must drop ALL capabilities")
}

test_capability_added_denied if {
	fires(with_deployment([{"op": "add", "path": "/spec/template/spec/containers/0/securityContext/capabilities/add", "value": ["NET_BIND_SERVICE"]}]), "must add no capability")
}

test_privileged_denied if {
	fires(with_deployment([{"op": "add", "path": "/spec/template/spec/containers/0/securityContext/privileged", "value": true}]), "must not be privileged")
}

test_writable_root_denied if {
	fires(with_deployment([{"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem", "value": false}]), "readOnlyRootFilesystem")
}

test_container_uid_0_denied if {
	fires(with_deployment([{"op": "add", "path": "/spec/template/spec/containers/0/securityContext/runAsUser", "value": 0}]), "container app must not run as uid 0")
}

test_token_automount_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/automountServiceAccountToken"}]), "Deployment/demo: the pod must set automountServiceAccountToken: false")
}

test_namespace_not_restricted_denied if {
	objs := array.concat([namespace({"pod-security.kubernetes.io/enforce": "baseline"})], array.slice(good_objects, 1, count(good_objects)))
	fires(combined(objs), "Namespace/demo: must be labelled")
}

test_missing_readiness_probe_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/containers/0/readinessProbe"}]), "container app has no readinessProbe")
}

test_missing_liveness_probe_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/containers/0/livenessProbe"}]), "container app has no livenessProbe")
}

test_jobs_need_no_probes if {
	msgs := deny with input as combined(good_objects)
	not any_mentions(msgs, "demo-job")
}

any_mentions(msgs, text) if {
	some msg in msgs
	contains(msg, text)
}

test_missing_cpu_request_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/containers/0/resources/requests/cpu"}]), "container app has no cpu request")
}

test_missing_memory_request_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/initContainers/0/resources/requests/memory"}]), "container init has no memory request")
}

test_missing_memory_limit_denied if {
	fires(with_deployment([{"op": "remove", "path": "/spec/template/spec/containers/0/resources/limits"}]), "container app has no memory limit")
}

test_latest_tag_denied if {
	fires(with_deployment([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com/demo:latest"}]), "is not pinned")
}

test_untagged_image_denied if {
	fires(with_deployment([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com:5000/demo"}]), "is not pinned")
}

test_digest_accepted if {
	msgs := deny with input as with_deployment([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com/demo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}])
	count(msgs) == 0
}

test_registry_port_with_tag_accepted if {
	msgs := deny with input as with_deployment([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com:5000/demo:1.2.3"}])
	count(msgs) == 0
}

test_workload_without_network_policy_denied if {
	fires(with_deployment([{"op": "replace", "path": "/spec/template/metadata/labels", "value": {"app.kubernetes.io/name": "other"}}]), "Deployment/demo: no NetworkPolicy")
}

test_default_deny_alone_is_not_enough if {
	objs := [
		good_objects[0], good_deployment, good_job, network_policy({}),
		network_policy({"matchLabels": {"app.kubernetes.io/name": "demo-job"}}), pdb,
	]
	fires(combined(objs), "Deployment/demo: no NetworkPolicy")
}

test_match_expressions_not_in_excludes if {
	objs := [
		good_objects[0], good_deployment, good_job,
		network_policy({"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["demo", "demo-job"]}]}),
		pdb,
	]
	fires(combined(objs), "Deployment/demo: no NetworkPolicy")
}

test_replicated_workload_without_pdb_denied if {
	objs := array.slice(good_objects, 0, count(good_objects) - 1)
	fires(combined(objs), "Deployment/demo: runs up to 2 replicas but no PodDisruptionBudget")
}

test_single_replica_needs_no_pdb if {
	objs := array.slice(good_objects, 0, count(good_objects) - 1)
	msgs := deny with input as combined([
		objs[0], json.patch(good_deployment, [{"op": "replace", "path": "/spec/replicas", "value": 1}]), objs[2], objs[3], objs[4],
	])
	count(msgs) == 0
}

test_autoscaled_workload_without_pdb_denied if {
	hpa := {
		"apiVersion": "autoscaling/v2",
		"kind": "HorizontalPodAutoscaler",
		"metadata": {"name": "demo"},
		"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}, "minReplicas": 1, "maxReplicas": 4},
	}
	objs := array.slice(good_objects, 0, count(good_objects) - 1)
	fires(
		combined([
			objs[0], json.patch(good_deployment, [{"op": "remove", "path": "/spec/replicas"}]), objs[2], objs[3], objs[4], hpa,
		]),
		"Deployment/demo: runs up to 4 replicas",
	)
}

# JetStream's file store against its volume claim (nats_storage.rego): a StatefulSet and the
# ConfigMap it mounts, shaped as k8s/base/nats renders them.
nats_conf(max_file_store) := sprintf(`server_name: $SERVER_NAME
jetstream {
  store_dir: /data/jetstream
  # a comment: max_file_store: 1T
  %s
  max_memory_store: 256M
}
`, [max_file_store])

nats_objects(max_file_store, claim) := combined([
	{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nats-config-abc"}, "data": {"nats.conf": nats_conf(max_file_store)}},
	{
		"apiVersion": "apps/v1",
		"kind": "StatefulSet",
		"metadata": {"name": "nats"},
		"spec": {
			"template": {"spec": {
				"containers": [
					{"name": "nats", "volumeMounts": [
						{"name": "config", "mountPath": "/etc/nats-config"},
						{"name": "data", "mountPath": "/data"},
					]},
					{"name": "exporter"},
				],
				"volumes": [{"name": "config", "configMap": {"name": "nats-config-abc"}}],
			}},
			"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": claim}}}}],
		},
	},
])

test_max_file_store_below_the_claim_accepted if {
	not fires(nats_objects("max_file_store: 9G", "10Gi"), "max_file_store")
	not fires(nats_objects("max_file_store: 95G", "100Gi"), "max_file_store")
	not fires(nats_objects("max_file = 90GB", "100Gi"), "max_file_store")
}

test_max_file_store_as_large_as_the_claim_denied if {
	fires(nats_objects("max_file_store: 10G", "10G"), "StatefulSet/nats: max_file_store 10G (nats.conf of ConfigMap nats-config-abc) is 100.0 % of the volume claim data (10G) holding /data/jetstream; keep it at most 90 %")
}

test_max_file_store_above_the_claim_denied if {
	fires(nats_objects("max_file_store: 95G", "10Gi"), "is 884.8 % of the volume claim data (10Gi)")
}

# nats-server reads GB as GiB: 95GB on 100Gi leaves 5 %, too little; 95G leaves 11.5 %.
test_max_file_store_units_as_nats_reads_them if {
	fires(nats_objects("max_file_store: 95GB", "100Gi"), "is 95.0 % of the volume claim data")
	not fires(nats_objects("max_file_store: 95G", "100Gi"), "max_file_store")
}

test_max_file_store_missing_denied if {
	fires(nats_objects("", "10Gi"), "StatefulSet/nats: nats.conf of ConfigMap nats-config-abc sets no max_file_store")
}

test_store_dir_off_the_claim_denied if {
	objs := nats_objects("max_file_store: 9G", "10Gi")
	moved := [{"path": objs[0].path, "contents": json.patch(objs[0].contents, [{"op": "replace", "path": "/data/nats.conf", "value": replace(nats_conf("max_file_store: 9G"), "/data/jetstream", "/tmp/jetstream")}])}, objs[1]]
	fires(moved, "the JetStream store_dir /tmp/jetstream (nats.conf of ConfigMap nats-config-abc) is on no volume claim template")
}
