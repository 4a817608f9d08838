import { resolve } from "node:path";
import { eventually } from "@ctx/test-support";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createKubectl } from "./support/kubectl.ts";
import { pods, rolloutProblems } from "./support/workloads.ts";

// The control plane itself, on a fixture of our own (fixtures/control-plane): before the prod
// overlay is judged on it, it must show that it can fail it. Pod Security `restricted` is enforced,
// claims get volumes, pods spread over the three zones.
const kubectl = createKubectl(inject("kubeconfig"));
const fixture = resolve(import.meta.dirname, "fixtures/control-plane");
const namespace = "cp-fixture";

describe("the test control plane", () => {
  afterAll(async () => {
    await kubectl.ok([
      "delete",
      "namespace",
      namespace,
      "--ignore-not-found",
      "--wait=true",
      "--timeout=120s",
    ]);
  });

  it("has three Ready nodes, one per zone", async () => {
    const nodes = await kubectl.json<{
      items: { metadata: { labels: Record<string, string> } }[];
    }>(["get", "nodes", "-l", "type=kwok"]);
    const zones = nodes.items.map((n) => n.metadata.labels["topology.kubernetes.io/zone"]);
    expect(new Set(zones)).toEqual(new Set(["zone-a", "zone-b", "zone-c"]));
  });

  it("rolls out a StatefulSet with a volume per pod and a Deployment, spread over the zones", async () => {
    const applied = await kubectl.run(["apply", "--server-side", "-k", fixture]);
    expect(applied.stderr).toBe("");
    expect(applied.code).toBe(0);
    await eventually(async () => expect(await rolloutProblems(kubectl, namespace)).toEqual([]), {
      timeout: 120_000,
      interval: 500,
    });
    const nodes = await kubectl.json<{
      items: { metadata: { name: string; labels: Record<string, string> } }[];
    }>(["get", "nodes"]);
    const zoneOf = new Map(
      nodes.items.map((n) => [n.metadata.name, n.metadata.labels["topology.kubernetes.io/zone"]]),
    );
    const storeZones = (await pods(kubectl, namespace))
      .filter((p) => p.metadata.labels?.app === "store")
      .map((p) => zoneOf.get(p.spec.nodeName ?? ""));
    expect(new Set(storeZones)).toEqual(new Set(["zone-a", "zone-b", "zone-c"]));
  });

  it("refuses a pod that breaks Pod Security restricted in a namespace that enforces it", async () => {
    // Root by default, privilege escalation allowed, capabilities kept, no seccomp profile: every
    // rule of restricted broken, none that the API server refuses on its own (privileged: true is
    // refused before Pod Security sees it, by --allow-privileged=false).
    const rootful = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "rootful-pod", namespace },
      spec: { containers: [{ name: "c", image: "registry.example.com/x:1" }] },
    };
    const refused = await kubectl.run(["apply", "--server-side", "-f", "-"], {
      input: JSON.stringify(rootful),
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('violates PodSecurity "restricted:latest"');
  });

  it("warns on a workload whose pod template breaks restricted (what the apply test checks for)", async () => {
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "rootful", namespace },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: "rootful" } },
        template: {
          metadata: { labels: { app: "rootful" } },
          spec: { containers: [{ name: "c", image: "registry.example.com/x:1" }] },
        },
      },
    };
    const applied = await kubectl.run(["apply", "--server-side", "-f", "-"], {
      input: JSON.stringify(deployment),
    });
    expect(applied.code).toBe(0);
    expect(applied.stderr).toMatch(/Warning: would violate PodSecurity "restricted:latest"/);
  });
});
