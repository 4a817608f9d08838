// The soak run (issue #20, defect 1): the projectors as they run in production — 4 replicas of the
// Valkey projector and 4 of the Neo4j projector, each its own process — for SOAK_MINUTES (10) under
// a moderate write load through the command service, reporting every SOAK_REPORT_SECONDS (30):
// the consumers of every stream and KV bucket, the leases lost, the partitions unowned, heartbeat
// failures, the projection lag, nats-server's slow-consumer count and the RSS of every process.
// Not a test and not a throughput benchmark: it asserts nothing and prints a table, and writes
// bench/results/soak.json. Run it with `make soak`.
//
// Env: SOAK_MINUTES (10), SOAK_REPORT_SECONDS (30), SOAK_RATE (100 commands a second),
//      SOAK_STORIES (2000), SOAK_REPLICAS (4 per model), SOAK_MODELS ("valkey,neo4j").
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ContextCommandService } from "@ctx/proto";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { bearer } from "./support/bearer.ts";
import { gauge, scrape } from "./support/metrics.ts";
import { openLoop } from "./support/open-loop.ts";
import { describeMachine, gitState, natsServerVersion } from "./support/run-info.ts";
import {
  type BenchService,
  imageNodeFlags,
  onShutdown,
  startBenchStack,
} from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const settings = {
  minutes: envNumber("SOAK_MINUTES", 10),
  reportSeconds: envNumber("SOAK_REPORT_SECONDS", 30),
  rate: envNumber("SOAK_RATE", 100),
  stories: envNumber("SOAK_STORIES", 2_000),
  replicas: envNumber("SOAK_REPLICAS", 4),
  models: (process.env.SOAK_MODELS ?? "valkey,neo4j").split(",") as ("valkey" | "neo4j")[],
};

type Commands = Client<typeof ContextCommandService>;

/** What one report saw. */
interface Sample {
  readonly seconds: number;
  /** Consumers per stream (KV buckets are streams named KV_<bucket>). */
  readonly consumers: Readonly<Record<string, number>>;
  /** Per model, summed over its replicas. */
  readonly models: Readonly<
    Record<
      string,
      {
        readonly owned: number;
        readonly leasesLost: number;
        readonly heartbeatFailures: number;
        /** The most any replica saw (each sees the whole group). */
        readonly unowned: number;
        readonly missing: number;
        readonly lagEvents: number;
        readonly notReady: number;
      }
    >
  >;
  readonly slowConsumers: number;
  /** Resident set size of each process, MiB. */
  readonly rssMiB: Readonly<Record<string, number>>;
  readonly commands: { readonly ok: number; readonly failed: number };
}

function log(line: string): void {
  console.log(line);
}

/** A process's resident set size in MiB (Linux /proc), NaN when it cannot be read. */
function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
    return kb / 1024;
  } catch {
    return Number.NaN;
  }
}

/** The sum over every series of a metric in a Prometheus text. */
function sum(text: string, name: string): number {
  let total = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match?.[1] === name) total += Number(match[2]);
  }
  return total;
}

async function consumersPerStream(nc: NatsConnection): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(nc);
  const out: Record<string, number> = {};
  for await (const info of jsm.streams.list()) out[info.config.name] = info.state.consumer_count;
  return out;
}

async function slowConsumers(monitorUrl: string): Promise<number> {
  try {
    const varz = (await (await fetch(`${monitorUrl}/varz`)).json()) as { slow_consumers?: number };
    return varz.slow_consumers ?? Number.NaN;
  } catch {
    return Number.NaN;
  }
}

async function main(): Promise<void> {
  const stack = await startBenchStack({
    valkey: settings.models.includes("valkey"),
    neo4j: settings.models.includes("neo4j"),
  });
  const sessions: Http2SessionManager[] = [];
  let nc: NatsConnection | undefined;
  const teardown = onShutdown(async () => {
    for (const s of sessions) s.abort();
    await nc?.close().catch(() => undefined);
    await stack.stop();
  });
  try {
    await stack.startCommandService();
    nc = await stack.connectNats("bench-soak");
    log(`servers: NATS ${stack.natsUrl}, command service ${stack.commandUrl} (in ${stack.dir})`);

    const clients: Commands[] = [];
    for (let i = 0; i < 4; i++) {
      const sessionManager = new Http2SessionManager(stack.commandUrl);
      sessions.push(sessionManager);
      clients.push(
        createClient(
          ContextCommandService,
          createGrpcTransport({
            baseUrl: stack.commandUrl,
            sessionManager,
            interceptors: [bearer(stack.authorization)],
          }),
        ),
      );
    }
    const client = (i: number) => clients[i % clients.length] as Commands;
    const ids = Array.from({ length: settings.stories }, (_, i) => `soak-${i}`);
    log(`creating ${ids.length} stories`);
    for (let i = 0; i < ids.length; i += 64) {
      await Promise.all(
        ids
          .slice(i, i + 64)
          .map((storyId, j) => client(i + j).createContext({ storyId, title: `Soak ${storyId}` })),
      );
    }

    const replicas = new Map<string, BenchService>();
    for (const model of settings.models) {
      for (let r = 0; r < settings.replicas; r++) {
        const name = `projector-${model}-${r}`;
        log(`starting ${name}`);
        replicas.set(
          name,
          await stack.startService(name, {
            entry: "services/projector/src/main.ts",
            opsListenVariable: "PROJECTOR_OPS_LISTEN",
            // As deploy/local/services.sh starts projectors.
            nodeArgs: imageNodeFlags("projector"),
            natsRole: `projector-${model}`,
            env: { PROJECTION: model, PROJECTOR_REPLICA_ID: `${model}-${r}`, LOG_LEVEL: "warn" },
          }),
        );
      }
    }

    let ok = 0;
    let failed = 0;
    const failures = new Map<string, number>();
    const durationMs = settings.minutes * 60_000;
    const begin = performance.now();
    log(
      `load: ${settings.rate} AddSubtask commands a second over ${ids.length} stories for ${settings.minutes} min; a report every ${settings.reportSeconds} s`,
    );
    const load = openLoop({
      ratePerSecond: settings.rate,
      warmupMs: 0,
      durationMs,
      maxInFlight: 1_000,
      call: async (index) => {
        const storyId = ids[index % ids.length] as string;
        try {
          await client(index).addSubtask({
            storyId,
            subtaskId: `t${index}`,
            title: `Subtask ${index}`,
          });
          ok += 1;
        } catch (e) {
          failed += 1;
          const reason = e instanceof Error ? e.message : String(e);
          failures.set(reason, (failures.get(reason) ?? 0) + 1);
          throw e;
        }
      },
    });

    const samples: Sample[] = [];
    const header = [
      "t (s)",
      "cmds ok/failed",
      ...settings.models.flatMap((m) => [
        `${m} owned`,
        `${m} lost`,
        `${m} unowned`,
        `${m} lag`,
        `KV ${m} consumers`,
      ]),
      "events consumers",
      "slow cons.",
      "RSS MiB (nats/cmd/projectors max)",
    ];
    const rows: string[][] = [];
    const sample = async (): Promise<void> => {
      const seconds = (performance.now() - begin) / 1000;
      const consumers = await consumersPerStream(nc as NatsConnection);
      const models: Record<string, Sample["models"][string]> = {};
      for (const model of settings.models) {
        let owned = 0;
        let leasesLost = 0;
        let heartbeatFailures = 0;
        let unowned = 0;
        let missing = 0;
        let lagEvents = 0;
        let notReady = 0;
        for (const [name, service] of replicas) {
          if (!name.startsWith(`projector-${model}-`)) continue;
          const text = await scrape(service.metricsUrl).catch(() => "");
          owned += gauge(text, "ctx_projector_partitions_owned") || 0;
          leasesLost += sum(text, "ctx_projector_leases_lost_total");
          heartbeatFailures += sum(text, "ctx_projector_lease_heartbeat_failures_total");
          unowned = Math.max(unowned, sum(text, "ctx_projector_partitions_unowned"));
          missing += sum(text, "ctx_projector_partitions_missing");
          lagEvents += sum(text, "ctx_projector_lag_events");
          const ready = await fetch(`${service.opsUrl}/readyz`).then(
            (r) => r.ok,
            () => false,
          );
          if (!ready) notReady += 1;
        }
        models[model] = {
          owned,
          leasesLost,
          heartbeatFailures,
          unowned,
          missing,
          lagEvents,
          notReady,
        };
      }
      const pids = stack.pids();
      const rss: Record<string, number> = {};
      for (const [name, pid] of Object.entries(pids)) rss[name] = Math.round(rssMiB(pid));
      const s: Sample = {
        seconds: Math.round(seconds),
        consumers,
        models,
        slowConsumers: await slowConsumers(stack.natsMonitorUrl),
        rssMiB: rss,
        commands: { ok, failed },
      };
      samples.push(s);
      const projectorRss = Object.entries(rss)
        .filter(([name]) => name.startsWith("projector-"))
        .map(([, v]) => v);
      rows.push([
        String(s.seconds),
        `${ok}/${failed}`,
        ...settings.models.flatMap((m) => {
          const r = models[m];
          const bucket = Object.entries(consumers).find(
            ([stream]) => stream.startsWith("KV_projector_leases_") && stream.endsWith(`_${m}`),
          );
          return [
            String(r?.owned ?? "-"),
            String(r?.leasesLost ?? "-"),
            String(r?.unowned ?? "-"),
            String(r?.lagEvents ?? "-"),
            String(bucket?.[1] ?? "-"),
          ];
        }),
        String(consumers.CONTEXT_EVENTS ?? "-"),
        String(s.slowConsumers),
        `${rss.nats ?? "-"}/${rss.command ?? "-"}/${projectorRss.length > 0 ? Math.max(...projectorRss) : "-"}`,
      ]);
      log(
        [
          `t=${s.seconds}s commands ${ok}/${failed}`,
          ...settings.models.map((m) => {
            const r = models[m];
            return `${m}: owned ${r?.owned} lost ${r?.leasesLost} hb-failed ${r?.heartbeatFailures} unowned ${r?.unowned} missing ${r?.missing} not-ready ${r?.notReady} lag ${r?.lagEvents}`;
          }),
          `consumers ${JSON.stringify(consumers)}`,
          `slow consumers ${s.slowConsumers}`,
          `RSS MiB ${JSON.stringify(rss)}`,
        ].join(" | "),
      );
    };

    let sampling = Promise.resolve();
    const timer = setInterval(() => {
      sampling = sampling.then(sample).catch((e: unknown) => log(`sample failed: ${String(e)}`));
    }, settings.reportSeconds * 1_000);
    const result = await load;
    clearInterval(timer);
    await sampling;
    await sample();

    const first = samples[0];
    const last = samples[samples.length - 1];
    const mostConsumers: Record<string, number> = {};
    for (const s of samples) {
      for (const [stream, n] of Object.entries(s.consumers)) {
        mostConsumers[stream] = Math.max(mostConsumers[stream] ?? 0, n);
      }
    }
    const rssGrowth: Record<string, { first: number; last: number; max: number }> = {};
    for (const name of Object.keys(last?.rssMiB ?? {})) {
      const series = samples.map((s) => s.rssMiB[name] ?? Number.NaN).filter(Number.isFinite);
      rssGrowth[name] = {
        first: first?.rssMiB[name] ?? Number.NaN,
        last: last?.rssMiB[name] ?? Number.NaN,
        max: Math.max(...series),
      };
    }
    const summary = {
      commandsOk: ok,
      commandsFailed: failed,
      failureSamples: [...failures].slice(0, 5),
      load: { perSecond: result.perSecond, dropped: result.dropped, p99Ms: result.latencyMs.p99 },
      mostConsumersPerStream: mostConsumers,
      leasesLost: Object.fromEntries(
        settings.models.map((m) => [m, last?.models[m]?.leasesLost ?? Number.NaN]),
      ),
      heartbeatFailures: Object.fromEntries(
        settings.models.map((m) => [m, last?.models[m]?.heartbeatFailures ?? Number.NaN]),
      ),
      mostUnowned: Object.fromEntries(
        settings.models.map((m) => [m, Math.max(...samples.map((s) => s.models[m]?.unowned ?? 0))]),
      ),
      slowConsumers: last?.slowConsumers ?? Number.NaN,
      rssMiB: rssGrowth,
    };
    const out = {
      bench: "soak",
      settings,
      machine: describeMachine(),
      git: gitState(),
      natsServer: await natsServerVersion(stack),
      summary,
      samples,
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, "soak.json"), `${JSON.stringify(out, null, 2)}\n`);

    log("");
    log(table(header, rows));
    log("");
    log(
      `commands: ${ok} ok, ${failed} failed (${fmt(result.perSecond)} a second achieved, ${result.dropped} dropped)`,
    );
    log(
      table(
        ["stream / bucket", "most consumers seen"],
        Object.entries(mostConsumers).map(([stream, n]) => [stream, String(n)]),
      ),
    );
    log("");
    log(
      table(
        ["process", "RSS first MiB", "RSS last MiB", "RSS max MiB"],
        Object.entries(rssGrowth).map(([name, r]) => [
          name,
          fmt(r.first, 0),
          fmt(r.last, 0),
          fmt(r.max, 0),
        ]),
      ),
    );
    log("");
    for (const m of settings.models) {
      log(
        `${m}: leases lost ${summary.leasesLost[m]}, heartbeat failures ${summary.heartbeatFailures[m]}, most partitions unowned ${summary.mostUnowned[m]}`,
      );
    }
    log(`nats-server slow consumers: ${summary.slowConsumers}`);
    log(`written to ${join(resultsDir, "soak.json")}`);
  } finally {
    await teardown();
  }
}

await main();
