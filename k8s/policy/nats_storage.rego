# JetStream's file store against the volume it lives on (issue #23): a StatefulSet running a
# nats-server configuration with JetStream keeps the store on one of its volume claims, and caps
# it with max_file_store at most 90 % of that claim. Under the cap the server refuses writes with
# "insufficient resources", which clients retry; a full volume fails them mid-write instead. 90 %,
# not just below 100 %: ext4 keeps 5 % for root by default (nats runs as uid 1000) and the
# filesystem's own metadata takes more.
package main

import rego.v1

max_file_store_share := 90

# Sizes as nats-server reads them (checked against 2.15: /varz jetstream.config.max_storage): a
# bare number is bytes, K M G T are powers of 1000, KB KI KIB (and M, G, T alike) powers of 1024,
# in any case: 9G is 9,000,000,000 bytes, 9GB is 9 GiB.
nats_size_units := {
	"": 1,
	"k": 1000, "kb": 1024, "ki": 1024, "kib": 1024,
	"m": 1000000, "mb": 1048576, "mi": 1048576, "mib": 1048576,
	"g": 1000000000, "gb": 1073741824, "gi": 1073741824, "gib": 1073741824,
	"t": 1000000000000, "tb": 1099511627776, "ti": 1099511627776, "tib": 1099511627776,
}

# Each file of a ConfigMap a StatefulSet mounts that configures JetStream.
jetstream_configs contains conf if {
	some sts in objects
	sts.kind == "StatefulSet"
	some volume in object.get(pod_spec(sts), "volumes", [])
	some cm in objects
	cm.kind == "ConfigMap"
	cm.metadata.name == volume.configMap.name
	some file, text in object.get(cm, "data", {})
	regex.match(`(?m)^[ \t]*jetstream[ \t]*[:=]?[ \t]*\{`, text)
	conf := {"sts": sts, "where": sprintf("%s of ConfigMap %s", [file, cm.metadata.name]), "text": text}
}

# A setting's values (nats.conf: `key: value`, `key = value` or `key value`; aliases included).
conf_values(text, keys) := [m[1] |
	some m in regex.find_all_string_submatch_n(
		sprintf(`(?m)^[ \t]*(?:%s)[ \t]*[:= \t][ \t]*"?([^"\s#;,]+)`, [keys]),
		text, -1,
	)
]

store_dirs(conf) := conf_values(conf.text, "store_dir|storedir|store")

file_store_limits(conf) := conf_values(conf.text, "max_file_store|max_file")

nats_bytes(value) := to_number(m[1]) * nats_size_units[lower(m[2])] if {
	m := regex.find_all_string_submatch_n(`^([0-9]+)([A-Za-z]*)$`, value, 1)[0]
}

# The volume claim template a path of the pods is on: the claim of the deepest mount holding it.
claim_holding(sts, path) := claim if {
	mounts := [m |
		some c in pod_spec(sts).containers
		some m in object.get(c, "volumeMounts", [])
		mounted_under(path, m.mountPath)
	]
	deepest := max({count(m.mountPath) | some m in mounts})
	some m in mounts
	count(m.mountPath) == deepest
	some claim in object.get(sts.spec, "volumeClaimTemplates", [])
	claim.metadata.name == m.name
}

mounted_under(path, mount) if path == mount

mounted_under(path, mount) if startswith(path, concat("", [trim_suffix(mount, "/"), "/"]))

deny contains msg if {
	some conf in jetstream_configs
	count(store_dirs(conf)) == 0
	msg := sprintf("%s: %s enables JetStream without a store_dir: the store would not be on a volume claim", [name(conf.sts), conf.where])
}

deny contains msg if {
	some conf in jetstream_configs
	some dir in store_dirs(conf)
	not claim_holding(conf.sts, dir)
	msg := sprintf("%s: the JetStream store_dir %s (%s) is on no volume claim template of the StatefulSet", [name(conf.sts), dir, conf.where])
}

deny contains msg if {
	some conf in jetstream_configs
	count([b | some v in file_store_limits(conf); b := nats_bytes(v)]) == 0
	msg := sprintf("%s: %s sets no max_file_store (a number with an optional unit): JetStream would size the store from the free disk at start, not from the volume claim", [name(conf.sts), conf.where])
}

deny contains msg if {
	some conf in jetstream_configs
	some dir in store_dirs(conf)
	claim := claim_holding(conf.sts, dir)
	requested := claim.spec.resources.requests.storage
	claim_bytes := units.parse_bytes(requested)
	some limit in file_store_limits(conf)
	limit_bytes := nats_bytes(limit)
	limit_bytes * 100 > claim_bytes * max_file_store_share
	msg := sprintf("%s: max_file_store %s (%s) is %s %% of the volume claim %s (%s) holding %s; keep it at most %d %%, so that JetStream refuses writes before the volume is full", [name(conf.sts), limit, conf.where, percent(limit_bytes, claim_bytes), claim.metadata.name, requested, dir, max_file_store_share])
}

# part / whole in per cent, one decimal: "88.5".
percent(part, whole) := sprintf("%d.%d", [floor(tenths / 10), tenths % 10]) if {
	tenths := round((part * 1000) / whole)
}
