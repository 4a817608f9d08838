import { execFileSync } from "node:child_process";
import { parseAllDocuments } from "yaml";

// The connections the NetworkPolicies of a rendered overlay allow, worked out the way Kubernetes
// enforces them, so a test can hold them against the list of paths the service needs
// (network-paths.unit.spec.ts). A connection between two pods of the namespace needs both ends:
// the egress of the source and the ingress of the destination; one that crosses the namespace
// is judged by the end inside it. A pod no policy isolates in a direction is open that way.

/** Only the fields read here. */
export interface KubeObject {
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
  };
  readonly spec?: unknown;
}

/** `kubectl kustomize <dir>`: the objects of an overlay, as an operator renders them. */
export function renderOverlay(dir: string): KubeObject[] {
  const yaml = execFileSync(process.env.KUBECTL ?? "kubectl", ["kustomize", dir], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  return parseAllDocuments(yaml)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
}

/** What the policies let through, each entry `from → to:port/protocol`, sorted. */
export interface NetworkPaths {
  /** Connections the policies allow at both of their ends (or at the one end in the namespace). */
  readonly allowed: readonly string[];
  /**
   * Connections between two pods of the namespace that one end allows and the other refuses: a
   * rule that grants nothing, which is a typo or a forgotten counterpart.
   */
  readonly oneSided: readonly string[];
  /** Policies and in-namespace peers whose pod selector selects no pod at all. */
  readonly selectingNothing: readonly string[];
}

interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly {
    readonly key: string;
    readonly operator: string;
    readonly values?: readonly string[];
  }[];
}
interface PolicyPeer {
  readonly podSelector?: LabelSelector;
  readonly namespaceSelector?: LabelSelector;
  readonly ipBlock?: { readonly cidr: string; readonly except?: readonly string[] };
}
interface PolicyPort {
  readonly protocol?: string;
  readonly port?: number | string;
  readonly endPort?: number;
}
interface PolicyRule {
  readonly from?: readonly PolicyPeer[];
  readonly to?: readonly PolicyPeer[];
  readonly ports?: readonly PolicyPort[];
}
interface PolicySpec {
  readonly podSelector: LabelSelector;
  readonly policyTypes?: readonly string[];
  readonly ingress?: readonly PolicyRule[];
  readonly egress?: readonly PolicyRule[];
}

interface Port {
  readonly name?: string;
  readonly number: number;
  readonly protocol: string;
}
/** The pods of one workload: they share labels and ports. */
interface Pods {
  readonly workload: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ports: readonly Port[];
}

/** Who a rule's peer stands for: pods of the namespace, and a description of any outside. */
interface Peer {
  readonly inside: readonly Pods[];
  readonly outside?: string;
}
interface Grant {
  readonly peer: Peer;
  /** Undefined: every port. */
  readonly ports: readonly PolicyPort[] | undefined;
}

const workloadKinds = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"]);

interface PodTemplate {
  readonly metadata?: { readonly labels?: Readonly<Record<string, string>> };
  readonly spec: {
    readonly containers?: readonly {
      readonly ports?: readonly { name?: string; containerPort: number; protocol?: string }[];
    }[];
  };
}

function podTemplate(o: KubeObject): PodTemplate {
  if (o.kind === "CronJob") {
    return (o.spec as { jobTemplate: { spec: { template: PodTemplate } } }).jobTemplate.spec
      .template;
  }
  return (o.spec as { template: PodTemplate }).template;
}

function podsOf(objects: readonly KubeObject[]): Pods[] {
  return objects
    .filter((o) => workloadKinds.has(o.kind))
    .map((o) => {
      const template = podTemplate(o);
      const containers = template.spec.containers ?? [];
      return {
        workload: o.metadata.name,
        labels: template.metadata?.labels ?? {},
        ports: containers.flatMap((c) =>
          (c.ports ?? []).map((p) => ({
            ...(p.name === undefined ? {} : { name: p.name }),
            number: p.containerPort,
            protocol: p.protocol ?? "TCP",
          })),
        ),
      };
    });
}

function matches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    byLabel &&
    (selector.matchExpressions ?? []).every((e) => {
      const value = labels[e.key];
      switch (e.operator) {
        case "In":
          return value !== undefined && (e.values ?? []).includes(value);
        case "NotIn":
          return value === undefined || !(e.values ?? []).includes(value);
        case "Exists":
          return value !== undefined;
        case "DoesNotExist":
          return value === undefined;
        default:
          throw new Error(`unknown selector operator ${e.operator}`);
      }
    })
  );
}

function describeSelector(selector: LabelSelector): string {
  const parts = [
    ...Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(selector.matchExpressions ?? []).map(
      (e) => `${e.key} ${e.operator} (${(e.values ?? []).join(",")})`,
    ),
  ];
  return parts.length === 0 ? "any" : parts.join(",");
}

function describeNamespaces(selector: LabelSelector): string {
  const { matchLabels = {}, matchExpressions = [] } = selector;
  const keys = Object.keys(matchLabels);
  const name = matchLabels["kubernetes.io/metadata.name"];
  return keys.length === 1 && name !== undefined && matchExpressions.length === 0
    ? `namespace ${name}`
    : `namespaces ${describeSelector(selector)}`;
}

/**
 * The paths the NetworkPolicies of `objects` (one rendered overlay, one namespace) allow between
 * its workloads' pods, and to and from outside the namespace.
 */
export function networkPaths(objects: readonly KubeObject[]): NetworkPaths {
  const pods = podsOf(objects);
  const namespace = objects.find((o) => o.kind === "Namespace");
  const namespaceName = namespace?.metadata.name ?? objects[0]?.metadata.namespace ?? "default";
  // The API server labels every namespace with its name.
  const namespaceLabels = {
    ...namespace?.metadata.labels,
    "kubernetes.io/metadata.name": namespaceName,
  };
  const policies = objects
    .filter((o) => o.kind === "NetworkPolicy")
    .map((o) => ({ name: o.metadata.name, spec: o.spec as PolicySpec }));
  const selectingNothing = new Set<string>();
  const selected = (selector: LabelSelector, what: string) => {
    const found = pods.filter((p) => matches(selector, p.labels));
    if (found.length === 0) selectingNothing.add(what);
    return found;
  };

  const peerOf = (peer: PolicyPeer, policy: string): Peer => {
    if (peer.ipBlock) {
      const except = peer.ipBlock.except?.length ? ` except ${peer.ipBlock.except.join(",")}` : "";
      return { inside: [], outside: `${peer.ipBlock.cidr}${except}` };
    }
    const podSelector = peer.podSelector ?? {};
    if (peer.namespaceSelector === undefined) {
      return {
        inside: selected(podSelector, `${policy}: peer pods ${describeSelector(podSelector)}`),
      };
    }
    const podsText = peer.podSelector ? ` pods ${describeSelector(peer.podSelector)}` : "";
    return {
      inside: matches(peer.namespaceSelector, namespaceLabels)
        ? pods.filter((p) => matches(podSelector, p.labels))
        : [],
      outside: `${describeNamespaces(peer.namespaceSelector)}${podsText}`,
    };
  };
  // A rule without peers admits everything, inside the namespace and out.
  const grantsOf = (rule: PolicyRule, peers: readonly PolicyPeer[] | undefined, policy: string) =>
    (peers?.length
      ? peers.map((p) => peerOf(p, policy))
      : [{ inside: pods, outside: "anywhere" }]
    ).map((peer): Grant => ({ peer, ports: rule.ports?.length ? rule.ports : undefined }));

  type Direction = "Ingress" | "Egress";
  const isolation = new Map<string, Map<Direction, Grant[]>>();
  for (const { name, spec } of policies) {
    const types = (spec.policyTypes ?? [
      "Ingress",
      ...(spec.egress ? ["Egress"] : []),
    ]) as Direction[];
    const byType = new Map(
      types.map((type) => {
        const rules = (type === "Ingress" ? spec.ingress : spec.egress) ?? [];
        return [type, rules.flatMap((r) => grantsOf(r, type === "Ingress" ? r.from : r.to, name))];
      }),
    );
    for (const p of selected(spec.podSelector, `NetworkPolicy ${name}`)) {
      const byDirection = isolation.get(p.workload) ?? new Map<Direction, Grant[]>();
      isolation.set(p.workload, byDirection);
      for (const [type, granted] of byType) {
        byDirection.set(type, [...(byDirection.get(type) ?? []), ...granted]);
      }
    }
  }
  /** The grants of a pod in a direction; undefined when no policy isolates it that way. */
  const grants = (p: Pods, d: Direction) => isolation.get(p.workload)?.get(d);
  const portAllowed = (allowed: Grant["ports"], port: Port) =>
    allowed === undefined ||
    allowed.some(
      (a) =>
        (a.protocol ?? "TCP") === port.protocol &&
        (a.port === undefined ||
          a.port === port.name ||
          a.port === port.number ||
          (typeof a.port === "number" &&
            a.endPort !== undefined &&
            port.number >= a.port &&
            port.number <= a.endPort)),
    );
  const lets = (p: Pods, d: Direction, other: Pods, port: Port) => {
    const gs = grants(p, d);
    return (
      gs === undefined ||
      gs.some((g) => g.peer.inside.includes(other) && portAllowed(g.ports, port))
    );
  };
  const portText = (port: Port) => `${port.number}/${port.protocol}`;
  const rulePorts = (ports: Grant["ports"], target?: Pods): string[] =>
    ports === undefined
      ? ["*"]
      : ports.map((a) => {
          const protocol = a.protocol ?? "TCP";
          if (a.port === undefined) return `*/${protocol}`;
          const named = target?.ports.find((p) => p.name === a.port && p.protocol === protocol);
          const number = named?.number ?? a.port;
          return `${number}${a.endPort === undefined ? "" : `-${a.endPort}`}/${protocol}`;
        });

  const allowed = new Set<string>();
  const oneSided = new Set<string>();
  for (const from of pods) {
    for (const to of pods) {
      for (const port of to.ports) {
        const out = lets(from, "Egress", to, port);
        const into = lets(to, "Ingress", from, port);
        const path = `${from.workload} → ${to.workload}:${portText(port)}`;
        if (out && into) allowed.add(path);
        else if (out !== into) oneSided.add(`${path} (${out ? "egress" : "ingress"} only)`);
      }
    }
  }
  for (const p of pods) {
    const ingress = grants(p, "Ingress");
    if (ingress === undefined) allowed.add(`anywhere → ${p.workload}:*`);
    for (const g of ingress ?? []) {
      if (g.peer.outside === undefined) continue;
      for (const port of rulePorts(g.ports, p))
        allowed.add(`${g.peer.outside} → ${p.workload}:${port}`);
    }
    const egress = grants(p, "Egress");
    if (egress === undefined) allowed.add(`${p.workload} → anywhere:*`);
    for (const g of egress ?? []) {
      if (g.peer.outside === undefined) continue;
      for (const port of rulePorts(g.ports))
        allowed.add(`${p.workload} → ${g.peer.outside}:${port}`);
    }
  }
  return {
    allowed: [...allowed].sort(),
    oneSided: [...oneSided].sort(),
    selectingNothing: [...selectingNothing].sort(),
  };
}
