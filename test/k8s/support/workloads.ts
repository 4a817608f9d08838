import type { Kubectl } from "./kubectl.ts";

/** The few fields of Kubernetes objects these tests read. */
export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid?: string;
  readonly generation?: number;
  readonly labels?: Readonly<Record<string, string>>;
  readonly deletionTimestamp?: string;
  readonly ownerReferences?: readonly { readonly kind: string; readonly name: string }[];
}

export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
}

interface List<T> {
  readonly items: readonly T[];
}

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly {
    readonly key: string;
    readonly operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    readonly values?: readonly string[];
  }[];
}

export interface Pod extends KubeObject {
  readonly spec: { readonly nodeName?: string };
  readonly status: { readonly phase?: string; readonly conditions?: readonly Condition[] };
}

export interface Pdb extends KubeObject {
  readonly spec: { readonly selector?: LabelSelector };
  readonly status?: {
    readonly currentHealthy?: number;
    readonly desiredHealthy?: number;
    readonly disruptionsAllowed?: number;
    readonly expectedPods?: number;
    readonly observedGeneration?: number;
  };
}

interface StatefulSet extends KubeObject {
  readonly spec: { readonly replicas?: number };
  readonly status: {
    readonly observedGeneration?: number;
    readonly readyReplicas?: number;
    readonly updatedReplicas?: number;
    readonly currentRevision?: string;
    readonly updateRevision?: string;
  };
}

interface Deployment extends KubeObject {
  readonly spec: { readonly replicas?: number };
  readonly status: {
    readonly observedGeneration?: number;
    readonly updatedReplicas?: number;
    readonly availableReplicas?: number;
    readonly conditions?: readonly Condition[];
  };
}

interface Hpa extends KubeObject {
  readonly spec: {
    readonly scaleTargetRef: { readonly kind: string; readonly name: string };
    readonly minReplicas?: number;
    readonly maxReplicas: number;
  };
}

interface Job extends KubeObject {
  readonly status: { readonly conditions?: readonly Condition[] };
}

interface Claim extends KubeObject {
  readonly status: { readonly phase?: string };
}

interface KubeEvent extends KubeObject {
  readonly type: string;
  readonly reason: string;
  readonly message: string;
  readonly involvedObject: { readonly kind: string; readonly name: string };
}

/** Does a label selector select these labels (the PDB's and the workloads' semantics)? */
export function selects(
  selector: LabelSelector | undefined,
  labels: Readonly<Record<string, string>> = {},
): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {}))
    if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const inValues = value !== undefined && (e.values ?? []).includes(value);
    switch (e.operator) {
      case "In":
        if (!inValues) return false;
        break;
      case "NotIn":
        if (inValues) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default: {
        const never: never = e.operator;
        throw new Error(`unknown selector operator ${String(never)}`);
      }
    }
  }
  return true;
}

export const isReady = (pod: Pod): boolean =>
  pod.metadata.deletionTimestamp === undefined &&
  pod.status.phase === "Running" &&
  (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");

export async function pods(kubectl: Kubectl, namespace: string): Promise<readonly Pod[]> {
  return (await kubectl.json<List<Pod>>(["get", "pods", "-n", namespace])).items;
}

export async function pdbs(kubectl: Kubectl, namespace: string): Promise<readonly Pdb[]> {
  return (await kubectl.json<List<Pdb>>(["get", "poddisruptionbudgets", "-n", namespace])).items;
}

/**
 * What has not rolled out yet in the namespace, one line each (empty: everything has): StatefulSets
 * not all ready and updated, Deployments not all available and updated, HPAs' targets not yet
 * scaled into their range, Jobs not complete, claims not bound. Warning events (a pod refused by Pod Security, a pod that cannot be scheduled) are added
 * so that a roll-out that never completes says why.
 */
export async function rolloutProblems(kubectl: Kubectl, namespace: string): Promise<string[]> {
  const problems: string[] = [];
  const n = ["-n", namespace];
  const sets = await kubectl.json<List<StatefulSet>>(["get", "statefulsets", ...n]);
  for (const s of sets.items) {
    const want = s.spec.replicas ?? 1;
    const st = s.status;
    if (
      (st.observedGeneration ?? 0) < (s.metadata.generation ?? 0) ||
      (st.readyReplicas ?? 0) !== want ||
      (st.updatedReplicas ?? 0) !== want ||
      st.currentRevision !== st.updateRevision
    ) {
      problems.push(
        `StatefulSet ${s.metadata.name}: ${st.readyReplicas ?? 0}/${want} ready, ${st.updatedReplicas ?? 0} updated`,
      );
    }
  }
  const deployments = await kubectl.json<List<Deployment>>(["get", "deployments", ...n]);
  for (const d of deployments.items) {
    const want = d.spec.replicas ?? 1;
    const st = d.status;
    if (
      (st.observedGeneration ?? 0) < (d.metadata.generation ?? 0) ||
      (st.availableReplicas ?? 0) !== want ||
      (st.updatedReplicas ?? 0) !== want
    ) {
      problems.push(
        `Deployment ${d.metadata.name}: ${st.availableReplicas ?? 0}/${want} available, ${st.updatedReplicas ?? 0} updated`,
      );
    }
  }
  // An HPA raises its target to minReplicas soon after the first apply (without metrics, that is
  // all it does here): until then, "all replicas ready" counts too few.
  const hpas = await kubectl.json<List<Hpa>>(["get", "horizontalpodautoscalers", ...n]);
  for (const h of hpas.items) {
    const { kind, name } = h.spec.scaleTargetRef;
    const target = [...sets.items, ...deployments.items].find(
      (w) => w.kind === kind && w.metadata.name === name,
    );
    const replicas = target?.spec.replicas ?? 1;
    const min = h.spec.minReplicas ?? 1;
    if (replicas < min || replicas > h.spec.maxReplicas) {
      problems.push(
        `HPA ${h.metadata.name}: ${kind} ${name} has ${replicas} replicas, not ${min}..${h.spec.maxReplicas}`,
      );
    }
  }
  const jobs = await kubectl.json<List<Job>>(["get", "jobs", ...n]);
  for (const j of jobs.items) {
    if (!(j.status.conditions ?? []).some((c) => c.type === "Complete" && c.status === "True")) {
      problems.push(`Job ${j.metadata.name}: not complete`);
    }
  }
  const claims = await kubectl.json<List<Claim>>(["get", "persistentvolumeclaims", ...n]);
  for (const c of claims.items) {
    if (c.status.phase !== "Bound")
      problems.push(`PersistentVolumeClaim ${c.metadata.name}: ${c.status.phase}`);
  }
  if (problems.length > 0) {
    const events = await kubectl.json<List<KubeEvent>>([
      "get",
      "events",
      ...n,
      "--field-selector",
      "type=Warning",
    ]);
    for (const e of events.items.slice(-10)) {
      problems.push(
        `  event ${e.involvedObject.kind}/${e.involvedObject.name} ${e.reason}: ${e.message}`,
      );
    }
  }
  return problems;
}

/**
 * The PDBs' status is fresh: each one counts exactly the ready pods it selects (the disruption
 * controller has seen the last change). Before that, disruptionsAllowed may be stale.
 */
export async function pdbStatusProblems(kubectl: Kubectl, namespace: string): Promise<string[]> {
  const [budgets, all] = await Promise.all([pdbs(kubectl, namespace), pods(kubectl, namespace)]);
  const problems: string[] = [];
  for (const b of budgets) {
    const ready = all.filter(
      (p) => isReady(p) && selects(b.spec.selector, p.metadata.labels),
    ).length;
    if (
      b.status?.currentHealthy !== ready ||
      (b.status.observedGeneration ?? 0) < (b.metadata.generation ?? 0)
    ) {
      problems.push(
        `PDB ${b.metadata.name}: status says ${b.status?.currentHealthy} healthy, ${ready} ready pods`,
      );
    }
  }
  return problems;
}
