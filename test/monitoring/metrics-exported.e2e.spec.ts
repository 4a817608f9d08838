import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "@ctx/config";
import type { ProjectorApp } from "@ctx/projector-service";
import { newStory, type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startValkeyProjector } from "./valkey-projector.ts";

// Issue #24: every series the Grafana dashboard and the alert rules query is one the running
// services export, under the names they export it by. The command and query services (with the
// snapshotter) and a projector run here on the test stack; their /metrics pages are read after a
// command, a query and its projection. NATS's own series (nats_*) come from the NATS exporter,
// kubelet's and kube-state-metrics' (kube_*, kubelet_*) from the cluster: not ours to export.

const repoRoot = join(import.meta.dirname, "../..");
const read = (path: string) => readFileSync(join(repoRoot, path), "utf8");
const logger = createLogger({ name: "monitoring-e2e", level: "silent", pretty: false });

/** The product's metric names a PromQL text refers to (histograms by their base name). */
export function queriedMetrics(promql: string): Set<string> {
  const names = new Set<string>();
  for (const [name] of promql.matchAll(/\b(?:ctx|grpc_server)_[a-z0-9_]*/g)) {
    names.add(name.replace(/_(bucket|sum|count)$/, ""));
  }
  return names;
}

/** The expressions of the dashboard's panels, and of the alert rules. */
function expressions(): { dashboard: string[]; alerts: string[] } {
  const dashboard = JSON.parse(read("k8s/base/monitoring/context-service.dashboard.json")) as {
    panels: { targets?: { expr: string }[] }[];
    templating: { list: { definition?: string }[] };
  };
  const rules = read("k8s/base/monitoring/prometheus-rules.yaml");
  return {
    dashboard: [
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
      ...dashboard.templating.list.flatMap((v) => (v.definition ? [v.definition] : [])),
    ],
    alerts: [...rules.matchAll(/expr: (?:>-\n)?((?:.|\n)*?)\n\s+(?:for|labels):/g)].map(
      (m) => m[1] as string,
    ),
  };
}

let s: QueryStack;
let projector: ProjectorApp;
const pages: string[] = [];

beforeAll(async () => {
  s = await startQueryStack();
  const command = await s.startCommand();
  const query = await s.startQuery();
  projector = await startValkeyProjector(s, "monitoring-0", logger);
  // A command, a failed one and queries: the labelled series have samples, not only their HELP.
  const story = newStory();
  await command.client.createContext({ storyId: story, title: "Monitored" });
  await command.client.createContext({ storyId: story, title: "Again" }).catch(() => undefined);
  await query.client.getContext({ storyId: story }).catch(() => undefined);
  for (const port of [command.app.opsPort, query.app.opsPort, projector.opsPort]) {
    pages.push(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  }
}, 120_000);

afterAll(async () => {
  await projector?.stop();
  await s?.stop();
});

describe("the dashboard and the alert rules", () => {
  it("query only series the services export", () => {
    const exported = new Set(
      pages.flatMap((page) => [...page.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string)),
    );
    const { dashboard, alerts } = expressions();
    expect(dashboard.length).toBeGreaterThan(20);
    expect(alerts.length).toBeGreaterThan(5);
    for (const [what, exprs] of [
      ["dashboard", dashboard],
      ["alert rules", alerts],
    ] as const) {
      const queried = new Set(exprs.flatMap((e) => [...queriedMetrics(e)]));
      expect(queried.size, what).toBeGreaterThan(3);
      const missing = [...queried].filter((name) => !exported.has(name)).sort();
      expect(missing, `${what}: series no service exports`).toEqual([]);
    }
  });

  it("see RPC series labelled as the gRPC ecosystem labels them", () => {
    const handled = pages.join("\n").match(/^grpc_server_handled_total\{[^}]*\}/m)?.[0] ?? "";
    for (const label of ["grpc_type", "grpc_service", "grpc_method", "grpc_code"]) {
      expect(handled).toContain(`${label}=`);
    }
  });

  it("find every product series under one namespace, without sentinel values", () => {
    for (const page of pages) {
      for (const [, name] of page.matchAll(/^# TYPE (\S+) /gm)) {
        // prom-client's process and Node.js series are the runtime's, not the product's.
        if (/^(process|nodejs)_/.test(name as string)) continue;
        expect(name).toMatch(/^(ctx|grpc_server)_/);
      }
      expect(page).not.toMatch(/^ctx_\S*(\{[^}]*\})? -1$/m);
    }
  });
});
