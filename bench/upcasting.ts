// The upcasting benchmark: a replay of a stream whose every event needs one upcast step (schema v1
// DecisionAdded and SubtaskUpdated) against the replay of the same history stored in v2, which needs
// none, in the same run. Run it with `make bench`.
//
// Env: BENCH_UPCAST_EVENTS (1000000), BENCH_UPCAST_STORIES (10000), BENCH_UPCAST_ROUNDS (5: replays
//      per stream, alternating), BENCH_UPCAST_DECODE_SAMPLE (100000: messages of the CPU-only loop).
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import { type ContextState, evolve, initialState, type StoryId } from "@ctx/domain";
import {
  createEventStore,
  decodeEvent,
  type EventStore,
  type EventStreamSettings,
  provisionEventStream,
} from "@ctx/event-store";
import { envelopeAsWritten } from "@ctx/event-store/testing";
import { DecisionAddedSchema, legacyV1, SubtaskStatus, SubtaskUpdatedSchema } from "@ctx/proto";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { type CpuShares, measureCpu } from "./support/cpu.ts";
import { fillInterleaved } from "./support/fill.ts";
import { rawOrderedRead } from "./support/raw-read.ts";
import { onShutdown, startBenchStack } from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const settings = {
  events: envNumber("BENCH_UPCAST_EVENTS", 1_000_000),
  stories: envNumber("BENCH_UPCAST_STORIES", 10_000),
  rounds: envNumber("BENCH_UPCAST_ROUNDS", 5),
  decodeSample: envNumber("BENCH_UPCAST_DECODE_SAMPLE", 100_000),
  publishWindow: 2_000,
};

const streams: Record<"v1" | "v2", EventStreamSettings> = {
  v1: {
    stream: "BENCH_UPCAST_V1",
    subjectPrefix: "bench.v1",
    partitions: 16,
    replicas: 1,
    duplicateWindowMs: 120_000,
  },
  v2: {
    stream: "BENCH_UPCAST_V2",
    subjectPrefix: "bench.v2",
    partitions: 16,
    replicas: 1,
    duplicateWindowMs: 120_000,
  },
};

/**
 * Event `i` of a story, as release `v` wrote it: even positions a DecisionAdded, odd ones a
 * SubtaskUpdated; in v1 each needs exactly one upcast step, in v2 none.
 */
function payloadOf(
  v: "v1" | "v2",
  i: number,
): { eventType: string; schema: DescMessage; payload: Message } {
  const id = `x${i}`;
  if (i % 2 === 0) {
    return v === "v1"
      ? {
          eventType: "DecisionAdded",
          schema: legacyV1.DecisionAddedSchema,
          payload: create(legacyV1.DecisionAddedSchema, {
            decisionId: id,
            title: "Store events in JetStream",
            rationale: "one stream, subjects per story, server-side concurrency checks",
            affectsSubtaskIds: ["x1"],
            alternative: "a relational outbox",
          }),
        }
      : {
          eventType: "DecisionAdded",
          schema: DecisionAddedSchema,
          payload: create(DecisionAddedSchema, {
            decisionId: id,
            title: "Store events in JetStream",
            rationale: "one stream, subjects per story, server-side concurrency checks",
            affectsSubtaskIds: ["x1"],
            alternatives: ["a relational outbox"],
          }),
        };
  }
  return v === "v1"
    ? {
        eventType: "SubtaskUpdated",
        schema: legacyV1.SubtaskUpdatedSchema,
        payload: create(legacyV1.SubtaskUpdatedSchema, {
          subtaskId: `x${i - 1}`,
          status: "in progress",
        }),
      }
    : {
        eventType: "SubtaskUpdated",
        schema: SubtaskUpdatedSchema,
        payload: create(SubtaskUpdatedSchema, {
          subtaskId: `x${i - 1}`,
          status: SubtaskStatus.IN_PROGRESS,
        }),
      };
}

/** Writes the history into a stream: the same stories, versions and times in both streams. */
async function fill(
  nc: NatsConnection,
  names: EventStreamSettings,
  v: "v1" | "v2",
): Promise<number> {
  const t0 = Date.UTC(2026, 0, 1);
  const { events, seconds } = await fillInterleaved(nc, names, {
    events: settings.events,
    stories: settings.stories,
    publishWindow: settings.publishWindow,
    envelope(s, version, prevHash) {
      const { eventType, schema, payload } = payloadOf(v, version - 1);
      return envelopeAsWritten(`story-${s}`, version, prevHash, {
        eventType,
        schemaVersion: v === "v1" ? 1 : 2,
        payloadSchema: schema,
        payload,
        occurredAt: new Date(t0 + version * 60_000 + s),
      });
    },
  });
  console.log(`  filled ${names.stream}: ${events} events in ${fmt(seconds)} s`);
  return events;
}

interface Replay {
  readonly stream: "v1" | "v2";
  readonly round: number;
  readonly events: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  readonly cpu: CpuShares;
}

/** Replays the whole stream through the store (ordered consumer, decode, upcast) and folds every story. */
async function replay(
  store: EventStore,
  v: "v1" | "v2",
  round: number,
  pids: Record<string, number | undefined>,
): Promise<Replay> {
  const states = new Map<StoryId, ContextState>();
  const stopCpu = measureCpu(pids);
  const started = performance.now();
  let events = 0;
  for await (const event of store.readAll()) {
    states.set(
      event.storyId,
      evolve(states.get(event.storyId) ?? initialState(event.storyId), event),
    );
    events += 1;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = stopCpu();
  if (states.size !== settings.stories)
    throw new Error(`replayed ${states.size} stories, not ${settings.stories}`);
  return { stream: v, round, events, seconds, eventsPerSecond: events / seconds, cpu };
}

/** The raw rate: the same ordered consumption with no decoding at all (the ratios' denominator). */
async function rawReplay(nc: NatsConnection, names: EventStreamSettings): Promise<number> {
  const { events, seconds } = await rawOrderedRead(nc, names);
  return events / seconds;
}

/** CPU only: decoding (and upcasting) the same stored bytes in a loop, no NATS. */
/** Stored messages to decode: their bytes and the subject every decode checks them against. */
interface Sampled {
  readonly data: Uint8Array;
  readonly subject: string;
}

async function decodeLoop(nc: NatsConnection, names: EventStreamSettings): Promise<Sampled[]> {
  const jsm = await jetstreamManager(nc);
  const out: Sampled[] = [];
  for (let seq = 1; out.length < Math.min(settings.decodeSample, 2_000); seq++) {
    const msg = await jsm.direct.getMessage(names.stream, { seq });
    if (msg) out.push({ data: msg.data, subject: msg.subject });
  }
  return out;
}

/** The median; for an even count, the mean of the two middle values. */
function middle(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[half] as number)
    : ((sorted[half - 1] as number) + (sorted[half] as number)) / 2;
}

function timeDecode(sample: readonly Sampled[], total: number): number {
  const started = performance.now();
  let n = 0;
  while (n < total) {
    for (const { data, subject } of sample) {
      decodeEvent(data, n, subject);
      n += 1;
    }
  }
  return n / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  console.log(
    `upcasting bench: ${settings.events} events over ${settings.stories} stories, ${settings.rounds} replays per stream`,
  );
  const benchStack = await startBenchStack();
  const teardown = onShutdown(() => benchStack.stop());
  const nc = await benchStack.connectNats("bench-upcasting");
  try {
    const jsm = await jetstreamManager(nc);
    for (const v of ["v1", "v2"] as const) {
      await provisionEventStream(jsm, streams[v]);
      await fill(nc, streams[v], v);
    }
    const pids = { bench: process.pid, nats: benchStack.pids().nats };
    const stores = {
      v1: createEventStore(nc, { names: streams.v1 }),
      v2: createEventStore(nc, { names: streams.v2 }),
    };
    // Warm-up: JIT and the server's caches, not counted.
    for (const v of ["v2", "v1"] as const) {
      for await (const event of stores[v].readAll({ toSequence: 50_000 })) void event;
    }
    const replays: Replay[] = [];
    const raw: number[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      raw.push(await rawReplay(nc, streams.v1));
      console.log(`  round ${round} raw: ${Math.round(raw[raw.length - 1] ?? 0)} messages/s`);
      for (const v of round % 2 === 1 ? (["v2", "v1"] as const) : (["v1", "v2"] as const)) {
        const r = await replay(stores[v], v, round, pids);
        replays.push(r);
        console.log(
          `  round ${round} ${v}: ${fmt(r.seconds)} s, ${Math.round(r.eventsPerSecond)} events/s, CPU ${JSON.stringify(r.cpu)}`,
        );
      }
    }
    // The CPU-only view: the same stored bytes decoded over and over, no I/O.
    const samples = { v1: await decodeLoop(nc, streams.v1), v2: await decodeLoop(nc, streams.v2) };
    timeDecode(samples.v2, 200_000);
    timeDecode(samples.v1, 200_000);
    const decode = { v2: [] as number[], v1: [] as number[] };
    for (let i = 0; i < 3; i++) {
      decode.v2.push(timeDecode(samples.v2, settings.decodeSample));
      decode.v1.push(timeDecode(samples.v1, settings.decodeSample));
    }

    const median = (xs: number[]) =>
      [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const rate = (v: "v1" | "v2") =>
      median(replays.filter((r) => r.stream === v).map((r) => r.eventsPerSecond));
    // Each round replays both streams back to back: the overhead of a round compares two replays
    // under the same conditions; the figure is the median over the rounds (mean of the middle two
    // for an even count), robust to a disturbed round.
    const perRound = Array.from({ length: settings.rounds }, (_, i) => {
      const of = (v: "v1" | "v2") =>
        replays.find((r) => r.round === i + 1 && r.stream === v)?.eventsPerSecond ?? Number.NaN;
      return of("v2") / of("v1") - 1;
    });
    const replayOverhead = middle(perRound);
    const decodeOverhead = median(decode.v2) / median(decode.v1) - 1;
    const results = {
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
      settings,
      replays,
      rawMessagesPerSecond: median(raw),
      replayEventsPerSecond: { v1: rate("v1"), v2: rate("v2") },
      replayOverhead,
      replayOverheadPerRound: perRound,
      decodePerSecond: { v1: median(decode.v1), v2: median(decode.v2) },
      decodeOverhead,
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, "upcasting.json"), `${JSON.stringify(results, null, 2)}\n`);
    console.log(
      table(
        ["path", "v2 stored (no upcast)", "v1 stored (one step each)", "overhead"],
        [
          [
            "raw ordered consumer, no decoding, messages/s",
            String(Math.round(median(raw))),
            "",
            "",
          ],
          [
            "replay: readAll + upcast + fold, events/s (median; overhead: median of per-round ratios)",
            String(Math.round(rate("v2"))),
            String(Math.round(rate("v1"))),
            `${fmt(replayOverhead * 100)} %`,
          ],
          [
            "replay as a share of the raw rate",
            `${fmt((rate("v2") / median(raw)) * 100)} %`,
            `${fmt((rate("v1") / median(raw)) * 100)} %`,
            "",
          ],
          [
            "decode + upcast only, no I/O, events/s (median)",
            String(Math.round(median(decode.v2))),
            String(Math.round(median(decode.v1))),
            `${fmt(decodeOverhead * 100)} %`,
          ],
        ],
      ),
    );
  } finally {
    await nc.close();
    await teardown();
  }
}

await main();
