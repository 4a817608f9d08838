// The write-side benchmark: appends through the command service (gRPC, a separate process) against a
// bare JetStream publisher with the same payloads and story-wide expectations, plus the cost of reading
// a story with batched direct gets versus an ordered consumer. Run it with `make bench`.
//
// Env: BENCH_STORIES (10000), BENCH_SECONDS (10, per measured phase), BENCH_WARMUP_SECONDS (2),
//      BENCH_LEVELS ("1,16,256"), BENCH_PROFILE=1 (the command service writes a .cpuprofile to
//      bench/results/profiles/ when it stops), BENCH_CLIENT ("connect": connect-node's gRPC client;
//      "h2": a minimal gRPC client on node:http2 for the measured AddSubtask calls, which costs the
//      shared cores less; see h2Client; "go": the measured calls from the Go load generator of
//      bench/loadgen on one connection, pre-encoded, so that no pause of this process counts),
//      BENCH_FLOORS ("publish,store" with the Go client; "none": none): the floors of the write
//      path, node:http2 servers that append one event per call and do nothing else (see
//      bench/support/append-floor-server.ts), driven like the command service.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { type ContextEventData, type StoryId, storyId } from "@ctx/domain";
import {
  createEventStore,
  decodeEvent,
  defaultEventStreamNames,
  defaultEventStreamSettings,
  type EventStore,
  type EventStreamNames,
  ExpectedVersion,
  eventHash,
  eventSubject,
  provisionEventStream,
  storySubjects,
} from "@ctx/event-store";
import { uuidv7 } from "@ctx/ids";
import {
  AddSubtaskRequestSchema,
  ContextCommandService,
  ContextCreatedSchema,
  ContextEventSchema,
  SubtaskAddedSchema,
} from "@ctx/proto";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { bearer } from "./support/bearer.ts";
import { expectedSubjects } from "./support/expectation.ts";
import { type H2Client, h2Client } from "./support/h2-client.ts";
import { closedLoop, StoryPicker } from "./support/load.ts";
import {
  buildLoadgen,
  type FloorServer,
  goClosedLoop,
  startAppendFloorServer,
} from "./support/loadgen.ts";
import { histogram, loopDelayMs, meanMs, scrape } from "./support/metrics.ts";
import { type OtlpSink, startOtlpSink } from "./support/otlp-sink.ts";
import {
  describeMachine,
  gitState,
  natsServerVersion,
  type Phase,
  withCpu,
} from "./support/run-info.ts";
import { onShutdown, startBenchStack } from "./support/servers.ts";
import { envNumber, envRatio, resultsDir } from "./support/settings.ts";
import { fmt, type LatencySummary, summarize, table } from "./support/stats.ts";

const settings = {
  stories: envNumber("BENCH_STORIES", 10_000),
  seconds: envNumber("BENCH_SECONDS", 10),
  warmupSeconds: envNumber("BENCH_WARMUP_SECONDS", 2),
  levels: (process.env.BENCH_LEVELS ?? "1,16,256").split(",").map(Number),
  /** Calls in flight per HTTP/2 connection to the command service, at most (connections ≤ 4). */
  callsPerConnection: 64,
  setupConcurrency: 64,
  readSizes: [10, 100, 1000],
  profile: process.env.BENCH_PROFILE === "1",
  client: clientKind(process.env.BENCH_CLIENT ?? "connect"),
  /** NATS servers: 1, or a JetStream cluster of this many nodes with every stream R3. */
  natsCluster: envNumber("BENCH_NATS_CLUSTER", 1),
  /** The read phases after the writes; BENCH_READS=0 leaves them out. */
  reads: process.env.BENCH_READS !== "0",
  /** Floor servers measured at each level (only with the Go client, which drives them). */
  floors: floorModes(process.env.BENCH_FLOORS ?? "publish,store"),
  /**
   * BENCH_TRACING=<ratio>: the command service traces (OTEL_* variables, OTLP/HTTP protobuf to a
   * sink on loopback), sampling that share of the calls (1: every call); off (0) by default, as
   * services run.
   */
  tracing: envRatio("BENCH_TRACING"),
  /** BENCH_SIGNING=1: the command service signs every event (EVENT_SIGNING_KEY_FILE). */
  signing: process.env.BENCH_SIGNING === "1",
};
const rawNames: EventStreamNames = { stream: "BENCH_RAW", subjectPrefix: "bench.raw" };

const serviceNames = defaultEventStreamNames;

type Commands = Client<typeof ContextCommandService>;

/**
 * The command service's garbage collection between two scrapes (prom-client's
 * `nodejs_gc_duration_seconds`, warm-up included): its pauses per call handled, and the count and
 * mean pause of the young collections, which set the tail of the calls' latency (docs/OPERATIONS.md).
 */
interface Collector {
  readonly usPerCall: number;
  readonly youngCount: number;
  readonly youngMeanMs: number;
}

function collectorOf(
  before: string,
  after: string,
  calls: readonly [string, readonly string[]],
): Collector {
  const gc = "nodejs_gc_duration_seconds";
  const all = [histogram(before, gc), histogram(after, gc)] as const;
  const young = [
    histogram(before, gc, ['kind="minor"']),
    histogram(after, gc, ['kind="minor"']),
  ] as const;
  const handled = histogram(after, ...calls).count - histogram(before, ...calls).count;
  return {
    usPerCall: handled > 0 ? ((all[1].sum - all[0].sum) / handled) * 1e6 : Number.NaN,
    youngCount: young[1].count - young[0].count,
    youngMeanMs: meanMs(...young),
  };
}

interface Level {
  readonly concurrency: number;
  readonly connections: number;
  readonly commandService: Phase;
  readonly rawJetStream: Phase;
  /** The same publish with one pre-encoded envelope: what nats.js and JetStream cost alone. */
  readonly rawPreEncoded: Phase;
  /** Command service rate / raw rate (envelope built per event, like the service does). */
  readonly ratio: number;
  /** The floors of the write path at this level (Go client only; see BENCH_FLOORS). */
  readonly floors: readonly { readonly mode: FloorMode; readonly phase: Phase }[];
  /** Means from the service's own histograms over the phase (warm-up included), in ms. */
  readonly serviceSideMs: {
    readonly handling: number;
    readonly append: number;
    /** Event-loop delay of the service over the phase (prom-client resets it at every scrape). */
    readonly loopLagP99: number;
    readonly loopLagMax: number;
    /** The service's garbage collector over the phase (see collectorOf). */
    readonly collector: Collector;
  };
}

/** Whole-story reads of random stories on the grown stream: subject by subject, or through the filter. */
interface StoryReadCost {
  readonly streamMessages: number;
  readonly paths: readonly {
    readonly path: string;
    readonly phase: Phase;
    /** NATS CPU time per read. */
    readonly natsCpuMs: number;
  }[];
}

interface ReadStrategies {
  readonly events: number;
  readonly reads: number;
  readonly directGetMs: LatencySummary;
  readonly orderedConsumerMs: LatencySummary;
}

type FloorMode = "publish" | "store";

/** What each floor server does per call, as the report names it. */
const floorLabels: Record<FloorMode, string> = {
  publish: "floor: HTTP/2 + one publish, pre-encoded",
  store: "floor: HTTP/2 + EventStore.append",
};

function floorModes(value: string): FloorMode[] {
  if (value === "none" || value === "") return [];
  return value.split(",").map((m) => {
    if (m !== "publish" && m !== "store") {
      throw new Error("BENCH_FLOORS must be none or a list of publish, store");
    }
    return m;
  });
}

function clientKind(value: string): "connect" | "h2" | "go" {
  if (value !== "connect" && value !== "h2" && value !== "go") {
    throw new Error("BENCH_CLIENT must be connect, h2 or go");
  }
  return value;
}

const log = (line: string) => console.error(line);

async function main(): Promise<void> {
  const started = new Date();
  const machine = describeMachine();
  log(
    `write-side bench: ${settings.stories} stories, ${settings.seconds}s per phase, levels ${settings.levels.join("/")}, ${settings.client} client`,
  );
  log(
    `machine: ${machine.cpus}× ${machine.cpuModel}, load average ${machine.loadAverage1m} (1 min)`,
  );
  if (machine.loadAverage1m > machine.cpus / 4) {
    log("warning: the machine is busy; figures will be low (see the 'other' CPU column)");
  }

  if (settings.client === "go") await buildLoadgen();
  const stack = await startBenchStack({ natsCluster: settings.natsCluster });
  const sessions: Http2SessionManager[] = [];
  const h2Sessions: http2.ClientHttp2Session[] = [];
  let nc: NatsConnection | undefined;
  let sink: OtlpSink | undefined;
  const floorServers = new Map<FloorMode, FloorServer>();
  const shutdown = onShutdown(async () => {
    for (const f of floorServers.values()) await f.stop();
    await sink?.close();
    for (const s of sessions) s.abort();
    for (const s of h2Sessions) s.destroy();
    await nc?.close().catch(() => undefined);
    await stack.stop();
  });
  try {
    if (settings.profile) {
      rmSync(join(resultsDir, "profiles"), { recursive: true, force: true });
      mkdirSync(join(resultsDir, "profiles"), { recursive: true });
    }
    sink = settings.tracing > 0 ? await startOtlpSink() : undefined;
    const signingKey = settings.signing ? join(stack.dir, "bench-events-1") : undefined;
    if (signingKey)
      writeFileSync(signingKey, randomBytes(32).toString("base64url"), { mode: 0o600 });
    await stack.startCommandService({
      ...(settings.profile
        ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${join(resultsDir, "profiles")}`] }
        : {}),
      env: {
        ...(sink
          ? {
              OTEL_TRACES_EXPORTER: "otlp",
              OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
              OTEL_TRACES_SAMPLER: "traceidratio",
              OTEL_TRACES_SAMPLER_ARG: String(settings.tracing),
            }
          : {}),
        ...(signingKey ? { EVENT_SIGNING_KEY_FILE: signingKey } : {}),
        // BENCH_ENVELOPE_VERSION=1: the command service writes envelope version 1 (default 2).
        ...(process.env.BENCH_ENVELOPE_VERSION
          ? { EVENT_ENVELOPE_VERSION: process.env.BENCH_ENVELOPE_VERSION }
          : {}),
      },
    });
    log(`servers: NATS ${stack.natsUrl}, command service ${stack.commandUrl} (in ${stack.dir})`);
    nc = await stack.connectNats("bench-write-side");
    const js = jetstream(nc, { timeout: 10_000 });
    await provisionEventStream(await jetstreamManager(nc), {
      ...defaultEventStreamSettings,
      ...rawNames,
      // The raw baseline on the same replicas as the service's stream.
      replicas: stack.natsNodes >= 3 ? 3 : 1,
    });
    const natsVersion = await natsServerVersion(stack);

    const maxConnections = Math.max(
      ...settings.levels.map((c) => connectionsFor(c)),
      connectionsFor(settings.setupConcurrency),
    );
    const clients: Commands[] = [];
    for (let i = 0; i < maxConnections; i++) {
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

    const ids = Array.from(
      { length: settings.stories },
      (_, i) => `s${String(i).padStart(6, "0")}`,
    );
    const h2Clients: H2Client[] = [];
    if (settings.client === "h2") {
      for (let i = 0; i < maxConnections; i++) {
        h2Clients.push(
          h2Client(() => {
            const session = http2.connect(stack.commandUrl);
            session.on("error", () => undefined);
            h2Sessions.push(session);
            return session;
          }, stack.authorization),
        );
      }
    }
    const service = commandServiceWriter(clients, ids, h2Clients);
    const raw = rawWriter(js, ids);
    const cpuPids = () => ({ service: stack.pids().command, nats: stack.natsPids() });

    log("setup: creating the stories (CreateContext through the service; ContextCreated raw)…");
    const setupService = await withCpu(cpuPids(), ["service"], () =>
      closedLoop({
        concurrency: settings.setupConcurrency,
        count: settings.stories,
        call: (worker, index) => service.create(worker, index),
      }),
    );
    const setupRaw = await withCpu(cpuPids(), ["service"], () =>
      closedLoop({
        concurrency: settings.setupConcurrency,
        count: settings.stories,
        call: (_, index) => raw.create(index),
      }),
    );
    if (setupService.errors > 0 || setupRaw.errors > 0) {
      throw new Error(
        `setup failed: ${[...setupService.errorSamples, ...setupRaw.errorSamples].join("; ")}`,
      );
    }
    const store = createEventStore(nc, { names: serviceNames, timeoutMs: 10_000 });
    await writeReadStories(store);

    if (settings.client === "go") {
      // Started before the phases, so that their start-up is in none of them. They append to the
      // raw stream, as the admin the raw baseline publishes as, on stories of their own.
      const floorEnv = {
        ...stack.natsEnv("admin"),
        FLOOR_STREAM: rawNames.stream,
        FLOOR_SUBJECT_PREFIX: rawNames.subjectPrefix,
        FLOOR_STORIES: String(settings.stories),
      };
      for (const mode of settings.floors) {
        floorServers.set(mode, await startAppendFloorServer(mode, floorEnv));
      }
    }

    const levels: Level[] = [];
    for (const concurrency of settings.levels) {
      const connections = settings.client === "go" ? 1 : connectionsFor(concurrency);
      const window = {
        concurrency,
        warmupMs: settings.warmupSeconds * 1000,
        durationMs: settings.seconds * 1000,
      };
      log(`${concurrency} in flight: raw JetStream publish…`);
      const rawPhase = await withCpu(cpuPids(), ["service"], () =>
        closedLoop({ ...window, call: () => raw.append() }),
      );
      const rawPreEncoded = await withCpu(cpuPids(), ["service"], () =>
        closedLoop({ ...window, call: () => raw.appendPreEncoded() }),
      );
      log(`${concurrency} in flight: command service over gRPC (${connections} connection(s))…`);
      const before = await scrape(stack.commandMetricsUrl);
      // Encoded before the phase, so that the encoding is not in its CPU figures. Enough for 12,000
      // calls a second; each story at most once in 10,000 calls in a row.
      const goRequests =
        settings.client === "go"
          ? service.encodedAppends(12_000 * (settings.warmupSeconds + settings.seconds))
          : [];
      const servicePhase = await withCpu(cpuPids(), ["service"], () =>
        settings.client === "go"
          ? goClosedLoop({
              ...window,
              target: new URL(stack.commandUrl).host,
              method: service.appendPath,
              requests: goRequests,
              sequential: true,
              authorization: stack.authorization,
            })
          : closedLoop({ ...window, call: (worker) => service.append(worker % connections) }),
      );
      const after = await scrape(stack.commandMetricsUrl);
      const floors: Level["floors"][number][] = [];
      for (const [mode, floor] of floorServers) {
        log(`${concurrency} in flight: ${floorLabels[mode]}…`);
        const phase = await withCpu(
          { service: floor.pid, nats: stack.natsPids() },
          ["service"],
          () =>
            goClosedLoop({
              ...window,
              target: floor.target,
              method: service.appendPath,
              requests: goRequests,
              sequential: true,
            }),
        );
        floors.push({ mode, phase });
      }
      const handling = ["grpc_server_handling_seconds", ['grpc_method="AddSubtask"']] as const;
      const append = ["ctx_event_store_append_seconds", ['events="one"']] as const;
      levels.push({
        concurrency,
        connections,
        commandService: servicePhase,
        rawJetStream: rawPhase,
        rawPreEncoded,
        ratio: servicePhase.perSecond / rawPhase.perSecond,
        floors,
        serviceSideMs: {
          handling: meanMs(histogram(before, ...handling), histogram(after, ...handling)),
          append: meanMs(histogram(before, ...append), histogram(after, ...append)),
          loopLagP99: loopDelayMs(after, "nodejs_eventloop_lag_p99_seconds"),
          loopLagMax: loopDelayMs(after, "nodejs_eventloop_lag_max_seconds"),
          collector: collectorOf(before, after, handling),
        },
      });
    }

    const reads: ReadStrategies[] = [];
    let storyReads: StoryReadCost | undefined;
    if (settings.reads) {
      log("reads: batched direct get (store.read) versus an ordered consumer…");
      for (const events of settings.readSizes) reads.push(await compareReads(store, js, events));
      log("reads: whole random stories, subject by subject versus through the story's filter…");
      storyReads = await compareWholeStoryReads(store, nc, ids, cpuPids);
    }

    const results = {
      bench: "write-side",
      startedAt: started.toISOString(),
      git: gitState(),
      machine: { ...machine, natsServer: natsVersion },
      settings,
      setup: { commandService: setupService, rawJetStream: setupRaw },
      levels,
      reads,
      storyReads,
      ...(sink ? { tracing: { exportRequests: sink.requests, exportedBytes: sink.bytes } } : {}),
    };
    mkdirSync(resultsDir, { recursive: true });
    const file = settings.natsCluster > 1 ? "write-side-cluster.json" : "write-side.json";
    writeFileSync(join(resultsDir, file), `${JSON.stringify(results, null, 2)}\n`);
    console.log(report(results));
    console.log(`\nJSON: bench/results/${file}`);
  } finally {
    await shutdown();
  }
  if (settings.profile) {
    const dir = join(resultsDir, "profiles");
    for (const f of readdirSync(dir))
      console.log(`CPU profile of the command service: ${join(dir, f)}`);
  }
}

/**
 * The command service path: CreateContext for setup, AddSubtask without expected_version measured
 * (through the minimal HTTP/2 client instead of connect-node's when `h2Clients` are given).
 */
function commandServiceWriter(
  clients: readonly Commands[],
  ids: readonly string[],
  h2Clients: readonly H2Client[] = [],
) {
  const picker = new StoryPicker(ids.length);
  let subtask = 0;
  const clientOf = (i: number) => clients[i % clients.length] as Commands;
  const addSubtask = ContextCommandService.method.addSubtask;
  const addSubtaskPath = `/${ContextCommandService.typeName}/${addSubtask.name}`;
  // For the Go generator: the stories in a shuffled order, walked round by round, so calls in a row
  // never share a story (a story comes back after ids.length calls).
  const order = Array.from(ids.keys());
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  let turn = 0;
  return {
    appendPath: addSubtaskPath,
    /** `count` AddSubtask requests, encoded, each with a subtask id of its own. */
    encodedAppends(count: number): Uint8Array[] {
      return Array.from({ length: count }, () => {
        const n = subtask++;
        const story = order[turn++ % order.length] as number;
        return toBinary(
          AddSubtaskRequestSchema,
          create(AddSubtaskRequestSchema, {
            storyId: ids[story] as string,
            subtaskId: `t${n}`,
            title: `Benchmark subtask ${n}`,
          }),
        );
      });
    },
    async create(worker: number, index: number): Promise<void> {
      await clientOf(worker).createContext({
        storyId: ids[index] as string,
        title: `Benchmark story ${index}`,
        description: "A story of the write-side benchmark",
      });
    },
    append(connection: number): Promise<unknown> {
      return picker.with(async (story) => {
        const n = subtask++;
        const request = {
          storyId: ids[story] as string,
          subtaskId: `t${n}`,
          title: `Benchmark subtask ${n}`,
        };
        const h2 = h2Clients[connection % Math.max(1, h2Clients.length)];
        if (h2 === undefined) return clientOf(connection).addSubtask(request);
        const reply = await h2.unary(
          addSubtaskPath,
          toBinary(AddSubtaskRequestSchema, create(AddSubtaskRequestSchema, request)),
        );
        return fromBinary(addSubtask.output, reply);
      });
    },
  };
}

/**
 * The baseline: what the command service does to JetStream, minus everything else. One NATS
 * connection; the same envelope (UUIDv7 ids, hash chain) and subject; the story-wide expectation
 * headers with the story's last sequence tracked client-side; Nats-Msg-Id for deduplication.
 */
function rawWriter(js: JetStreamClient, ids: readonly string[]) {
  const heads: { sequence: number; version: number; hash: Uint8Array }[] = ids.map(() => ({
    sequence: 0,
    version: 0,
    hash: new Uint8Array(0),
  }));
  const picker = new StoryPicker(ids.length);
  let subtask = 0;

  async function publish(story: number, data: ContextEventData): Promise<void> {
    const head = heads[story] as (typeof heads)[0];
    const id = ids[story] as string;
    const envelope = create(ContextEventSchema, {
      eventId: uuidv7(),
      storyId: id,
      version: head.version + 1,
      occurredAt: timestampFromDate(new Date()),
      eventType: data.case === "contextCreated" ? "ContextCreated" : "SubtaskAdded",
      schemaVersion: 1,
      correlationId: uuidv7(),
      commandId: uuidv7(),
      commandEventIndex: 0,
      prevHash: head.hash,
      payload: data,
    });
    envelope.hash = eventHash(envelope);
    const ack = await js.publish(
      eventSubject(rawNames, id, envelope.eventType),
      toBinary(ContextEventSchema, envelope),
      {
        msgID: envelope.eventId,
        expect: {
          lastSubjectSequence: head.sequence,
          lastSubjectSequenceSubject: expectedSubjects(rawNames, id, head.sequence),
        },
      },
    );
    heads[story] = { sequence: ack.seq, version: envelope.version, hash: envelope.hash };
  }

  // One envelope of the same shape and size, encoded once; only the message id changes.
  const preEncoded = toBinary(
    ContextEventSchema,
    create(ContextEventSchema, {
      eventId: uuidv7(),
      storyId: ids[0] as string,
      version: 2,
      occurredAt: timestampFromDate(new Date()),
      eventType: "SubtaskAdded",
      schemaVersion: 1,
      correlationId: uuidv7(),
      commandId: uuidv7(),
      prevHash: new Uint8Array(32),
      hash: new Uint8Array(32),
      payload: {
        case: "subtaskAdded",
        value: create(SubtaskAddedSchema, {
          subtaskId: "t100000",
          title: "Benchmark subtask 100000",
        }),
      },
    }),
  );
  const run = uuidv7();

  return {
    create(index: number): Promise<void> {
      return publish(index, {
        case: "contextCreated",
        value: create(ContextCreatedSchema, {
          title: `Benchmark story ${index}`,
          description: "A story of the write-side benchmark",
        }),
      });
    },
    append(): Promise<void> {
      return picker.with((story) => {
        const n = subtask++;
        return publish(story, {
          case: "subtaskAdded",
          value: create(SubtaskAddedSchema, {
            subtaskId: `t${n}`,
            title: `Benchmark subtask ${n}`,
          }),
        });
      });
    },
    /** Same subject, headers and size, without building an envelope per event. */
    appendPreEncoded(): Promise<void> {
      return picker.with(async (story) => {
        const n = subtask++;
        const id = ids[story] as string;
        const head = heads[story] as (typeof heads)[0];
        const ack = await js.publish(eventSubject(rawNames, id, "SubtaskAdded"), preEncoded, {
          msgID: `${run}-${n}`,
          expect: {
            lastSubjectSequence: head.sequence,
            lastSubjectSequenceSubject: expectedSubjects(rawNames, id, head.sequence),
          },
        });
        heads[story] = { ...head, sequence: ack.seq };
      });
    },
  };
}

/**
 * Stories of 10, 100 and 1,000 events in the command service's stream, their events interleaved with
 * each other and with 4 filler events per round (other stories), so a story is scattered over the
 * stream as in real use; the measured write phases then add their events after them.
 */
async function writeReadStories(store: EventStore): Promise<void> {
  const largest = Math.max(...settings.readSizes);
  const versions = new Map<string, number>();
  const append = (id: string) => {
    const version = (versions.get(id) ?? 0) + 1;
    versions.set(id, version);
    const data: ContextEventData =
      version === 1
        ? { case: "contextCreated", value: create(ContextCreatedSchema, { title: id }) }
        : {
            case: "subtaskAdded",
            value: create(SubtaskAddedSchema, {
              subtaskId: `t${version}`,
              title: `Subtask ${version}`,
            }),
          };
    return store.append(storyId(id), [{ data }], ExpectedVersion.Any);
  };
  for (let round = 0; round < largest; round++) {
    const writes: Promise<unknown>[] = [];
    for (const size of settings.readSizes) {
      if (round % (largest / size) === 0) writes.push(append(`rd-${size}`));
    }
    for (let f = 0; f < 4; f++) writes.push(append(`fill-${(round * 4 + f) % 500}`));
    await Promise.all(writes);
  }
}

/**
 * What a whole-story read costs NATS once the stream has grown (all phases written): `store.read`
 * (the story's subjects, each read by its literal subject) against the same read through the
 * story's wildcard filter (`bySubject: false`). Sequential reads of random stories, two rounds of
 * each path, alternating.
 */
async function compareWholeStoryReads(
  store: EventStore,
  nc: NatsConnection,
  ids: readonly string[],
  pids: () => Record<string, number | readonly number[] | undefined>,
): Promise<StoryReadCost> {
  const jsm = await jetstreamManager(nc);
  const streamMessages = (await jsm.streams.info(serviceNames.stream)).state.messages;
  const pick = () => storyId(ids[Math.floor(Math.random() * ids.length)] as string);
  const paths = [
    { path: "subject by subject (store.read)", read: () => store.read(pick()) },
    {
      path: "story filter (wildcard)",
      read: () => store.read(pick(), { bySubject: false }),
    },
  ];
  const rounds = new Map<string, Phase[]>();
  for (let round = 0; round < 2; round++) {
    for (const { path, read } of paths) {
      const phase = await withCpu(pids(), ["service"], () =>
        closedLoop({ concurrency: 1, count: 200, call: read }),
      );
      rounds.set(path, [...(rounds.get(path) ?? []), phase]);
    }
  }
  return {
    streamMessages,
    paths: [...rounds].map(([path, phases]) => {
      const last = phases[phases.length - 1] as Phase;
      const natsMs = phases.map((p) => ((p.cpuPercent.nats ?? 0) / 100) * p.seconds * 1000);
      const reads = phases.reduce((sum, p) => sum + p.calls, 0);
      return { path, phase: last, natsCpuMs: natsMs.reduce((a, b) => a + b, 0) / reads };
    }),
  };
}

/** Reads one story again and again with both strategies, alternating, and summarizes each. */
async function compareReads(
  store: EventStore,
  js: JetStreamClient,
  events: number,
): Promise<ReadStrategies> {
  const id = storyId(`rd-${events}`);
  const reads = events >= 1000 ? 100 : 300;
  const direct: number[] = [];
  const ordered: number[] = [];
  for (let i = -10; i < reads; i++) {
    // Negative rounds warm up both paths (connections, JIT) and are not recorded.
    const t0 = performance.now();
    const viaDirect = (await store.read(id)).length;
    const t1 = performance.now();
    const { count: viaOrdered, cleanup } = await readWithOrderedConsumer(js, id);
    const t2 = performance.now();
    await cleanup();
    if (viaDirect !== events || viaOrdered !== events) {
      throw new Error(`read ${viaDirect} / ${viaOrdered} events of ${id}, expected ${events}`);
    }
    if (i < 0) continue;
    direct.push(t1 - t0);
    ordered.push(t2 - t1);
  }
  return {
    events,
    reads,
    directGetMs: summarize(direct),
    orderedConsumerMs: summarize(ordered),
  };
}

/**
 * A story through an ordered consumer filtered on the story's subjects, consumed until nothing is
 * pending, each message decoded like store.read does. `cleanup` deletes the consumer (not timed):
 * left alone, nats.js's ordered consumers linger on the server for their 5-minute inactive threshold.
 */
async function readWithOrderedConsumer(
  js: JetStreamClient,
  id: StoryId,
): Promise<{ count: number; cleanup: () => Promise<void> }> {
  const consumer = await js.consumers.get(serviceNames.stream, {
    filter_subjects: [storySubjects(serviceNames, id)],
  });
  const messages = await consumer.consume({ max_messages: 1024 });
  let count = 0;
  try {
    for await (const msg of messages) {
      decodeEvent(msg.data, msg.seq, msg.subject);
      count++;
      if (msg.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  const cleanup = async () => {
    await consumer.delete().catch(() => undefined);
  };
  return { count, cleanup };
}

function connectionsFor(concurrency: number): number {
  return Math.min(4, Math.ceil(concurrency / settings.callsPerConnection));
}

function report(r: {
  machine: ReturnType<typeof describeMachine> & { natsServer: string };
  setup: { commandService: Phase; rawJetStream: Phase };
  levels: readonly Level[];
  reads: readonly ReadStrategies[];
  storyReads: StoryReadCost | undefined;
  tracing?: { exportRequests: number; exportedBytes: number };
}): string {
  const cpu = (p: Phase) => {
    const c = (k: string) => fmt(p.cpuPercent[k] ?? Number.NaN, 0);
    return `${c("bench")} / ${c("service")} (${c("serviceMain")}) / ${c("nats")} / ${c("other")}`;
  };
  const row = (label: string, p: Phase, conns: string) => [
    label,
    conns,
    fmt(p.perSecond, 0),
    fmt(p.latencyMs.p50, 2),
    fmt(p.latencyMs.p99, 2),
    fmt(p.latencyMs.max, 1),
    String(p.errors),
    cpu(p),
  ];
  const m = r.machine;
  const lines = [
    "",
    `Write side — ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}, nats-server ${m.natsServer}`,
    `Client (${settings.client === "go" ? "the Go load generator of bench/loadgen for the measured calls, this process for the rest" : `this process; measured calls through ${settings.client === "h2" ? "a minimal node:http2 gRPC client" : "connect-node's gRPC client"}`}), command service and NATS share the machine's ${m.cpus} cores.`,
    settings.tracing > 0
      ? `Tracing ON in the command service: ${settings.tracing === 1 ? "every call" : `${settings.tracing * 100} % of the calls`} sampled, spans exported over OTLP/HTTP to a loopback sink (${r.tracing?.exportRequests ?? 0} requests, ${fmt((r.tracing?.exportedBytes ?? 0) / 1e6, 1)} MB).`
      : "Tracing off in the command service (as it runs by default).",
    settings.signing
      ? "Event signing ON: the command service signs every event (HMAC-SHA256 of its hash, Ctx-Signature header)."
      : "Event signing off (as it runs by default).",
    `${settings.stories} stories; each measured phase: ${settings.warmupSeconds}s warm-up, then ${settings.seconds}s; one event per call; ${settings.natsCluster > 1 ? `a JetStream cluster of ${settings.natsCluster} nats-servers, streams R3` : "one nats-server, streams R1"}.`,
    "",
    table(
      [
        "",
        "conns",
        "calls/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "CPU %: bench / service (main thread) / nats / other",
      ],
      [
        row("setup: CreateContext via service (64 in flight)", r.setup.commandService, "1"),
        row("setup: ContextCreated raw publish (64 in flight)", r.setup.rawJetStream, "1"),
      ],
    ),
    "",
    table(
      [
        "in flight / path",
        "conns",
        "appends/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "CPU %: bench / service (main thread) / nats / other",
      ],
      r.levels.flatMap((l) => [
        row(`${l.concurrency} · command service (gRPC)`, l.commandService, String(l.connections)),
        row(`${l.concurrency} · raw publish, envelope per event`, l.rawJetStream, "1 (NATS)"),
        row(`${l.concurrency} · raw publish, pre-encoded`, l.rawPreEncoded, "1 (NATS)"),
        ...l.floors.map((f) => row(`${l.concurrency} · ${floorLabels[f.mode]}`, f.phase, "1")),
      ]),
    ),
    "",
    table(
      [
        "in flight",
        "service / raw",
        "mean ms: client sees",
        "service handles",
        "of which append",
        "raw publish",
        "loop delay p99 ms (beyond 10 ms sampling): service",
        "bench",
        "service GC: µs per call",
        "young GCs",
        "young GC mean ms",
      ],
      r.levels.map((l) => [
        String(l.concurrency),
        `${fmt(l.ratio * 100, 0)} %`,
        fmt(l.commandService.latencyMs.mean, 2),
        fmt(l.serviceSideMs.handling, 2),
        fmt(l.serviceSideMs.append, 2),
        fmt(l.rawJetStream.latencyMs.mean, 2),
        fmt(l.serviceSideMs.loopLagP99, 1),
        fmt(l.commandService.benchLoopLagMs.p99, 1),
        fmt(l.serviceSideMs.collector.usPerCall, 1),
        String(l.serviceSideMs.collector.youngCount),
        fmt(l.serviceSideMs.collector.youngMeanMs, 2),
      ]),
    ),
    ...ratioLines(r.levels),
    ...(r.storyReads === undefined ? [] : readLines(r.reads, r.storyReads)),
  ];
  const errors = [
    ...r.levels.flatMap((l) => [
      ...l.commandService.errorSamples,
      ...l.rawJetStream.errorSamples,
      ...l.floors.flatMap((f) => f.phase.errorSamples),
    ]),
  ];
  if (errors.length > 0) lines.push("", "Errors seen:", ...errors.map((e) => `  ${e}`));
  return lines.join("\n");
}

/**
 * Every path's rate over the pre-encoded raw publish of the same level (what issue #26's target is
 * stated against), and the command service's over each floor: how much of what a Node process
 * appending one event per call reaches on this machine the service keeps.
 */
function ratioLines(levels: readonly Level[]): string[] {
  const modes = [...new Set(levels.flatMap((l) => l.floors.map((f) => f.mode)))];
  const share = (a: number, b: number) => `${fmt((a / b) * 100, 0)} %`;
  // The main thread's busy time per call: what a Node process pays per call on this machine.
  const perCall = (p: Phase | undefined) =>
    p === undefined ? "–" : fmt(((p.cpuPercent.serviceMain ?? Number.NaN) * 1e4) / p.perSecond, 0);
  return [
    "",
    table(
      [
        "in flight",
        "service / raw pre-encoded",
        ...modes.map((m) => `${floorLabels[m]} / raw pre-encoded`),
        ...modes.map((m) => `service / ${m} floor`),
        `main thread µs per call: service${modes.map((m) => ` / ${m} floor`).join("")}`,
      ],
      levels.map((l) => {
        const raw = l.rawPreEncoded.perSecond;
        const floor = (m: FloorMode) => l.floors.find((f) => f.mode === m)?.phase;
        const floorRate = (m: FloorMode) => floor(m)?.perSecond ?? Number.NaN;
        return [
          String(l.concurrency),
          share(l.commandService.perSecond, raw),
          ...modes.map((m) => share(floorRate(m), raw)),
          ...modes.map((m) => share(l.commandService.perSecond, floorRate(m))),
          [perCall(l.commandService), ...modes.map((m) => perCall(floor(m)))].join(" / "),
        ];
      }),
    ),
  ];
}

function readLines(reads: readonly ReadStrategies[], storyReads: StoryReadCost): string[] {
  return [
    "",
    table(
      ["story events", "reads", "direct get p50 ms", "p99 ms", "ordered consumer p50 ms", "p99 ms"],
      reads.map((x) => [
        String(x.events),
        String(x.reads),
        fmt(x.directGetMs.p50, 2),
        fmt(x.directGetMs.p99, 2),
        fmt(x.orderedConsumerMs.p50, 2),
        fmt(x.orderedConsumerMs.p99, 2),
      ]),
    ),
    "",
    `Whole-story reads of random stories, one at a time, on the grown stream (${storyReads.streamMessages} messages; last of two rounds each):`,
    table(
      ["path", "reads", "p50 ms", "p99 ms", "NATS CPU ms per read (both rounds)"],
      storyReads.paths.map((x) => [
        x.path,
        String(x.phase.calls),
        fmt(x.phase.latencyMs.p50, 2),
        fmt(x.phase.latencyMs.p99, 2),
        fmt(x.natsCpuMs, 2),
      ]),
    ),
  ];
}

await main();
