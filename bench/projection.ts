// The projection benchmark: a stream pre-filled with 1,000,000 events over 10,000 stories, projected
// into Valkey and into Neo4j by the projector service (one replica each, separate processes), then a
// full zero-downtime rebuild of both at once with `bin/ctx projections rebuild all`. The denominator
// is the raw consume+ack rate of the same stream, measured in the same run with the projectors' own pattern
// (16 partition consumers, batches, one ack per batch). Run it with `make bench`.
//
// Env: BENCH_PROJECTION_EVENTS (1000000), BENCH_PROJECTION_STORIES (10000),
//      BENCH_PROJECTION_MODELS ("valkey,neo4j"), BENCH_PROJECTION_REBUILD (1; 0 skips it),
//      PROJECTOR_BATCH_SIZE (the service's default when unset), BENCH_PROFILE=1 (each projector
//      writes a .cpuprofile to bench/results/profiles/projection/).
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ContextEventData } from "@ctx/domain";
import {
  defaultEventStreamSettings,
  partitionSubjects,
  provisionEventStream,
} from "@ctx/event-store";
import { partitionConsumers } from "@ctx/projector";
import { SubtaskStatus } from "@ctx/proto";
import {
  AckPolicy,
  type ConsumerInfo,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { type CpuShares, measureCpu } from "./support/cpu.ts";
import { currentEnvelopes, fillInterleaved } from "./support/fill.ts";
import { histogram, scrape } from "./support/metrics.ts";
import {
  type BenchStack,
  imageNodeFlags,
  onShutdown,
  repoRoot,
  startBenchStack,
} from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const run = promisify(execFile);
const settings = {
  events: envNumber("BENCH_PROJECTION_EVENTS", 1_000_000),
  stories: envNumber("BENCH_PROJECTION_STORIES", 10_000),
  models: (process.env.BENCH_PROJECTION_MODELS ?? "valkey,neo4j").split(",") as (
    | "valkey"
    | "neo4j"
  )[],
  rebuild: process.env.BENCH_PROJECTION_REBUILD !== "0",
  batchSize: process.env.PROJECTOR_BATCH_SIZE,
  profile: process.env.BENCH_PROFILE === "1",
  publishWindow: 2_000,
  rawBatch: 500,
};
const names = defaultEventStreamSettings;
const profilesDir = join(resultsDir, "profiles/projection");

/** Event `v` (1-based) of a story: a history that grows subtasks, decisions, dependencies, updates. */
function eventOf(v: number): ContextEventData {
  const k = Math.floor((v - 2) / 10);
  const t = (n: number) => `t${n}`;
  switch (v === 1 ? -1 : (v - 2) % 10) {
    case -1:
      return {
        case: "contextCreated",
        value: {
          $typeName: "context.v1.ContextCreated",
          title: "Checkout revamp",
          description: "Replace the checkout with a single-page flow",
        },
      };
    case 0:
      return {
        case: "subtaskAdded",
        value: {
          $typeName: "context.v1.SubtaskAdded",
          subtaskId: t(k),
          title: `Subtask ${k}`,
          dependsOn: k > 0 ? [t(k - 1)] : [],
        },
      };
    case 1:
      return {
        case: "decisionAdded",
        value: {
          $typeName: "context.v1.DecisionAdded",
          decisionId: `d${k}`,
          title: `Decision ${k}`,
          rationale: "measured, simpler to operate",
          madeBy: "ana",
          alternatives: ["status quo", "buy"],
          affectsSubtaskIds: [t(k)],
        },
      };
    case 2:
      return {
        case: "subtaskUpdated",
        value: {
          $typeName: "context.v1.SubtaskUpdated",
          subtaskId: t(k),
          status: SubtaskStatus.IN_PROGRESS,
          assignee: "bo",
        },
      };
    case 3:
      return {
        case: "subtaskAdded",
        value: {
          $typeName: "context.v1.SubtaskAdded",
          subtaskId: `u${k}`,
          title: `Follow-up ${k}`,
          dependsOn: [],
        },
      };
    case 4:
      return {
        case: "subtaskDependencyAdded",
        value: {
          $typeName: "context.v1.SubtaskDependencyAdded",
          subtaskId: `u${k}`,
          dependsOnSubtaskId: t(k),
        },
      };
    case 5:
      return {
        case: "subtaskUpdated",
        value: {
          $typeName: "context.v1.SubtaskUpdated",
          subtaskId: t(k),
          status: SubtaskStatus.DONE,
          assignee: "bo",
        },
      };
    case 6:
      return {
        case: "decisionAdded",
        value: {
          $typeName: "context.v1.DecisionAdded",
          decisionId: `d${k}b`,
          title: `Decision ${k}, revised`,
          rationale: "new data",
          madeBy: "cy",
          alternatives: [],
          affectsSubtaskIds: [t(k), `u${k}`],
        },
      };
    case 7:
      return {
        case: "decisionSuperseded",
        value: {
          $typeName: "context.v1.DecisionSuperseded",
          decisionId: `d${k}`,
          supersededByDecisionId: `d${k}b`,
        },
      };
    case 8:
      return {
        case: "subtaskUpdated",
        value: {
          $typeName: "context.v1.SubtaskUpdated",
          subtaskId: `u${k}`,
          status: SubtaskStatus.BLOCKED,
          assignee: "",
        },
      };
    default:
      return {
        case: "subtaskUpdated",
        value: {
          $typeName: "context.v1.SubtaskUpdated",
          subtaskId: `u${k}`,
          status: SubtaskStatus.TODO,
          assignee: "cy",
        },
      };
  }
}

/** Fills CONTEXT_EVENTS with the stories' histories, interleaved as they are live. */
function fill(nc: NatsConnection): Promise<{ events: number; seconds: number }> {
  const t0 = Date.now() - settings.events;
  return fillInterleaved(nc, names, {
    events: settings.events,
    stories: settings.stories,
    publishWindow: settings.publishWindow,
    envelope: currentEnvelopes(eventOf, t0),
    onProgress(written) {
      if (written % 100_000 === 0) console.log(`  filled ${written} events`);
    },
  });
}

/** The raw rate: every partition consumed by a durable consumer, in batches, one ack per batch. */
async function rawConsumeAck(
  nc: NatsConnection,
  stack: BenchStack,
): Promise<{ rate: number; cpu: CpuShares }> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const consumers: string[] = [];
  for (let p = 0; p < names.partitions; p++) {
    const name = `bench_raw_p${p}`;
    await jsm.consumers.add(names.stream, {
      durable_name: name,
      filter_subject: partitionSubjects(names, p),
      ack_policy: AckPolicy.All,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 20_000,
    });
    consumers.push(name);
  }
  const stopCpu = measureCpu({ bench: process.pid, nats: stack.pids().nats });
  const started = performance.now();
  let total = 0;
  await Promise.all(
    consumers.map(async (name) => {
      const consumer = await js.consumers.get(names.stream, name);
      const pending = (await consumer.info()).num_pending;
      let got = 0;
      while (got < pending) {
        const batch = await consumer.fetch({ max_messages: settings.rawBatch, expires: 5_000 });
        let last: { ack(): void } | undefined;
        for await (const m of batch) {
          got += 1;
          last = m;
        }
        last?.ack();
      }
      total += got;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = stopCpu();
  for (const name of consumers) await jsm.consumers.delete(names.stream, name);
  return { rate: total / seconds, cpu };
}

/**
 * Waits until every partition consumer of a projection has nothing pending or unacknowledged.
 * Resolves with the time (performance.now()) at which half the events were left, or undefined.
 */
async function caughtUp(
  nc: NatsConnection,
  projection: string,
  total: number,
): Promise<number | undefined> {
  const jsm = await jetstreamManager(nc);
  let lastReport = 0;
  let halfway: number | undefined;
  for (;;) {
    let left = 0;
    let ready = 0;
    const consumers = await partitionConsumers(jsm, names.stream, projection).catch(
      () => new Map<number, ConsumerInfo>(),
    );
    for (let p = 0; p < names.partitions; p++) {
      const info = consumers.get(p);
      if (!info) {
        left += total / names.partitions;
        continue;
      }
      left += info.num_pending + info.num_ack_pending;
      if (info.num_pending === 0 && info.num_ack_pending === 0) ready += 1;
    }
    if (ready === names.partitions) return halfway;
    if (halfway === undefined && left <= total / 2) halfway = performance.now();
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      console.log(`  ${projection}: about ${Math.round(left)} events left`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface ModelRun {
  readonly model: string;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** The rate over the second half of the events: the model warm (a fresh JVM is slow at first). */
  readonly secondHalfEventsPerSecond: number | undefined;
  /** Mean events per read-model write (`ctx_projector_batch_events`): how much each write carries. */
  readonly meanBatchSize: number;
  /** Partition leases the projector lost, and slow-consumer cuts nats-server logged, in the phase. */
  readonly leasesLost: number;
  readonly slowConsumers: number;
  readonly cpu: CpuShares;
}

async function project(
  nc: NatsConnection,
  stack: BenchStack,
  model: "valkey" | "neo4j",
  total: number,
): Promise<ModelRun> {
  // The operator's part, before the clock starts.
  await stack.provision();
  // Timed from the start of the process: start-up and taking the partition leases count too.
  const started = performance.now();
  const service = await stack.startService(`projector-${model}`, {
    provision: false,
    entry: "services/projector/src/main.ts",
    opsListenVariable: "PROJECTOR_OPS_LISTEN",
    // As deploy/local/services.sh starts projectors.
    nodeArgs: [
      ...imageNodeFlags("projector"),
      ...(settings.profile ? ["--cpu-prof", `--cpu-prof-dir=${join(profilesDir, model)}`] : []),
    ],
    natsRole: `projector-${model}`,
    env: {
      PROJECTION: model,
      PROJECTOR_REPLICA_ID: `${model}-0`,
      LOG_LEVEL: "warn",
      ...(settings.batchSize ? { PROJECTOR_BATCH_SIZE: settings.batchSize } : {}),
    },
  });
  const slowConsumersBefore = countLines(stack, "nats", /Slow Consumer/i);
  const stopCpu = measureCpu({
    bench: process.pid,
    nats: stack.pids().nats,
    projector: service.pid,
    store: model === "valkey" ? stack.pids().valkey : stack.pids().neo4j,
  });
  const halfway = await caughtUp(nc, model, total);
  const ended = performance.now();
  const seconds = (ended - started) / 1000;
  const batches = histogram(await scrape(service.metricsUrl), "ctx_projector_batch_events");
  const slowConsumers = countLines(stack, "nats", /Slow Consumer/i) - slowConsumersBefore;
  return {
    model,
    seconds,
    eventsPerSecond: total / seconds,
    secondHalfEventsPerSecond:
      halfway === undefined ? undefined : total / 2 / ((ended - halfway) / 1000),
    meanBatchSize: batches.count > 0 ? batches.sum / batches.count : Number.NaN,
    leasesLost: countLines(stack, `projector-${model}`, /lease lost/),
    slowConsumers,
    cpu: stopCpu(),
  };
}

async function rebuildAll(stack: BenchStack): Promise<{ seconds: number; output: string }> {
  const started = performance.now();
  const { stdout, stderr } = await run(
    join(repoRoot, "bin/ctx"),
    ["projections", "rebuild", "all"],
    {
      env: {
        ...process.env,
        ...stack.natsEnv("ctx"),
        // The operator's login, as bin/ctx uses against make up.
        ...stack.storeEnv("ctx"),
        LOG_LEVEL: "warn",
      },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 3_600_000,
    },
  );
  return { seconds: (performance.now() - started) / 1000, output: `${stdout}${stderr}` };
}

async function main(): Promise<void> {
  console.log(
    `projection bench: ${settings.events} events over ${settings.stories} stories into ${settings.models.join(", ")}`,
  );
  const stack = await startBenchStack({ valkey: true, neo4j: settings.models.includes("neo4j") });
  const teardown = onShutdown(() => stack.stop());
  const nc = await stack.connectNats("bench-projection");
  try {
    await provisionEventStream(await jetstreamManager(nc), names);
    const filled = await fill(nc);
    console.log(
      `  filled ${filled.events} events in ${fmt(filled.seconds)} s (${Math.round(filled.events / filled.seconds)}/s)`,
    );
    const raw = await rawConsumeAck(nc, stack);
    console.log(`  raw consume+ack: ${Math.round(raw.rate)} events/s`);
    const runs: ModelRun[] = [];
    for (const model of settings.models) {
      const r = await project(nc, stack, model, filled.events);
      runs.push(r);
      console.log(
        `  ${model}: ${fmt(r.seconds)} s, ${Math.round(r.eventsPerSecond)} events/s (second half: ${Math.round(r.secondHalfEventsPerSecond ?? Number.NaN)} events/s), ${Math.round(r.meanBatchSize)} events per write on average, ${r.leasesLost} leases lost, ${r.slowConsumers} slow-consumer cuts`,
      );
    }
    const rebuild = settings.rebuild ? await rebuildAll(stack) : undefined;
    if (rebuild) console.log(`  rebuild all: ${fmt(rebuild.seconds)} s\n${rebuild.output.trim()}`);
    const results = {
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      settings,
      fill: filled,
      rawConsumeAckPerSecond: raw.rate,
      rawCpu: raw.cpu,
      runs,
      rebuild,
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, "projection.json"), `${JSON.stringify(results, null, 2)}\n`);
    console.log(
      table(
        [
          "path",
          "events/s",
          "second half, events/s",
          "share of raw consume+ack",
          "seconds",
          "CPU % (bench / nats / projector / store / other)",
        ],
        [
          [
            "raw consume+ack (16 partitions, one ack per batch)",
            String(Math.round(raw.rate)),
            "",
            "100 %",
            fmt(filled.events / raw.rate),
            cpuLine(raw.cpu),
          ],
          ...runs.map((r) => [
            `projector → ${r.model} (1 replica)`,
            String(Math.round(r.eventsPerSecond)),
            r.secondHalfEventsPerSecond === undefined
              ? "-"
              : String(Math.round(r.secondHalfEventsPerSecond)),
            `${fmt((r.eventsPerSecond / raw.rate) * 100)} %`,
            fmt(r.seconds),
            cpuLine(r.cpu),
          ]),
          ...(rebuild
            ? [
                [
                  "ctx projections rebuild all (both models at once)",
                  String(Math.round((filled.events * settings.models.length) / rebuild.seconds)),
                  "",
                  "",
                  fmt(rebuild.seconds),
                  "",
                ],
              ]
            : []),
        ],
      ),
    );
  } finally {
    await nc.close();
    await teardown();
  }
}

/** Lines of a server's or service's log in the bench stack that match. */
function countLines(stack: BenchStack, log: string, pattern: RegExp): number {
  const file = join(stack.dir, "log", `${log}.log`);
  if (!existsSync(file)) return 0;
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => pattern.test(line)).length;
}

function cpuLine(cpu: CpuShares): string {
  return [cpu.bench, cpu.nats, cpu.projector, cpu.store, cpu.other]
    .map((v) => (v === undefined || Number.isNaN(v) ? "-" : fmt(v, 0)))
    .join(" / ");
}

await main();
