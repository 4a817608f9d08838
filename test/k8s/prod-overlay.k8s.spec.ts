import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { eventually } from "@ctx/test-support";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createKubectl, type KubectlResult } from "./support/kubectl.ts";
import { earlierManifests, type Rendered, render } from "./support/manifests.ts";
import {
  isReady,
  type KubeObject,
  pdbStatusProblems,
  pdbs,
  pods,
  rolloutProblems,
  selects,
} from "./support/workloads.ts";

// make test-k8s: the prod overlay on a real API server, controller-manager and scheduler with kwok
// nodes in three zones (deploy/k8s/control-plane.sh). What an operator does on day one (apply,
// wait for the roll-out), on a node's maintenance day (drain) and on upgrade day (apply the new
// manifests over the old ones).
const repoRoot = resolve(import.meta.dirname, "../..");
const overlay = "overlays/prod";
const kubectl = createKubectl(inject("kubeconfig"));
const fieldManager = "make-test-k8s";
const rollout = { timeout: 180_000, interval: 1_000 };

const current = render(resolve(repoRoot, "k8s", overlay));
const earlier = earlierManifests(repoRoot, overlay);

/** The namespace the overlay creates; the test fails unless it enforces restricted. */
function namespaceOf(rendered: Rendered): KubeObject {
  const namespaces = rendered.objects.filter((o) => o.kind === "Namespace");
  expect(namespaces.map((n) => n.metadata.name)).toHaveLength(1);
  return namespaces[0] as KubeObject;
}
const namespace = namespaceOf(current).metadata.name;

function apply(rendered: Rendered): Promise<KubectlResult> {
  return kubectl.run(["apply", "--server-side", "--field-manager", fieldManager, "-f", "-"], {
    input: rendered.yaml,
  });
}

/** Applied without an error, a denial or a warning (Pod Security warns on workloads it would refuse pods of). */
function expectClean(result: KubectlResult): void {
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).toBe("");
}

async function expectRolledOut(): Promise<void> {
  await eventually(
    async () => expect(await rolloutProblems(kubectl, namespace)).toEqual([]),
    rollout,
  );
}

async function kwokNodes(): Promise<string[]> {
  const out = await kubectl.ok([
    "get",
    "nodes",
    "-l",
    "type=kwok",
    "-o",
    "jsonpath={.items[*].metadata.name}",
  ]);
  return out.split(" ").filter(Boolean).sort();
}

async function podsOn(node: string): Promise<string[]> {
  return (await pods(kubectl, namespace))
    .filter((p) => p.spec.nodeName === node && p.metadata.deletionTimestamp === undefined)
    .map((p) => p.metadata.name)
    .sort();
}

describe(`the ${overlay} overlay on a real control plane`, () => {
  afterAll(() => {
    if (earlier) rmSync(earlier.checkoutDir, { recursive: true, force: true });
  });

  it("is applied server-side into a namespace that enforces Pod Security restricted, without warnings or denials", async () => {
    const labels = namespaceOf(current).metadata.labels ?? {};
    expect(labels["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    expectClean(await apply(current));
    const live = await kubectl.json<KubeObject>(["get", "namespace", namespace]);
    expect(live.metadata.labels?.["pod-security.kubernetes.io/enforce"]).toBe("restricted");
  });

  it("rolls out: StatefulSets ready, Deployments available, Jobs complete, every claim bound", async () => {
    await expectRolledOut();
    const workloads = await kubectl.ok([
      "get",
      "statefulsets,deployments,pvc",
      "-n",
      namespace,
      "-o",
      "name",
    ]);
    expect(workloads).toMatch(/statefulset/);
  });

  describe("kubectl drain", () => {
    let nodes: string[] = [];
    beforeAll(async () => {
      nodes = await kwokNodes();
      expect(nodes.length).toBeGreaterThanOrEqual(3);
      // Every node cordoned first: an evicted pod cannot come back elsewhere, so the second drain
      // meets budgets that the first one has used up.
      for (const node of nodes) await kubectl.ok(["cordon", node]);
      return async () => {
        for (const node of nodes) await kubectl.ok(["uncordon", node]);
      };
    });

    it("of one node evicts its pods: every budget allows one disruption", async () => {
      const node = nodes[0] as string;
      expect(await podsOn(node)).not.toEqual([]);
      const drained = await kubectl.run([
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
      ]);
      expect(drained.stderr).not.toMatch(/disruption budget/);
      expect(drained.code).toBe(0);
      await eventually(async () => expect(await podsOn(node)).toEqual([]), {
        timeout: 60_000,
        interval: 500,
      });
      for (const b of await pdbs(kubectl, namespace)) {
        expect(b.status?.currentHealthy ?? 0, `PDB ${b.metadata.name}`).toBeGreaterThanOrEqual(
          b.status?.desiredHealthy ?? 0,
        );
      }
    });

    it("of a second node waits for, and does not evict, the pods whose budget is used up", async () => {
      const node = nodes[1] as string;
      await eventually(
        async () => expect(await pdbStatusProblems(kubectl, namespace)).toEqual([]),
        {
          timeout: 60_000,
          interval: 500,
        },
      );
      const [budgets, all] = await Promise.all([
        pdbs(kubectl, namespace),
        pods(kubectl, namespace),
      ]);
      const exhausted = budgets.filter((b) => b.status?.disruptionsAllowed === 0);
      const blocked = all
        .filter((p) => p.spec.nodeName === node && isReady(p))
        .filter((p) => exhausted.some((b) => selects(b.spec.selector, p.metadata.labels)))
        .map((p) => p.metadata.name)
        .sort();
      // NATS's three pods are spread over the three zones, and its budget allows one down.
      expect(blocked, "pods on the second node protected by a used-up budget").not.toEqual([]);

      const drained = await kubectl.run([
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=20s",
      ]);
      expect(drained.code).not.toBe(0);
      expect(drained.stderr).toMatch(/violate the pod's disruption budget/);
      const left = await podsOn(node);
      for (const p of blocked) expect(left).toContain(p);
      for (const b of await pdbs(kubectl, namespace)) {
        expect(b.status?.currentHealthy ?? 0, `PDB ${b.metadata.name}`).toBeGreaterThanOrEqual(
          b.status?.desiredHealthy ?? 0,
        );
      }
    });
  });

  it("rolls out again once the nodes are back", async () => {
    await expectRolledOut();
  });

  it("applies again cleanly and without changing any object (an apply in CD or by hand is a no-op)", async () => {
    const generations = async (): Promise<Map<string, number | undefined>> => {
      const out = await kubectl.ok(["get", "-f", "-", "-o", "json"], { input: current.yaml });
      const live = JSON.parse(out) as { items: KubeObject[] };
      return new Map(
        live.items.map((o) => [`${o.kind}/${o.metadata.name}`, o.metadata.generation]),
      );
    };
    await expectRolledOut();
    const before = await generations();
    expectClean(await apply(current));
    expect(await generations()).toEqual(before);
    await expectRolledOut();
  });

  if (earlier) {
    it(`upgrades: the manifests of ${earlier.commit.slice(0, 12)} ("${earlier.subject}"), then the current ones, apply and roll out`, async () => {
      await kubectl.ok(["delete", "namespace", namespace, "--wait=true", "--timeout=180s"]);
      const before = render(earlier.overlayDir);
      // The earlier version's own warnings were judged when it was current: here it must only apply.
      const applied = await apply(before);
      expect(applied.code, applied.stderr).toBe(0);
      await expectRolledOut();
      // The upgrade as docs/DEPLOYMENT.md has it: the finished provisioning Job goes first (a
      // Job's pod template cannot change), by its label, whatever an earlier version named it.
      await kubectl.ok([
        "-n",
        namespace,
        "delete",
        "job",
        "-l",
        "app.kubernetes.io/name=ctx-provision",
        "--ignore-not-found",
        "--wait=true",
      ]);
      expectClean(await apply(current));
      await expectRolledOut();
    });
  } else {
    // Nothing to upgrade from yet: say so in the test's name (the test above checks what an
    // upgrade needs at least).
    it.skip("has no earlier manifests in git history (k8s/ is new): no upgrade to check", () => {});
  }
});
