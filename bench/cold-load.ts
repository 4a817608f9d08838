// The cold-load benchmark (issue #26, "cold loads use snapshots"): what the first command on a story
// costs a command process that has not seen it (a restart, a second replica), reading the whole
// story (snapshots off, "before") against the newest command snapshot plus the events after it
// ("after"); then the throughput of two command processes writing the same stories against one,
// beside the raw JetStream publish rate measured in the same run. Run it with `make bench`.
//
// Env: BENCH_COLD_SIZES ("10,1000,10000": events per story), BENCH_COLD_STORIES (20 stories per
//      size), BENCH_SECONDS (10, per throughput phase), BENCH_WARMUP_SECONDS (2),
//      BENCH_CONCURRENCY (16 calls in flight, over the processes), BENCH_SHARED_STORIES (16).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { type StoryId, storyId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  createEventStore,
  defaultEventStreamNames,
  ExpectedVersion,
  type NewEvent,
} from "@ctx/event-store";
import { ContextCommandService } from "@ctx/proto";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { bearer } from "./support/bearer.ts";
import { closedLoop } from "./support/load.ts";
import { scrape } from "./support/metrics.ts";
import { describeMachine, gitState, natsServerVersion } from "./support/run-info.ts";
import { type BenchService, onShutdown, startBenchStack } from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, type LatencySummary, summarize, table } from "./support/stats.ts";

const sizes = (process.env.BENCH_COLD_SIZES ?? "10,1000,10000").split(",").map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 3)) {
  throw new Error("BENCH_COLD_SIZES must list whole numbers ≥ 3");
}
const storiesPerSize = envNumber("BENCH_COLD_STORIES", 20);
const seconds = envNumber("BENCH_SECONDS", 10);
const warmupSeconds = envNumber("BENCH_WARMUP_SECONDS", 2);
const concurrency = envNumber("BENCH_CONCURRENCY", 16);
const sharedStories = envNumber("BENCH_SHARED_STORIES", 16);
/** Events one fill append carries (one command of the story, as ApplyChanges would write it). */
const FILL_BATCH = 100;

const stack = await startBenchStack();
onShutdown(() => stack.stop());
const nc = await stack.connectNats("cold-load-bench");
await stack.provision();
const store = createEventStore(nc, { names: defaultEventStreamNames });

type CommandClient = Client<typeof ContextCommandService>;

/** A fresh command process (its own pid, empty cache) with these settings, and a client of it. */
async function commandProcess(
  name: string,
  env: Record<string, string>,
): Promise<{ service: BenchService; client: CommandClient }> {
  const service = await stack.startService(name, {
    entry: "services/command/src/main.ts",
    listenVariable: "COMMAND_LISTEN",
    opsListenVariable: "COMMAND_OPS_LISTEN",
    natsRole: "command",
    provision: false,
    env: { LOG_LEVEL: "warn", ...env },
  });
  const client = createClient(
    ContextCommandService,
    createGrpcTransport({ baseUrl: service.url, interceptors: [bearer(stack.authorization)] }),
  );
  return { service, client };
}

/** A metric's value summed over the series whose labels include `labels` (e.g. `from="snapshot"`). */
async function counter(service: BenchService, name: string, labels = ""): Promise<number> {
  let sum = 0;
  for (const line of (await scrape(service.metricsUrl)).split("\n")) {
    if (!line.startsWith(name) || !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/**
 * A story of `events` events written straight to the stream, as commands of up to FILL_BATCH
 * events write them: a creation, a subtask, then updates of that subtask (a story the limits allow
 * at any length).
 */
async function fillStory(id: StoryId, events: number): Promise<void> {
  const all: NewEvent[] = [
    { data: eventData.contextCreated({ title: `cold ${events}` }) },
    { data: eventData.subtaskAdded({ subtaskId: "s", title: "the subtask" }) },
  ];
  for (let i = all.length; i < events; i++) {
    all.push({ data: eventData.subtaskUpdated({ subtaskId: "s", assignee: `a${i}` }) });
  }
  for (let i = 0; i < all.length; i += FILL_BATCH) {
    await store.append(
      id,
      all.slice(i, i + FILL_BATCH),
      i === 0 ? ExpectedVersion.NoStory : ExpectedVersion.Any,
      { commandId: `fill-${i}`, correlationId: "", causationId: "" },
    );
  }
}

const update = (client: CommandClient, id: StoryId, n: number) =>
  client.updateSubtask({ storyId: id, subtaskId: "s", assignee: `cold-${n}` });

// --- (a) cold loads ---------------------------------------------------------------------------

const bySize = new Map<number, StoryId[]>();
for (const size of sizes) {
  const ids = Array.from({ length: storiesPerSize }, (_, i) => storyId(`cold-${size}-${i}`));
  for (const id of ids) await fillStory(id, size);
  bySize.set(size, ids);
}
const allStories = [...bySize.values()].flat();

// One command per story through a process that snapshots every story it appends to, then stops.
{
  const writer = await commandProcess("snapshot-writer", { COMMAND_SNAPSHOT_EVERY: "1" });
  for (const id of allStories) await update(writer.client, id, 0);
  const deadline = Date.now() + 120_000;
  while (
    (await counter(writer.service, "ctx_command_snapshot_writes_total", 'outcome="written"')) <
    allStories.length
  ) {
    if (Date.now() > deadline) throw new Error("the snapshots were not written within 2 minutes");
    await new Promise((r) => setTimeout(r, 100));
  }
  await writer.service.stop();
}

interface ColdPhase {
  readonly mode: "events" | "snapshot";
  readonly size: number;
  readonly latencyMs: LatencySummary;
  /** Loads the process reported from a snapshot / from the first event, and the events they read. */
  readonly fromSnapshot: number;
  readonly fromEvents: number;
  readonly eventsRead: number;
}

const cold: ColdPhase[] = [];
let round = 1;
for (const mode of ["events", "snapshot"] as const) {
  // A fresh process per size: every story is new to it, and no earlier size warmed its cache.
  for (const size of sizes) {
    const p = await commandProcess(`cold-${mode}-${size}`, {
      COMMAND_SNAPSHOT_READ: mode === "snapshot" ? "true" : "false",
      COMMAND_SNAPSHOT_EVERY: "0",
    });
    // One call on another story first, so that connection set-up is not counted as a cold load.
    await p.client.createContext({ storyId: `warm-${mode}-${size}`, title: "warm-up" });
    const samples: number[] = [];
    for (const id of bySize.get(size) ?? []) {
      const started = performance.now();
      await update(p.client, id, round);
      samples.push(performance.now() - started);
    }
    cold.push({
      mode,
      size,
      latencyMs: summarize(samples),
      fromSnapshot: await counter(p.service, "ctx_command_cold_loads_total", 'from="snapshot"'),
      fromEvents: await counter(p.service, "ctx_command_cold_loads_total", 'from="events"'),
      eventsRead: await counter(p.service, "ctx_command_cold_load_events_total"),
    });
    await p.service.stop();
  }
  round++;
}

console.log(
  `\nFirst command on a story new to a command process (${storiesPerSize} stories per size; ms):`,
);
console.log(
  table(
    ["events", "load", "p50", "p99", "max", "from snapshot", "from events", "events read"],
    cold.map((c) => [
      String(c.size),
      c.mode === "events" ? "whole story (before)" : "snapshot + tail (after)",
      fmt(c.latencyMs.p50, 2),
      fmt(c.latencyMs.p99, 2),
      fmt(c.latencyMs.max, 2),
      String(c.fromSnapshot),
      String(c.fromEvents),
      String(c.eventsRead),
    ]),
  ),
);
const speedups = sizes.map((size) => {
  const before = cold.find((c) => c.mode === "events" && c.size === size);
  const after = cold.find((c) => c.mode === "snapshot" && c.size === size);
  return {
    size,
    p50: (before?.latencyMs.p50 ?? Number.NaN) / (after?.latencyMs.p50 ?? Number.NaN),
  };
});
console.log(
  table(
    ["events", "before/after p50"],
    speedups.map((s) => [String(s.size), `${fmt(s.p50, 1)}×`]),
  ),
);

// --- (b) two processes writing the same stories ---------------------------------------------------

const shared = Array.from({ length: sharedStories }, (_, i) => storyId(`shared-${i}`));
for (const id of shared) await fillStory(id, 3);

interface ThroughputPhase {
  readonly writers: string;
  readonly perSecond: number;
  readonly errors: number;
  /** A few distinct error messages (a command that lost its races more than the handler retries). */
  readonly errorSamples: readonly string[];
  readonly latencyMs: LatencySummary;
}
const throughput: ThroughputPhase[] = [];
const durationMs = seconds * 1000;
const warmupMs = warmupSeconds * 1000;

for (const processes of [1, 2]) {
  const ps = await Promise.all(
    Array.from({ length: processes }, (_, i) =>
      commandProcess(`shared-${processes}-${i}`, { COMMAND_SNAPSHOT_EVERY: "100" }),
    ),
  );
  const result = await closedLoop({
    concurrency,
    warmupMs,
    durationMs,
    // Worker w calls process w mod n, on any story: the processes race for the same stories, and
    // each one's cache goes stale whenever the other wrote (a conflict, then a read of the tail).
    call: (worker, index) =>
      update(
        (ps[worker % ps.length] as (typeof ps)[number]).client,
        shared[Math.floor(Math.random() * shared.length)] as StoryId,
        index,
      ),
  });
  throughput.push({
    writers: `${processes} command process${processes > 1 ? "es" : ""}`,
    perSecond: result.perSecond,
    errors: result.errors,
    errorSamples: result.errorSamples,
    latencyMs: result.latencyMs,
  });
  for (const p of ps) await p.service.stop();
}

// The raw JetStream rate on the same server: publishes of an event-sized message, same concurrency.
{
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "COLD_LOAD_RAW", subjects: ["cold-load-raw.>"] });
  const js = jetstream(nc);
  const payload = new Uint8Array(300);
  const raw = await closedLoop({
    concurrency,
    warmupMs,
    durationMs,
    call: (_, index) => js.publish(`cold-load-raw.${index % sharedStories}`, payload),
  });
  throughput.push({
    writers: "raw JetStream publish",
    perSecond: raw.perSecond,
    errors: raw.errors,
    errorSamples: raw.errorSamples,
    latencyMs: raw.latencyMs,
  });
  await jsm.streams.delete("COLD_LOAD_RAW");
}

const rawRate = throughput[throughput.length - 1]?.perSecond ?? Number.NaN;
console.log(
  `\nUpdateSubtask on ${sharedStories} shared stories, ${concurrency} calls in flight, ${seconds} s:`,
);
console.log(
  table(
    ["writers", "calls/s", "of raw", "errors", "p50 ms", "p99 ms"],
    throughput.map((t) => [
      t.writers,
      fmt(t.perSecond, 0),
      `${fmt((100 * t.perSecond) / rawRate, 1)}%`,
      String(t.errors),
      fmt(t.latencyMs.p50, 2),
      fmt(t.latencyMs.p99, 2),
    ]),
  ),
);
for (const t of throughput) {
  for (const sample of t.errorSamples) console.log(`${t.writers}: ${sample}`);
}

mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  join(resultsDir, "cold-load.json"),
  JSON.stringify(
    {
      machine: describeMachine(),
      git: gitState(),
      nats: await natsServerVersion(stack),
      settings: { sizes, storiesPerSize, seconds, warmupSeconds, concurrency, sharedStories },
      cold,
      speedups,
      throughput,
    },
    null,
    2,
  ),
);
await nc.close();
await stack.stop();
