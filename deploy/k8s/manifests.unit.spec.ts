import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

// The manifests (k8s/) against the code they deploy, without a cluster: every variable they set
// is one a service reads, every metric an alert uses is one a service exports, every Secret they
// mount is one deploy/k8s/secrets.sh makes, and NATS runs the version the project tests with.
// (Schemas and policies: deploy/k8s/check.sh.)

const repoRoot = join(import.meta.dirname, "../..");
const read = (path: string) => readFileSync(join(repoRoot, path), "utf8");

function files(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(repoRoot, dir))) {
    const path = join(dir, name);
    if (name === "node_modules" || name === "gen") continue;
    if (statSync(join(repoRoot, path)).isDirectory()) out.push(...files(path, suffix));
    else if (name.endsWith(suffix)) out.push(path);
  }
  return out;
}

const manifests = files("k8s", ".yaml").map((path) => ({ path, text: read(path) }));
const sources = [...files("libs", ".ts"), ...files("services", ".ts")]
  .filter((path) => !path.includes(".spec.") && !path.includes("/testing/"))
  .map((path) => read(path))
  .join("\n");

/** The variables set in the manifests: env entries, ConfigMap literals, patched-in env entries. */
function variablesSet(): Map<string, string> {
  const found = new Map<string, string>();
  for (const { path, text } of manifests) {
    for (const m of text.matchAll(/^\s*(?:- )?name: ([A-Z][A-Z0-9_]+)\s*$/gm)) {
      found.set(m[1] as string, path);
    }
    for (const m of text.matchAll(/^\s*- ([A-Z][A-Z0-9_]+)=/gm)) found.set(m[1] as string, path);
  }
  return found;
}

// Set for the images of others (NATS) or by the Downward API for the manifests themselves.
const notOurs = new Set(["POD_NAME", "SERVER_NAME", "GOMEMLIMIT", "JOB_NAME"]);
// The in-cluster Neo4j image's own settings.
const neo4jImage = /^NEO4J_(AUTH|server_)/;

describe("the Kubernetes manifests", () => {
  it("set only variables the services and ctx read", () => {
    const unknown: string[] = [];
    for (const [name, path] of variablesSet()) {
      if (notOurs.has(name) || neo4jImage.test(name)) continue;
      const base = name.replace(/^SNAPSHOTTER_(?=NATS_)/, "");
      const known = new RegExp(`(^|[^A-Z0-9_])"?${base}"?\\??:|"${base}"|\`${base}\``).test(
        sources,
      );
      if (!known) unknown.push(`${name} (${relative(repoRoot, join(repoRoot, path))})`);
    }
    expect(unknown).toEqual([]);
  });

  it("alert on metrics the services export", () => {
    const rules = read("k8s/base/monitoring/prometheus-rules.yaml");
    const ours = new Set(
      [...rules.matchAll(/\b((?:ctx|grpc_server)_[a-z_]*)\{/g)].map((m) => m[1] as string),
    );
    expect(ours.size).toBeGreaterThan(5);
    const missing = [...ours].filter((metric) => !sources.includes(`name: "${metric}"`));
    expect(missing).toEqual([]);
  });

  it("mount only Secrets deploy/k8s/secrets.sh makes", () => {
    const script = read("deploy/k8s/secrets.sh");
    const array = (name: string) =>
      (new RegExp(`^${name}=\\(([^)]*)\\)`, "m").exec(script)?.[1] ?? "")
        .split(/\s+/)
        .filter(Boolean);
    const made = new Set([
      ...[...script.matchAll(/^\s*secret ([a-z0-9-]+) /gm)].map((m) => m[1] as string),
      ...array("NATS_ROLES").map((role) => `nats-user-${role}`),
      ...array("VALKEY_USERS").map((user) => `valkey-user-${user}`),
    ]);
    const referenced = new Set<string>();
    for (const { text } of manifests) {
      for (const m of text.matchAll(/secretName: ([a-z0-9-]+)/g)) referenced.add(m[1] as string);
      for (const m of text.matchAll(/secretKeyRef:\s*\n\s*name: ([a-z0-9-]+)/g)) {
        referenced.add(m[1] as string);
      }
    }
    expect(referenced.size).toBeGreaterThan(10);
    expect([...referenced].filter((s) => !made.has(s))).toEqual([]);
  });

  it("run the NATS server version the project tests with", () => {
    const version = /^NATS_SERVER_VERSION=(\S+)$/m.exec(read("versions.env"))?.[1];
    expect(version).toBeDefined();
    const images = manifests.flatMap(({ text }) => [
      ...[...text.matchAll(/image: nats:(\S+)/g)].map((m) => m[1]),
      ...[...text.matchAll(/- name: nats\n\s*newTag: (\S+)/g)].map((m) => m[1]),
    ]);
    expect(images.length).toBeGreaterThan(0);
    for (const tag of images) expect(tag).toBe(`${version}-alpine`);
  });
});
