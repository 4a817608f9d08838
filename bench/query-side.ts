// The query-side benchmark: GetContextAtTime (a story folded from its nearest snapshot, or from its
// first event) on stories of 10, 1,000 and 10,000 events, with snapshots on and off; and GetContext
// (served from the Valkey read model) at a fixed open-loop rate, against the floor of a no-op
// node:http2 server under the same load. The query service, the snapshotter (inside it) and the
// Valkey projector run as separate processes. Run it with `make bench` (needs Go for bench/loadgen).
//
// Env: BENCH_SECONDS (10, per measured phase), BENCH_WARMUP_SECONDS (2), BENCH_QUERY_SIZES
//      ("10,1000,10000"), BENCH_QUERY_LEVELS ("1,8": GetContextAtTime calls in flight),
//      BENCH_QUERY_RATE (1000: GetContext calls a second), BENCH_QUERY_CURRENT_WARMUP_SECONDS (30:
//      the warm-up of each GetContext phase), BENCH_QUERY_STORIES (1000 small stories
//      beside the measured ones), BENCH_PROFILE=1 (both query services write a .cpuprofile to
//      bench/results/profiles/query-side/ when they stop), BENCH_CLIENT ("h2": the measured calls
//      through a minimal gRPC client on node:http2; "connect": through connect-node's client),
//      BENCH_SNAPSHOT_INTERVAL (100: the query service's default SNAPSHOT_INTERVAL),
//      BENCH_QUERY_LOAD_CLIENTS ("go,node": who sends the GetContext calls, one phase each: the Go
//      load generator of bench/loadgen, after the same load against a no-op node:http2 server as
//      the floor; then this process through BENCH_CLIENT's client).
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  type Command,
  type ContextEventData,
  type ContextState,
  decide,
  evolve,
  initialState,
  storyId,
  streamVersion,
} from "@ctx/domain";
import {
  createEventStore,
  defaultEventStreamSettings,
  type EventStore,
  provisionEventStream,
} from "@ctx/event-store";
import {
  ContextQueryService,
  ContextSource,
  GetContextAtTimeRequestSchema,
  GetContextRequestSchema,
  type GetContextResponse,
  GetContextResponseSchema,
  SubtaskStatus,
} from "@ctx/proto";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { bearer } from "./support/bearer.ts";
import { type CpuShares, measureCpu } from "./support/cpu.ts";
import { type H2Client, h2Client } from "./support/h2-client.ts";
import { closedLoop } from "./support/load.ts";
import { buildLoadgen, goOpenLoop, startNoopGrpcServer } from "./support/loadgen.ts";
import {
  bucketShares,
  buckets,
  gauge,
  histogram,
  loopDelayMs,
  meanMs,
  type SumCount,
  scrape,
} from "./support/metrics.ts";
import { type OpenLoopResult, openLoop } from "./support/open-loop.ts";
import {
  describeMachine,
  gitState,
  natsServerVersion,
  type Phase,
  watchLoopDelay,
  withCpu,
} from "./support/run-info.ts";
import {
  type BenchService,
  type BenchStack,
  onShutdown,
  startBenchStack,
} from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const settings = {
  seconds: envNumber("BENCH_SECONDS", 10),
  warmupSeconds: envNumber("BENCH_WARMUP_SECONDS", 2),
  sizes: envList("BENCH_QUERY_SIZES", "10,1000,10000"),
  levels: envList("BENCH_QUERY_LEVELS", "1,8"),
  rate: envNumber("BENCH_QUERY_RATE", 1000),
  /**
   * Warm-up of each GetContext phase (floor, go, node). Two seconds left a fresh process short of
   * its steady state: in alternating runs the p99 through the generator was 3.69 ms after 2 s and
   * 1.54 and 1.45 ms after 30 s (the no-op floor 1.22 against 0.50 and 0.56 ms).
   */
  currentWarmupSeconds: envNumber("BENCH_QUERY_CURRENT_WARMUP_SECONDS", 30),
  /**
   * GetContext calls in flight at most: a service that falls this far behind is overloaded, and
   * more calls in flight would only make HTTP/2 refuse streams; the calls due meanwhile are dropped
   * (and counted).
   */
  maxInFlight: 500,
  /** Small stories written between the measured ones (and read by the GetContext phase). */
  smallStories: envNumber("BENCH_QUERY_STORIES", 1000),
  smallStoryEvents: 10,
  /** SNAPSHOT_INTERVAL of the query services; 100 is their default. */
  snapshotInterval: envNumber("BENCH_SNAPSHOT_INTERVAL", 100),
  /** Events the largest story gets per append while the stories are written. */
  appendBatch: 4,
  /** Which measurements to make: GetContextAtTime ("temporal"), GetContext ("current"). */
  phases: (process.env.BENCH_QUERY_PHASES ?? "temporal,current").split(","),
  profile: process.env.BENCH_PROFILE === "1",
  /**
   * The client of the measured calls: "h2", a minimal gRPC client on node:http2 (the default: it
   * takes less of the cores the service and NATS share with it), or "connect", connect-node's.
   */
  client: clientKind(process.env.BENCH_CLIENT ?? "h2"),
  /**
   * Who sends the GetContext calls, one phase each, in this order: "go" (bench/loadgen) and
   * "node" (this process, through `client`).
   */
  loadClients: (process.env.BENCH_QUERY_LOAD_CLIENTS ?? "go,node").split(",").map(loadClient),
};
/** The query service's snapshot stream, by its default name (services/query/src/config.ts). */
const SNAPSHOT_STREAM = "CONTEXT_SNAPSHOTS";
const profilesDir = join(resultsDir, "profiles/query-side");

type Queries = Client<typeof ContextQueryService>;

/** The measured calls, through one client or the other (`settings.client`). */
interface MeasuredCalls {
  getContext(storyId: string): Promise<GetContextResponse>;
  getContextAtTime(storyId: string, ms: number): Promise<GetContextResponse>;
}

function loadClient(value: string): LoadClient {
  if (value !== "go" && value !== "node") {
    throw new Error("BENCH_QUERY_LOAD_CLIENTS must list go and/or node");
  }
  return value;
}

function clientKind(value: string): "connect" | "h2" {
  if (value !== "connect" && value !== "h2") throw new Error("BENCH_CLIENT must be connect or h2");
  return value;
}

function measuredCalls(client: Queries, h2: H2Client | undefined): MeasuredCalls {
  if (h2 === undefined) {
    return {
      getContext: (id) => client.getContext({ storyId: id }),
      getContextAtTime: (id, ms) =>
        client.getContextAtTime({ storyId: id, timestamp: timestampFromMs(ms) }),
    };
  }
  const method = (name: string) => `/${ContextQueryService.typeName}/${name}`;
  return {
    getContext: async (id) =>
      fromBinary(
        GetContextResponseSchema,
        await h2.unary(
          method("GetContext"),
          toBinary(GetContextRequestSchema, create(GetContextRequestSchema, { storyId: id })),
        ),
      ),
    getContextAtTime: async (id, ms) =>
      fromBinary(
        GetContextResponseSchema,
        await h2.unary(
          method("GetContextAtTime"),
          toBinary(
            GetContextAtTimeRequestSchema,
            create(GetContextAtTimeRequestSchema, { storyId: id, timestamp: timestampFromMs(ms) }),
          ),
        ),
      ),
  };
}

/** A story the bench wrote: its id and when each of its versions occurred (index = version - 1). */
interface WrittenStory {
  readonly id: string;
  readonly occurredAt: number[];
  state: ContextState;
}

interface TemporalPhase {
  readonly events: number;
  readonly snapshots: boolean;
  readonly concurrency: number;
  readonly result: Phase;
  /** From the query service's own metrics over the phase (warm-up included). */
  readonly serviceSide: {
    readonly handlingMs: number;
    /** The smallest bucket bound of the handling histogram that holds 99 % of the calls. */
    readonly handlingP99AtMostMs: number;
    /** Mean events read and folded per answer. */
    readonly eventsFolded: number;
    /** Share of answers that started from a snapshot. */
    readonly snapshotHits: number;
    /** Share of answers whose events came from a stored segment, not the event stream. */
    readonly fromSegment: number;
    readonly loopLagP99Ms: number;
  };
}

/**
 * Who sends the GetContext calls: "go", the Go load generator (bench/loadgen), whose pauses and CPU
 * are small enough not to show in the service's latency; "node", this process through the client
 * of `settings.client`, which on two cores adds its own collections to the tail.
 */
type LoadClient = "go" | "node";

/** The no-op server under the same load (see floorPhase). */
interface FloorPhase {
  readonly result: OpenLoopResult & { readonly cpuPercent: CpuShares };
}

interface ReadModelPhase {
  readonly client: LoadClient;
  readonly result: OpenLoopResult & { readonly cpuPercent: CpuShares };
  /** This process's event-loop delay beyond the monitor's 10 ms resolution. */
  readonly benchLoopLagMs: { readonly p99: number; readonly max: number };
  /** Answers that did not come from the read model (it lagged or missed the story). */
  readonly notFromReadModel: number;
  readonly serviceSide: {
    readonly handlingMs: number;
    /** The smallest bucket bound of the handling histogram that holds 99 % of the calls. */
    readonly handlingP99AtMostMs: number;
    /** Share of the calls handled within 0.5, 1, 2.5 and 5 ms (the histogram's first buckets). */
    readonly handledWithin: readonly { readonly ms: number; readonly share: number }[];
    readonly loopLagP99Ms: number;
  };
}

function envList(name: string, fallback: string): number[] {
  const values = (process.env[name] ?? fallback).split(",").map(Number);
  if (values.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new Error(`${name} must be positive whole numbers, comma-separated`);
  }
  return values;
}

const log = (line: string) => console.error(line);

async function main(): Promise<void> {
  const started = new Date();
  const machine = describeMachine();
  log(
    `query-side bench: stories of ${settings.sizes.join("/")} events, ${settings.seconds}s per phase, GetContextAtTime at ${settings.levels.join("/")} in flight, GetContext at ${settings.rate}/s`,
  );
  log(
    `machine: ${machine.cpus}× ${machine.cpuModel}, load average ${machine.loadAverage1m} (1 min)`,
  );
  if (machine.loadAverage1m > machine.cpus / 4) {
    log("warning: the machine is busy; figures will be low (see the 'other' CPU column)");
  }
  if (settings.phases.includes("current") && settings.loadClients.includes("go")) {
    log("building the Go load generator (bench/loadgen)…");
    await buildLoadgen();
  }

  const stack = await startBenchStack({ valkey: true });
  const sessions: Http2SessionManager[] = [];
  const h2Sessions: http2.ClientHttp2Session[] = [];
  let nc: NatsConnection | undefined;
  const shutdown = onShutdown(async () => {
    for (const s of sessions) s.abort();
    for (const s of h2Sessions) s.destroy();
    await nc?.close().catch(() => undefined);
    await stack.stop();
  });
  try {
    if (settings.profile) {
      rmSync(profilesDir, { recursive: true, force: true });
      mkdirSync(profilesDir, { recursive: true });
    }
    const nodeArgs = settings.profile ? ["--cpu-prof", `--cpu-prof-dir=${profilesDir}`] : [];
    nc = await stack.connectNats("bench-query-side");
    await provisionEventStream(await jetstreamManager(nc), defaultEventStreamSettings);
    const natsVersion = await natsServerVersion(stack);

    // The query service with its defaults: snapshots read, the snapshotter running in it. It starts
    // before the stories are written, so snapshots are stored while they grow, as in real use.
    const queryEnv = {
      LOG_LEVEL: "warn",
      // Not used by the RPCs measured here; the driver connects only when a graph query comes.
      NEO4J_URL: "bolt://127.0.0.1:9",
      SNAPSHOT_INTERVAL: String(settings.snapshotInterval),
    };
    const withSnapshots = await stack.startService("query", {
      entry: "services/query/src/main.ts",
      listenVariable: "QUERY_LISTEN",
      opsListenVariable: "QUERY_OPS_LISTEN",
      natsRole: "query",
      // The snapshotter writes with its own user, as deploy/local/services.sh starts it.
      env: {
        ...queryEnv,
        ...Object.fromEntries(
          Object.entries(stack.natsEnv("snapshotter")).map(([k, v]) => [`SNAPSHOTTER_${k}`, v]),
        ),
        SNAPSHOTS: "on",
        SNAPSHOTTER: "on",
      },
      nodeArgs,
    });
    const projector = await stack.startService("projector", {
      entry: "services/projector/src/main.ts",
      opsListenVariable: "PROJECTOR_OPS_LISTEN",
      natsRole: "projector-valkey",
      env: { LOG_LEVEL: "warn", PROJECTION: "valkey", PROJECTOR_REPLICA_ID: "bench-valkey-0" },
    });
    log(
      `servers: NATS ${stack.natsUrl}, Valkey ${stack.valkeyUrl}, query service ${withSnapshots.url}, Valkey projector (in ${stack.dir})`,
    );

    const store = createEventStore(nc, { timeoutMs: 10_000 });
    log("setup: writing the stories (atomic batch appends through the event store)…");
    const t0 = performance.now();
    const stories = await writeStories(store);
    const writeSeconds = (performance.now() - t0) / 1000;
    const totalEvents = [...stories.values()].reduce((n, s) => n + s.occurredAt.length, 0);
    log(`setup: ${totalEvents} events in ${fmt(writeSeconds, 1)} s; waiting for the snapshotter…`);

    const querying = (service: BenchService): Queries => {
      const sessionManager = new Http2SessionManager(service.url);
      sessions.push(sessionManager);
      return createClient(
        ContextQueryService,
        createGrpcTransport({
          baseUrl: service.url,
          sessionManager,
          interceptors: [bearer(stack.authorization)],
        }),
      );
    };
    const client = querying(withSnapshots);
    const measuring = (service: BenchService, connectClient: Queries): MeasuredCalls => {
      if (settings.client === "connect") return measuredCalls(connectClient, undefined);
      const open = () => {
        const session = http2.connect(service.url);
        session.on("error", () => undefined);
        h2Sessions.push(session);
        return session;
      };
      return measuredCalls(connectClient, h2Client(open, stack.authorization));
    };
    const t1 = performance.now();
    const snapshotsWritten = await waitForSnapshotter(withSnapshots);
    const snapshotterSeconds = (performance.now() - t1) / 1000;
    const expectedSnapshots = settings.sizes.reduce(
      (n, size) => n + Math.floor(size / settings.snapshotInterval),
      Math.floor(settings.smallStoryEvents / settings.snapshotInterval) * settings.smallStories,
    );
    if (snapshotsWritten !== expectedSnapshots) {
      throw new Error(
        `the snapshotter wrote ${snapshotsWritten} snapshots, not ${expectedSnapshots}`,
      );
    }
    log(`setup: ${snapshotsWritten} snapshots; waiting for the Valkey read model…`);
    await waitForReadModel(client, stories);
    const readModelSeconds = (performance.now() - t1) / 1000;
    // What the snapshots and their segments cost in storage, beside the events they derive from.
    const jsm = await jetstreamManager(nc);
    const storedBytes = async (stream: string) => (await jsm.streams.info(stream)).state.bytes;
    const eventBytes = await storedBytes(defaultEventStreamSettings.stream);
    const snapshotBytes = await storedBytes(SNAPSHOT_STREAM);

    const withoutSnapshots = await stack.startService("query-nosnap", {
      entry: "services/query/src/main.ts",
      listenVariable: "QUERY_LISTEN",
      opsListenVariable: "QUERY_OPS_LISTEN",
      natsRole: "query",
      env: { ...queryEnv, SNAPSHOTS: "off", SNAPSHOTTER: "off" },
      nodeArgs,
    });
    const calls = measuring(withSnapshots, client);
    const callsNoSnap = measuring(withoutSnapshots, querying(withoutSnapshots));

    const temporal: TemporalPhase[] = [];
    for (const size of settings.phases.includes("temporal") ? settings.sizes : []) {
      const story = stories.get(sizedId(size)) as WrittenStory;
      for (const snapshots of [true, false]) {
        for (const concurrency of settings.levels) {
          log(
            `GetContextAtTime: ${size}-event story, snapshots ${snapshots ? "on" : "off"}, ${concurrency} in flight…`,
          );
          temporal.push(
            await temporalPhase(
              stack,
              snapshots ? withSnapshots : withoutSnapshots,
              snapshots ? calls : callsNoSnap,
              story,
              snapshots,
              concurrency,
              projector,
            ),
          );
        }
      }
    }

    const readModel: ReadModelPhase[] = [];
    let floor: FloorPhase | undefined;
    if (settings.phases.includes("current")) {
      // For the Go generator: one GetContext request per story, encoded once.
      const requests = [...stories.keys()].map((id) =>
        toBinary(GetContextRequestSchema, create(GetContextRequestSchema, { storyId: id })),
      );
      if (settings.loadClients.includes("go")) {
        log(`floor: a no-op node:http2 gRPC server at ${settings.rate} calls/s…`);
        floor = await floorPhase(requests, stack.authorization);
      }
      for (const client of settings.loadClients) {
        log(`GetContext: ${settings.rate} calls/s, open loop, sent by the ${client} client…`);
        readModel.push(
          await readModelPhase(stack, withSnapshots, calls, stories, requests, projector, client),
        );
      }
    }

    const results = {
      bench: "query-side",
      startedAt: started.toISOString(),
      git: gitState(),
      machine: { ...machine, natsServer: natsVersion },
      settings,
      setup: {
        events: totalEvents,
        writeSeconds,
        snapshotsWritten,
        snapshotterCaughtUpSeconds: snapshotterSeconds,
        readModelCaughtUpSeconds: readModelSeconds,
        eventBytes,
        snapshotBytes,
        finalState: settings.sizes.map((size) => {
          const s = (stories.get(sizedId(size)) as WrittenStory).state;
          return { events: size, subtasks: s.subtasks.size, decisions: s.decisions.size };
        }),
      },
      temporal,
      snapshotGain: snapshotGain(temporal),
      readModel,
      floor,
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, "query-side.json"), `${JSON.stringify(results, null, 2)}\n`);
    console.log(report(results));
    console.log(`\nJSON: bench/results/query-side.json`);
  } finally {
    await shutdown();
  }
  if (settings.profile) {
    for (const f of readdirSync(profilesDir)) {
      console.log(`CPU profile of a query service: ${join(profilesDir, f)}`);
    }
  }
}

const sizedId = (size: number) => `story-${size}`;
const smallId = (index: number) => `small-${String(index).padStart(5, "0")}`;

/**
 * The next command of a story, decided like the command service would: the story opens, gains a
 * subtask every 10 events (up to 100) and a decision every 50 (up to 20); every other event moves
 * a subtask on (TODO → IN_PROGRESS → DONE → IN_PROGRESS …) and hands it to someone else. So a long
 * story is mostly status changes, and its state stays a realistic size (≤ 100 subtasks, ≤ 20
 * decisions) however long its history.
 */
function nextCommand(state: ContextState, version: number): Command {
  if (version === 1) {
    return {
      type: "CreateContext",
      title: `Benchmark story ${state.storyId}`,
      description: "A story of the query-side benchmark",
    };
  }
  const subtasks = state.subtasks.size;
  if (subtasks === 0 || (version % 10 === 2 && subtasks < 100)) {
    const id = `t${subtasks + 1}`;
    return { type: "AddSubtask", subtaskId: id, title: `Subtask ${id}`, dependsOn: [] };
  }
  const decisions = state.decisions.size;
  if (version % 50 === 0 && decisions < 20) {
    const id = `d${decisions + 1}`;
    return {
      type: "AddDecision",
      decisionId: id,
      title: `Decision ${id}`,
      rationale: "Measured, then chosen",
      madeBy: "bench",
      alternatives: ["keep it", "rewrite it"],
      affectsSubtaskIds: [`t${(version % subtasks) + 1}`],
    };
  }
  const id = `t${(version % subtasks) + 1}`;
  const current = state.subtasks.get(id)?.status;
  const status =
    current === SubtaskStatus.IN_PROGRESS ? SubtaskStatus.DONE : SubtaskStatus.IN_PROGRESS;
  return { type: "UpdateSubtask", subtaskId: id, status, assignee: `dev${version % 7}` };
}

/** The next `count` events of a story, decided and applied one after the other. */
function nextEvents(story: WrittenStory, count: number): ContextEventData[] {
  const out: ContextEventData[] = [];
  let state = story.state;
  for (let i = 0; i < count; i++) {
    const version = state.version + 1;
    const [data, ...more] = decide(nextCommand(state, version), state);
    if (data === undefined || more.length > 0) {
      throw new Error(`the story script decided ${more.length + (data ? 1 : 0)} events, not 1`);
    }
    state = evolve(state, { version: streamVersion(version), occurredAt: new Date(), data });
    out.push(data);
  }
  story.state = state;
  return out;
}

/**
 * Writes the measured stories and the small ones into CONTEXT_EVENTS, the stream the services read,
 * in rounds: each round appends the next slice of every story (the largest gets `appendBatch`
 * events, one atomic batch; the others proportionally fewer), so all stories grow over the same
 * period, their events interleaved in the stream, and event times spread over it.
 */
async function writeStories(store: EventStore): Promise<Map<string, WrittenStory>> {
  const stories = new Map<string, WrittenStory>();
  const story = (id: string) => {
    let s = stories.get(id);
    if (s === undefined) {
      s = { id, occurredAt: [], state: initialState(storyId(id)) };
      stories.set(id, s);
    }
    return s;
  };
  const chains = new Map<string, Promise<void>>();
  // Appends to one story one after the other; different stories in parallel.
  const append = (id: string, count: number) => {
    const s = story(id);
    const next = (chains.get(id) ?? Promise.resolve()).then(async () => {
      const expected = streamVersion(s.state.version);
      const data = nextEvents(s, count);
      const result = await store.append(
        storyId(id),
        data.map((d) => ({ data: d })),
        expected,
      );
      for (const e of result.events) s.occurredAt.push(e.occurredAt.getTime());
    });
    chains.set(id, next);
    return next;
  };
  const largest = Math.max(...settings.sizes);
  const rounds = Math.ceil(largest / settings.appendBatch);
  const smallTotal = settings.smallStories * settings.smallStoryEvents;
  // Small stories' events in round-robin order: a story's next event comes after every other's.
  const smallAt = (i: number) => smallId(i % settings.smallStories);
  for (let round = 0; round < rounds; round++) {
    const writes: Promise<void>[] = [];
    for (const size of settings.sizes) {
      const count = Math.floor(((round + 1) * size) / rounds) - Math.floor((round * size) / rounds);
      if (count > 0) writes.push(append(sizedId(size), count));
    }
    const from = Math.floor((round * smallTotal) / rounds);
    const to = Math.floor(((round + 1) * smallTotal) / rounds);
    for (let i = from; i < to; i++) writes.push(append(smallAt(i), 1));
    await Promise.all(writes);
  }
  for (const s of stories.values()) {
    if (s.occurredAt.length !== s.state.version) throw new Error(`story ${s.id} is incomplete`);
  }
  return stories;
}

/** Waits until the snapshotter has processed every event; returns the snapshots it wrote. */
async function waitForSnapshotter(service: BenchService): Promise<number> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const metrics = await scrape(service.metricsUrl);
    if (gauge(metrics, "ctx_snapshotter_lag_events") === 0) {
      return gauge(metrics, "ctx_snapshots_written_total");
    }
    if (Date.now() > deadline) throw new Error("the snapshotter did not catch up in 5 minutes");
    await sleep(250);
  }
}

/** Waits until GetContext answers every story from the read model at its last version. */
async function waitForReadModel(client: Queries, stories: Map<string, WrittenStory>) {
  const deadline = Date.now() + 300_000;
  let waiting = [...stories.values()];
  while (waiting.length > 0) {
    const behind: WrittenStory[] = [];
    for (let i = 0; i < waiting.length; i += 64) {
      const slice = waiting.slice(i, i + 64);
      const answers = await Promise.all(
        slice.map((s) => client.getContext({ storyId: s.id }).catch(() => undefined)),
      );
      answers.forEach((a, j) => {
        const s = slice[j] as WrittenStory;
        if (a?.source !== ContextSource.READ_MODEL || a.version !== s.state.version) behind.push(s);
      });
    }
    waiting = behind;
    if (waiting.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`the Valkey read model lags on ${waiting.length} stories after 5 minutes`);
    }
    await sleep(250);
  }
}

/**
 * GetContextAtTime at random times between a story's first and last event, closed loop; every
 * answer is checked against the version the story had at that time.
 */
async function temporalPhase(
  stack: BenchStack,
  service: BenchService,
  calls: MeasuredCalls,
  story: WrittenStory,
  snapshots: boolean,
  concurrency: number,
  projector: BenchService,
): Promise<TemporalPhase> {
  const times = story.occurredAt;
  const first = times[0] as number;
  const span = (times[times.length - 1] as number) - first + 1;
  const versionAt = (t: number) => {
    // The longest prefix of the history whose events occurred by t (times never decrease).
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((times[mid] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const call = async () => {
    const t = first + Math.floor(Math.random() * span);
    const answer = await calls.getContextAtTime(story.id, t);
    if (answer.version !== versionAt(t)) {
      throw new Error(`version ${answer.version} at ${t}, expected ${versionAt(t)}`);
    }
  };
  const before = await scrape(service.metricsUrl);
  const result = await withCpu(cpuPids(stack, service, projector), ["query"], () =>
    closedLoop({
      concurrency,
      warmupMs: settings.warmupSeconds * 1000,
      durationMs: settings.seconds * 1000,
      call,
    }),
  );
  const after = await scrape(service.metricsUrl);
  const folded = (label: string) => {
    const b = histogram(before, "ctx_query_temporal_events_folded", [label]);
    const a = histogram(after, "ctx_query_temporal_events_folded", [label]);
    return { sum: a.sum - b.sum, count: a.count - b.count } satisfies SumCount;
  };
  const hit = folded('snapshot="hit"');
  const miss = folded('snapshot="miss"');
  const segment = folded('events_from="segment"');
  const handling = ["grpc_server_handling_seconds", ['grpc_method="GetContextAtTime"']] as const;
  return {
    events: times.length,
    snapshots,
    concurrency,
    result,
    serviceSide: {
      handlingMs: meanMs(histogram(before, ...handling), histogram(after, ...handling)),
      handlingP99AtMostMs: bucketShares(buckets(before, ...handling), buckets(after, ...handling))
        .p99AtMostMs,
      eventsFolded: (hit.sum + miss.sum) / (hit.count + miss.count),
      snapshotHits: hit.count / (hit.count + miss.count),
      fromSegment: segment.count / (hit.count + miss.count),
      loopLagP99Ms: loopDelayMs(after, "nodejs_eventloop_lag_p99_seconds"),
    },
  };
}

/** GetContext on random stories (all of them) at a fixed rate, open loop, sent by `client`. */
async function readModelPhase(
  stack: BenchStack,
  service: BenchService,
  calls: MeasuredCalls,
  stories: Map<string, WrittenStory>,
  requests: readonly Uint8Array[],
  projector: BenchService,
  client: LoadClient,
): Promise<ReadModelPhase> {
  const ids = [...stories.keys()];
  const loop = {
    ratePerSecond: settings.rate,
    maxInFlight: settings.maxInFlight,
    warmupMs: settings.currentWarmupSeconds * 1000,
    durationMs: settings.seconds * 1000,
  };
  const before = await scrape(service.metricsUrl);
  const done = measureCpu(cpuPids(stack, service, projector), ["query"]);
  const loopDelay = watchLoopDelay();
  let result: OpenLoopResult;
  let notFromReadModel = 0;
  if (client === "go") {
    const go = await goOpenLoop({
      ...loop,
      target: new URL(service.url).host,
      method: `/${ContextQueryService.typeName}/GetContext`,
      requests,
      tallyField: GetContextResponseSchema.field.source.number,
      authorization: stack.authorization,
    });
    result = go;
    notFromReadModel = go.calls - (go.tally[String(ContextSource.READ_MODEL)] ?? 0);
  } else {
    result = await openLoop({
      ...loop,
      call: async () => {
        const id = ids[Math.floor(Math.random() * ids.length)] as string;
        const answer = await calls.getContext(id);
        if (answer.source !== ContextSource.READ_MODEL) notFromReadModel++;
      },
    });
  }
  const benchLoopLagMs = loopDelay();
  const cpuPercent = done();
  const after = await scrape(service.metricsUrl);
  const handling = ["grpc_server_handling_seconds", ['grpc_method="GetContext"']] as const;
  const handled = bucketShares(buckets(before, ...handling), buckets(after, ...handling));
  return {
    client,
    result: { ...result, cpuPercent },
    benchLoopLagMs,
    notFromReadModel,
    serviceSide: {
      handlingMs: meanMs(histogram(before, ...handling), histogram(after, ...handling)),
      handlingP99AtMostMs: handled.p99AtMostMs,
      handledWithin: handled.shares.filter((b) => b.ms <= 5),
      loopLagP99Ms: loopDelayMs(after, "nodejs_eventloop_lag_p99_seconds"),
    },
  };
}

/**
 * The floor: the same open loop from the Go generator against a node:http2 gRPC server that does
 * nothing (bench/support/noop-grpc-server.ts), with the GetContext requests echoed back. What is
 * left between it and GetContext is the service's work: Connect, validation, Valkey, encoding.
 */
async function floorPhase(
  requests: readonly Uint8Array[],
  authorization: string,
): Promise<FloorPhase> {
  const server = await startNoopGrpcServer();
  try {
    // In the "query" column: the server under load.
    const done = measureCpu({ query: server.pid });
    const result = await goOpenLoop({
      target: server.target,
      method: "/bench.Noop/Echo",
      requests,
      // The same header as the measured calls, so the floor carries what they carry.
      authorization,
      ratePerSecond: settings.rate,
      maxInFlight: settings.maxInFlight,
      warmupMs: settings.currentWarmupSeconds * 1000,
      durationMs: settings.seconds * 1000,
    });
    return { result: { ...result, cpuPercent: done() } };
  } finally {
    await server.stop();
  }
}

function cpuPids(stack: BenchStack, query: BenchService, projector: BenchService) {
  const pids = stack.pids();
  return { query: query.pid, nats: pids.nats, valkey: pids.valkey, projector: projector.pid };
}

/** Snapshots on against off, per story size and calls in flight. */
function snapshotGain(phases: readonly TemporalPhase[]) {
  return phases
    .filter((p) => p.snapshots)
    .flatMap((on) => {
      const off = phases.find(
        (p) => !p.snapshots && p.events === on.events && p.concurrency === on.concurrency,
      );
      if (off === undefined) return [];
      return [
        {
          events: on.events,
          concurrency: on.concurrency,
          p50: off.result.latencyMs.p50 / on.result.latencyMs.p50,
          p99: off.result.latencyMs.p99 / on.result.latencyMs.p99,
          throughput: on.result.perSecond / off.result.perSecond,
        },
      ];
    });
}

function report(r: {
  machine: ReturnType<typeof describeMachine> & { natsServer: string };
  setup: {
    events: number;
    writeSeconds: number;
    snapshotsWritten: number;
    snapshotterCaughtUpSeconds: number;
    readModelCaughtUpSeconds: number;
    /** Bytes JetStream holds for CONTEXT_EVENTS and for CONTEXT_SNAPSHOTS (snapshots and segments). */
    eventBytes: number;
    snapshotBytes: number;
    finalState: readonly { events: number; subtasks: number; decisions: number }[];
  };
  temporal: readonly TemporalPhase[];
  snapshotGain: ReturnType<typeof snapshotGain>;
  readModel: readonly ReadModelPhase[];
  floor: FloorPhase | undefined;
}): string {
  const cpu = (c: CpuShares, other = true) => {
    const v = (k: string) => fmt(c[k] ?? Number.NaN, 0);
    return `${v("bench")} / ${v("query")} (${v("queryMain")}) / ${v("nats")} / ${v("valkey")} / ${v("projector")}${other ? ` / ${v("other")}` : ""}`;
  };
  const cpuHeader = "CPU %: bench / query (main) / nats / valkey / projector / other";
  const m = r.machine;
  const lines = [
    "",
    `Query side — ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, nats-server ${m.natsServer}`,
    `Client (this process; measured calls through ${settings.client === "h2" ? "a minimal node:http2 gRPC client" : "connect-node's gRPC client"}), query service, projector, NATS and Valkey share the machine's ${m.cpus} cores.`,
    `Setup: ${r.setup.events} events written in ${fmt(r.setup.writeSeconds, 1)} s; ${r.setup.snapshotsWritten} snapshots (every ${settings.snapshotInterval} versions), snapshotter caught up ${fmt(r.setup.snapshotterCaughtUpSeconds, 1)} s and the Valkey read model ${fmt(r.setup.readModelCaughtUpSeconds, 1)} s after the writes.`,
    `Stored: CONTEXT_EVENTS ${fmt(r.setup.eventBytes / 1e6, 1)} MB, CONTEXT_SNAPSHOTS (snapshots and segments) ${fmt(r.setup.snapshotBytes / 1e6, 1)} MB.`,
    `Final states: ${r.setup.finalState.map((s) => `${s.events} events → ${s.subtasks} subtasks, ${s.decisions} decisions`).join("; ")}.`,
    `Each phase: ${settings.warmupSeconds}s warm-up (GetContext: ${settings.currentWarmupSeconds}s), then ${settings.seconds}s.`,
  ];
  if (r.temporal.length > 0) {
    lines.push(
      "",
      "GetContextAtTime at a random time within the story (closed loop; latency per call):",
      table(
        [
          "story events",
          "snapshots",
          "in flight",
          "calls/s",
          "p50 ms",
          "p99 ms",
          "max ms",
          "errors",
          "folded/call",
          "from segment",
          "service ms",
          "service p99 ≤ ms",
          cpuHeader,
        ],
        r.temporal.map((p) => [
          String(p.events),
          p.snapshots ? "on" : "off",
          String(p.concurrency),
          fmt(p.result.perSecond, 0),
          fmt(p.result.latencyMs.p50, 2),
          fmt(p.result.latencyMs.p99, 2),
          fmt(p.result.latencyMs.max, 1),
          String(p.result.errors),
          fmt(p.serviceSide.eventsFolded, 0),
          `${fmt(p.serviceSide.fromSegment * 100, 0)} %`,
          fmt(p.serviceSide.handlingMs, 2),
          fmt(p.serviceSide.handlingP99AtMostMs, 1),
          cpu(p.result.cpuPercent),
        ]),
      ),
      "",
      "Snapshot gain (off / on for latency, on / off for calls/s):",
      table(
        ["story events", "in flight", "p50", "p99", "calls/s"],
        r.snapshotGain.map((g) => [
          String(g.events),
          String(g.concurrency),
          `${fmt(g.p50, 1)}×`,
          `${fmt(g.p99, 1)}×`,
          `${fmt(g.throughput, 1)}×`,
        ]),
      ),
    );
  }
  if (r.readModel.length > 0) {
    const clientName = (c: LoadClient) =>
      c === "go" ? "go (bench/loadgen)" : `node (${settings.client})`;
    lines.push(
      "",
      `GetContext from the Valkey read model, open loop at ${settings.rate}/s on random stories (${r.setup.finalState.length + settings.smallStories}); latency from the time each call was due:`,
      table(
        [
          "client",
          "target/s",
          "achieved/s",
          "p50 ms",
          "p99 ms",
          "max ms",
          "p99 from send",
          "send delay p99",
          "errors",
          "dropped",
          "service ms",
          "service p99 ≤ ms",
          // No "other": at 1,000 short calls a second, the machine's /proc/stat on a VM counts
          // busy time too coarsely (a probe saw less busy time than the processes' own counts).
          "CPU %: client / server (main) / nats / valkey / projector",
        ],
        [
          ...(r.floor === undefined
            ? []
            : [
                [
                  "go → no-op server (floor)",
                  String(settings.rate),
                  fmt(r.floor.result.perSecond, 0),
                  fmt(r.floor.result.latencyMs.p50, 2),
                  fmt(r.floor.result.latencyMs.p99, 2),
                  fmt(r.floor.result.latencyMs.max, 1),
                  fmt(r.floor.result.fromSendMs.p99, 2),
                  fmt(r.floor.result.sendDelayMs.p99, 2),
                  String(r.floor.result.errors),
                  String(r.floor.result.dropped),
                  "-",
                  "-",
                  cpu(r.floor.result.cpuPercent, false),
                ],
              ]),
          ...r.readModel.map((rm) => [
            clientName(rm.client),
            String(settings.rate),
            fmt(rm.result.perSecond, 0),
            fmt(rm.result.latencyMs.p50, 2),
            fmt(rm.result.latencyMs.p99, 2),
            fmt(rm.result.latencyMs.max, 1),
            fmt(rm.result.fromSendMs.p99, 2),
            fmt(rm.result.sendDelayMs.p99, 2),
            String(rm.result.errors),
            String(rm.result.dropped),
            fmt(rm.serviceSide.handlingMs, 2),
            fmt(rm.serviceSide.handlingP99AtMostMs, 1),
            cpu(rm.result.cpuPercent, false),
          ]),
        ],
      ),
    );
    const go = r.readModel.find((rm) => rm.client === "go");
    if (r.floor !== undefined && go !== undefined) {
      lines.push(
        `GetContext against the floor (go client): p50 ${fmt(go.result.latencyMs.p50 / r.floor.result.latencyMs.p50, 1)}×, p99 ${fmt(go.result.latencyMs.p99 / r.floor.result.latencyMs.p99, 1)}×.`,
      );
    }
    for (const rm of r.readModel) {
      lines.push(
        `${clientName(rm.client)}: handled by the service (its histogram, warm-up included) within ${rm.serviceSide.handledWithin
          .map((b) => `${fmt(b.ms, 1)} ms: ${fmt(b.share * 100, 1)} %`)
          .join(
            ", ",
          )}; event-loop delay p99 (beyond the 10 ms sampling): service ${fmt(rm.serviceSide.loopLagP99Ms, 1)} ms, bench ${fmt(rm.benchLoopLagMs.p99, 1)} ms.`,
      );
      if (rm.notFromReadModel > 0) {
        lines.push(
          `${clientName(rm.client)}: ${rm.notFromReadModel} GetContext answers did not come from the read model.`,
        );
      }
    }
  }
  const errors = [
    ...r.temporal.flatMap((p) => p.result.errorSamples),
    ...r.readModel.flatMap((rm) => rm.result.errorSamples),
  ];
  if (errors.length > 0) lines.push("", "Errors seen:", ...errors.map((e) => `  ${e}`));
  return lines.join("\n");
}

await main();
