// What the command service's story cache costs in heap per cached event, which is what the default of
// STORY_CACHE_EVENTS rests on. Run it with `make bench`.
//
// The command service runs in this process (so the heap can be measured after a full collection),
// against NATS from a bench stack. For each shape, a fresh service on a stream of its own gets
// `stories` CreateContext calls, then AddSubtask (one event per command) or ApplyChanges (ten
// AddSubtask changes per command) until every story holds `events` events. The heap is measured,
// after two full collections, once the service has started and answered one call, and again
// after the writes. Their difference, over the events the cache holds
// (`ctx_command_story_cache_events`), is the figure. It includes the event store's per-story head and
// everything else the writes left behind, so it is an upper bound of the cache's own cost.
//
// Env: BENCH_CACHE_STORIES (1000), BENCH_CACHE_EVENTS (100: events per story).
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { loadCommandConfig, startCommandApp } from "@ctx/command-service";
import { createLogger } from "@ctx/config";
import { ContextCommandService } from "@ctx/proto";
import { createTestAuth } from "@ctx/test-support/auth";
import { bearer } from "./support/bearer.ts";
import { closedLoop } from "./support/load.ts";
import { gauge, scrape } from "./support/metrics.ts";
import { type BenchStack, onShutdown, startBenchStack } from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const settings = {
  stories: envNumber("BENCH_CACHE_STORIES", 1_000),
  eventsPerStory: envNumber("BENCH_CACHE_EVENTS", 100),
  concurrency: 64,
};

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

function heapAfterCollection(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

interface Shape {
  readonly name: string;
  readonly changesPerCommand: number;
}

interface ShapeResult extends Shape {
  readonly cachedStories: number;
  readonly cachedEvents: number;
  readonly heapBytes: number;
  readonly bytesPerEvent: number;
  readonly writeSeconds: number;
}

const shapes: readonly Shape[] = [
  { name: "AddSubtask: one event per command", changesPerCommand: 1 },
  { name: "ApplyChanges: ten events per command", changesPerCommand: 10 },
];

/** The service runs with authentication on, as deployed: a token issuer of the bench's own. */
const auth = createTestAuth();

async function measure(stack: BenchStack, shape: Shape, index: number): Promise<ShapeResult> {
  const config = loadCommandConfig({
    // Its own stream per shape: the admin's user (the command user's rights name the default one).
    ...stack.natsEnv("admin"),
    COMMAND_LISTEN: "127.0.0.1:0",
    COMMAND_OPS_LISTEN: "127.0.0.1:0",
    EVENT_STREAM: `CACHE_MEMORY_${index}`,
    EVENT_SUBJECT_PREFIX: `cache.memory.${index}`,
    // Room for every story and event: the bench measures what they cost, not the eviction.
    STORY_CACHE_SIZE: String(settings.stories + 1),
    STORY_CACHE_EVENTS: String((settings.stories + 1) * settings.eventsPerStory),
    // Room for stories of a subtask per event, when BENCH_CACHE_EVENTS asks for more than a story
    // may hold by default (1,000 subtasks).
    STORY_MAX_SUBTASKS: String(Math.max(1_000, settings.eventsPerStory)),
    ...auth.env,
  });
  const logger = createLogger({ name: "bench-cache-memory", level: "warn", pretty: false });
  // The service only checks for its stream: the operator creates it.
  await stack.provision({
    EVENT_STREAM: config.EVENT_STREAM,
    EVENT_SUBJECT_PREFIX: config.EVENT_SUBJECT_PREFIX,
  });
  const app = await startCommandApp(config, logger);
  try {
    const client = createClient(
      ContextCommandService,
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${app.rpcPort}`,
        interceptors: [bearer(auth.authorization)],
      }),
    );
    await client.createContext({ storyId: "warm-up", title: "Warm-up", description: "" });
    const metricsUrl = `http://127.0.0.1:${app.opsPort}/metrics`;
    const cachedBefore = await cacheGauges(metricsUrl);
    const before = heapAfterCollection();

    const started = performance.now();
    const ids = Array.from({ length: settings.stories }, (_, i) => `m${i}`);
    await closedLoop({
      concurrency: settings.concurrency,
      count: ids.length,
      call: (_, i) =>
        client.createContext({ storyId: ids[i] as string, title: `Story ${i}`, description: "" }),
    });
    const commandsPerStory = Math.floor((settings.eventsPerStory - 1) / shape.changesPerCommand);
    const load = await closedLoop({
      concurrency: settings.concurrency,
      count: ids.length * commandsPerStory,
      call: (_, i) => {
        // Story by story in turn, so every story grows at the same pace.
        const storyId = ids[i % ids.length] as string;
        const round = Math.floor(i / ids.length);
        const subtask = (k: number) => ({
          subtaskId: `t${round * shape.changesPerCommand + k}`,
          title: `Subtask ${round * shape.changesPerCommand + k} of ${storyId}`,
          dependsOn: [],
        });
        if (shape.changesPerCommand === 1) return client.addSubtask({ storyId, ...subtask(0) });
        return client.applyChanges({
          storyId,
          changes: Array.from({ length: shape.changesPerCommand }, (_, k) => ({
            change: { case: "addSubtask", value: subtask(k) },
          })),
        });
      },
    });
    if (load.errors > 0) throw new Error(`writes failed: ${load.errorSamples.join("; ")}`);
    const writeSeconds = (performance.now() - started) / 1000;

    const after = heapAfterCollection();
    const cached = await cacheGauges(metricsUrl);
    const cachedEvents = cached.events - cachedBefore.events;
    return {
      ...shape,
      cachedStories: cached.stories - cachedBefore.stories,
      cachedEvents,
      heapBytes: after - before,
      bytesPerEvent: (after - before) / cachedEvents,
      writeSeconds,
    };
  } finally {
    await app.stop();
  }
}

async function cacheGauges(url: string): Promise<{ stories: number; events: number }> {
  const text = await scrape(url);
  const read = (name: string) => {
    const value = gauge(text, name);
    if (Number.isNaN(value)) throw new Error(`${name} missing from ${url}`);
    return value;
  };
  return {
    stories: read("ctx_command_story_cache_stories"),
    events: read("ctx_command_story_cache_events"),
  };
}

async function main(): Promise<void> {
  const stack = await startBenchStack();
  const teardown = onShutdown(() => stack.stop());
  try {
    console.log(
      `story-cache memory: ${settings.stories} stories of ${settings.eventsPerStory} events, command service in this process (Node ${process.version}, ${os.cpus()[0]?.model ?? "?"})`,
    );
    const results: ShapeResult[] = [];
    for (const [i, shape] of shapes.entries()) results.push(await measure(stack, shape, i));
    console.log(
      table(
        ["shape", "stories cached", "events cached", "heap MB", "bytes per event", "writes s"],
        results.map((r) => [
          r.name,
          String(r.cachedStories),
          String(r.cachedEvents),
          fmt(r.heapBytes / 1e6),
          fmt(r.bytesPerEvent, 0),
          fmt(r.writeSeconds),
        ]),
      ),
    );
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      join(resultsDir, "story-cache-memory.json"),
      `${JSON.stringify({ bench: "story-cache-memory", startedAt: new Date().toISOString(), settings, results }, null, 2)}\n`,
    );
    console.log("JSON: bench/results/story-cache-memory.json");
  } finally {
    await teardown();
  }
}

await main();
