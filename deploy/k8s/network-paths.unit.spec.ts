import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type KubeObject, networkPaths, renderOverlay } from "./network-paths.ts";

// Issue #23: "NetworkPolicies default-deny plus exactly the paths needed". The policy check of
// make test-manifests only proves that some policy selects each workload; this works out what
// the policies of each overlay actually let through and holds it against what each process
// needs: from the issue, and from the code (the command service talks to NATS only; the query
// service to NATS, Valkey and Neo4j; a projector to NATS and its own store; the ctx Jobs to NATS,
// and the rebuild to both stores; the NATS nodes to one another's routes).

const overlays = join(import.meta.dirname, "../../k8s/overlays");
const rendered = {
  dev: renderOverlay(join(overlays, "dev")),
  prod: renderOverlay(join(overlays, "prod")),
};

const natsClients = [
  "command",
  "query",
  "projector-neo4j",
  "projector-valkey",
  "ctx-provision",
  "ctx-backup",
  "ctx-projections-rebuild",
  "ctx-audit-checkpoint",
  "ctx-audit-report",
];
const dns = (workloads: readonly string[]) =>
  workloads.flatMap((w) =>
    ["TCP", "UDP"].map((p) => `${w} → namespace kube-system pods k8s-app=kube-dns:53/${p}`),
  );

// Both overlays: gRPC from client namespaces, metrics scraping from the monitoring namespace (the
// ports the PodMonitors scrape), every NATS client to the client port, the nodes' routes, and DNS.
const everywhere = [
  "namespaces context-service/client=true → command:50051/TCP",
  "namespaces context-service/client=true → query:50052/TCP",
  "namespace monitoring → command:9551/TCP",
  "namespace monitoring → query:9552/TCP",
  "namespace monitoring → projector-neo4j:9561/TCP",
  "namespace monitoring → projector-valkey:9561/TCP",
  "namespace monitoring → nats:7777/TCP",
  ...natsClients.map((w) => `${w} → nats:4222/TCP`),
  "nats → nats:6222/TCP",
  ...dns([...natsClients, "nats"]),
];

// dev: Valkey and Neo4j as pods of the namespace, which reach nothing but DNS.
const dev = [
  ...everywhere,
  "query → valkey:6379/TCP",
  "query → neo4j:7687/TCP",
  "projector-valkey → valkey:6379/TCP",
  "projector-neo4j → neo4j:7687/TCP",
  "ctx-projections-rebuild → valkey:6379/TCP",
  "ctx-projections-rebuild → neo4j:7687/TCP",
  ...dns(["valkey", "neo4j"]),
];

// prod: the stores outside the cluster, in the network the overlay names.
const prod = [
  ...everywhere,
  "query → 10.20.0.0/24:6379/TCP",
  "query → 10.20.0.0/24:7687/TCP",
  "projector-valkey → 10.20.0.0/24:6379/TCP",
  "projector-neo4j → 10.20.0.0/24:7687/TCP",
  "ctx-projections-rebuild → 10.20.0.0/24:6379/TCP",
  "ctx-projections-rebuild → 10.20.0.0/24:7687/TCP",
];

const sorted = (paths: readonly string[]) => [...paths].sort();

describe("the NetworkPolicies of the overlays", () => {
  for (const [overlay, expected] of [
    ["dev", dev],
    ["prod", prod],
  ] as const) {
    it(`given the ${overlay} overlay, when its policies are applied to its pods, then exactly the needed paths are open`, () => {
      const paths = networkPaths(rendered[overlay]);
      expect(paths.allowed).toEqual(sorted(expected));
      expect(paths.oneSided).toEqual([]);
      expect(paths.selectingNothing).toEqual([]);
    });
  }
});

// The same computation on overlays changed the ways a policy goes wrong: it must see each.
describe("working out the paths", () => {
  const edit = (
    objects: readonly KubeObject[],
    change: (o: KubeObject) => KubeObject | undefined,
  ): KubeObject[] => objects.flatMap((o) => change(o) ?? []);
  const policy = (name: string, spec: unknown): KubeObject => ({
    kind: "NetworkPolicy",
    metadata: { name, namespace: "context-service" },
    spec,
  });
  const added = (objects: readonly KubeObject[]) =>
    networkPaths(objects).allowed.filter((p) => !dev.includes(p));
  const lost = (objects: readonly KubeObject[]) => {
    const now = networkPaths(objects).allowed;
    return sorted(dev.filter((p) => !now.includes(p)));
  };

  it("given the NATS clients' egress policy removed, then NATS admits them but they cannot get there: one-sided paths", () => {
    const objects = edit(rendered.dev, (o) => (o.metadata.name === "nats-clients" ? undefined : o));
    expect(lost(objects)).toEqual(sorted(natsClients.map((w) => `${w} → nats:4222/TCP`)));
    expect(networkPaths(objects).oneSided).toEqual(
      sorted(natsClients.map((w) => `${w} → nats:4222/TCP (ingress only)`)),
    );
  });

  it("given the query pods without their Neo4j label, then the path to Neo4j is missing", () => {
    const objects = edit(rendered.dev, (o) => {
      if (o.metadata.name !== "query" || o.kind !== "Deployment") return o;
      const copy = structuredClone(o) as KubeObject & {
        spec: { template: { metadata: { labels: Record<string, string> } } };
      };
      delete copy.spec.template.metadata.labels["context-service/neo4j-client"];
      return copy;
    });
    expect(lost(objects)).toEqual(["query → neo4j:7687/TCP"]);
    expect(added(objects)).toEqual([]);
  });

  it("given a rule without peers, or one for every namespace, then the paths are too open", () => {
    const objects = [
      ...rendered.dev,
      policy("open-query", {
        podSelector: { matchLabels: { "app.kubernetes.io/name": "query" } },
        ingress: [{}],
      }),
      policy("all-namespaces", {
        podSelector: { matchLabels: { "app.kubernetes.io/name": "valkey" } },
        policyTypes: ["Ingress"],
        ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: "valkey" }] }],
      }),
    ];
    expect(added(objects)).toEqual(["anywhere → query:*", "namespaces any → valkey:6379/TCP"]);
  });

  it("given a policy with a misspelt label, then it is reported as selecting nothing", () => {
    const objects = [
      ...rendered.dev,
      policy("typo", {
        podSelector: { matchLabels: { "app.kubernetes.io/name": "qeury" } },
        policyTypes: ["Egress"],
        egress: [{ to: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "nast" } } }] }],
      }),
    ];
    expect(networkPaths(objects).selectingNothing).toEqual([
      "NetworkPolicy typo",
      "typo: peer pods app.kubernetes.io/name=nast",
    ]);
  });

  it("given a new workload without policies of its own, then it only has DNS; without the default deny, anyone reaches it", () => {
    const stray: KubeObject = {
      kind: "Deployment",
      metadata: { name: "stray", namespace: "context-service" },
      spec: { template: { metadata: { labels: { app: "stray" } }, spec: { containers: [] } } },
    };
    expect(added([...rendered.dev, stray])).toEqual(dns(["stray"]));
    const noDefaultDeny = edit(rendered.dev, (o) =>
      o.metadata.name === "default-deny" ? undefined : o,
    );
    // Every workload of ours is isolated by policies of its own too; the stray pod is not.
    expect(added([...noDefaultDeny, stray])).toEqual(
      sorted(["anywhere → stray:*", ...dns(["stray"])]),
    );
    expect(lost([...noDefaultDeny, stray])).toEqual([]);
  });
});
