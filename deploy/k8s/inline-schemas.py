#!/usr/bin/env python3
"""Makes kubernetes-validate's per-kind JSON schemas standalone, for kubeconform.

Each schema of a kubernetes-validate folder (e.g. v1.36.0-local-strict) points at one shared
file, "/api/_definitions.json#/$defs/<name>". kubeconform loads one file per kind and cannot
follow those references, so this copies into every schema the definitions it reaches (directly or
through other definitions) under its own "$defs" and rewrites each reference to "#/$defs/<name>".
The aggregate files (_definitions.json, all.json) are left out.

Usage: inline-schemas.py <source folder> <target folder>
"""

import json
import os
import sys

SHARED = "/api/_definitions.json#/$defs/"
LOCAL = "#/$defs/"


def refs(node, found):
    """Collects the definition names a schema node refers to, and rewrites the references."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            # Kinds refer into the shared file; definitions inside it refer to one another.
            if ref.startswith(SHARED):
                name = ref[len(SHARED):]
            elif ref.startswith(LOCAL):
                name = ref[len(LOCAL):]
            else:
                raise SystemExit(f"unexpected $ref {ref!r}: not into {SHARED}")
            node["$ref"] = "#/$defs/" + name
            found.add(name)
        for value in node.values():
            refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def main(source, target):
    with open(os.path.join(source, "_definitions.json"), encoding="utf-8") as f:
        shared = json.load(f)["$defs"]
    # Every definition, its references rewritten, and the names it reaches in one step.
    direct = {}
    for name, schema in shared.items():
        found = set()
        refs(schema, found)
        direct[name] = found
    os.makedirs(target, exist_ok=True)
    count = 0
    for file in sorted(os.listdir(source)):
        if not file.endswith(".json") or file in ("_definitions.json", "all.json"):
            continue
        with open(os.path.join(source, file), encoding="utf-8") as f:
            schema = json.load(f)
        pending = set()
        refs(schema, pending)
        reached = set()
        while pending:
            name = pending.pop()
            if name in reached:
                continue
            if name not in shared:
                raise SystemExit(f"{file}: $ref to an unknown definition {name!r}")
            reached.add(name)
            pending |= direct[name] - reached
        if reached:
            schema["$defs"] = {name: shared[name] for name in sorted(reached)}
        with open(os.path.join(target, file), "w", encoding="utf-8") as f:
            json.dump(schema, f, separators=(",", ":"), sort_keys=True)
        count += 1
    print(f"{count} standalone schemas in {target}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
