// The storage benchmark: what one event costs on disk. The command service writes the same events
// (AddSubtask through gRPC, as clients send them) once with each envelope version into a stream of
// its own; then JetStream's byte count and the stream's files are measured per event: the sealed
// message blocks (nats-server compresses a block with S2 when it seals it), the block still being
// written (not compressed yet), and every file of the stream. Run it with `make bench`.
//
// Env: BENCH_STORAGE_STORIES (1000), BENCH_STORAGE_EVENTS (100000 per envelope version),
//      BENCH_STORAGE_VERSIONS ("1,2": the envelope versions, EVENT_ENVELOPE_VERSION of the service),
//      BENCH_STORAGE_IN_FLIGHT (64), BENCH_STORAGE_KEEP (a folder: each stream's files are copied
//      there, e.g. to take its blocks apart with bench/storage-blocks; unset: none kept).
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { uuidv7 } from "@ctx/ids";
import { ContextCommandService } from "@ctx/proto";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { bearer } from "./support/bearer.ts";
import { describeMachine, gitState, natsServerVersion } from "./support/run-info.ts";
import { onShutdown, startBenchStack } from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { table } from "./support/stats.ts";

const settings = {
  stories: envNumber("BENCH_STORAGE_STORIES", 1_000),
  events: envNumber("BENCH_STORAGE_EVENTS", 100_000),
  versions: (process.env.BENCH_STORAGE_VERSIONS ?? "1,2").split(",").map(Number),
  inFlight: envNumber("BENCH_STORAGE_IN_FLIGHT", 64),
};

const log = (line: string) => console.error(line);

/** Words of the subtask titles: text that compresses as a team's titles do, not as noise or as one repeated line. */
const words = (
  "add update remove migrate review refactor document test deploy release fix check " +
  "billing export import schema index cache query command event stream story subtask " +
  "decision dependency projection snapshot replay audit report dashboard login token " +
  "retry timeout limit quota metric alert backup restore cluster node partition lease"
).split(" ");

/** A title of about 55 characters, different for every n (n picks the words). */
function titleOf(n: number): string {
  let x = (n + 1) * 2_654_435_761;
  const parts: string[] = [];
  let length = 0;
  while (length < 48) {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
    const word = words[x % words.length] as string;
    parts.push(word);
    length += word.length + 1;
  }
  return `${parts.join(" ")} #${n}`;
}

interface Measured {
  readonly envelopeVersion: number;
  readonly events: number;
  /** JetStream's count (stream info): subject, headers, data and record overhead, uncompressed. */
  readonly jetStreamBytesPerEvent: number;
  /** Bytes of the sealed (compressed) blocks per event they hold. */
  readonly sealedBytesPerEvent: number;
  readonly sealedBlocks: number;
  readonly sealedEvents: number;
  /** Every file of the stream's folder (blocks, indexes, metadata) per event. */
  readonly allFilesBytesPerEvent: number;
  /** The envelope alone, as stored (the message's data), per event. */
  readonly envelopeBytesPerEvent: number;
  /** The NATS headers one event was stored with (a sample). */
  readonly storedHeaders: string;
}

async function main(): Promise<void> {
  const started = new Date();
  const machine = describeMachine();
  log(
    `storage bench: ${settings.events} events over ${settings.stories} stories per envelope version (${settings.versions.join(", ")})`,
  );
  const stack = await startBenchStack({});
  let nc: NatsConnection | undefined;
  const sessions: Http2SessionManager[] = [];
  const shutdown = onShutdown(async () => {
    for (const s of sessions) s.abort();
    await nc?.close().catch(() => undefined);
    await stack.stop();
  });
  try {
    nc = await stack.connectNats("bench-storage");
    const jsm = await jetstreamManager(nc);
    const results: Measured[] = [];
    for (const version of settings.versions) {
      const stream = `STORAGE_V${version}`;
      const names = { EVENT_STREAM: stream, EVENT_SUBJECT_PREFIX: `storage.v${version}` };
      const service = await stack.startService(`command-v${version}`, {
        entry: "services/command/src/main.ts",
        listenVariable: "COMMAND_LISTEN",
        opsListenVariable: "COMMAND_OPS_LISTEN",
        // The role users' rights name the default streams; this bench writes two of its own.
        natsRole: "admin",
        env: { ...names, EVENT_ENVELOPE_VERSION: String(version) },
      });
      const sessionManager = new Http2SessionManager(service.url);
      sessions.push(sessionManager);
      const client = createClient(
        ContextCommandService,
        createGrpcTransport({
          baseUrl: service.url,
          sessionManager,
          interceptors: [bearer(stack.authorization)],
        }),
      );
      const t0 = performance.now();
      await write(client, version);
      const seconds = (performance.now() - t0) / 1000;
      await service.stop();
      const info = await jsm.streams.info(stream);
      const sample = await jsm.streams.getMessage(stream, { seq: info.state.last_seq });
      const measured = measure(stack.dir, stream, info.state.messages, info.state.bytes);
      const keep = process.env.BENCH_STORAGE_KEEP;
      if (keep) cpSync(streamDir(stack.dir, stream), join(keep, stream), { recursive: true });
      results.push({
        envelopeVersion: version,
        ...measured,
        envelopeBytesPerEvent: await envelopeBytes(jsm, stream, info.state.last_seq),
        storedHeaders: sample?.header ? headerText(sample.header) : "",
      });
      log(
        `v${version}: ${info.state.messages} messages written in ${seconds.toFixed(1)} s; sample headers: ${results.at(-1)?.storedHeaders || "none"}`,
      );
    }

    const rows = results.map((r) => [
      `v${r.envelopeVersion}`,
      String(r.events),
      r.envelopeBytesPerEvent.toFixed(0),
      r.jetStreamBytesPerEvent.toFixed(0),
      `${r.sealedBytesPerEvent.toFixed(1)} (${r.sealedBlocks} blocks, ${r.sealedEvents} events)`,
      r.allFilesBytesPerEvent.toFixed(1),
    ]);
    console.log(
      table(
        [
          "envelope",
          "events",
          "envelope B/event",
          "JetStream B/event",
          "sealed blocks B/event",
          "all files B/event",
        ],
        rows,
      ),
    );
    const [first, second] = results;
    if (first && second) {
      console.log(
        `v${second.envelopeVersion}/v${first.envelopeVersion}: sealed ${(second.sealedBytesPerEvent / first.sealedBytesPerEvent).toFixed(2)}×, JetStream ${(second.jetStreamBytesPerEvent / first.jetStreamBytesPerEvent).toFixed(2)}×`,
      );
    }
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      join(resultsDir, "storage.json"),
      `${JSON.stringify(
        {
          bench: "storage",
          started: started.toISOString(),
          machine,
          git: gitState(),
          natsServer: await natsServerVersion(stack),
          settings,
          results,
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    await shutdown();
  }

  /** Creates the stories, then appends AddSubtask events round the stories until `events` are stored. */
  async function write(client: Client<typeof ContextCommandService>, version: number) {
    const storyIds = Array.from({ length: settings.stories }, () => uuidv7());
    let next = 0;
    await Promise.all(
      Array.from({ length: settings.inFlight }, async () => {
        for (let i = next++; i < storyIds.length; i = next++) {
          await client.createContext({
            storyId: storyIds[i] as string,
            commandId: uuidv7(),
            title: `Storage bench story ${i} (v${version})`,
            description: "A story of the storage benchmark",
          });
        }
      }),
    );
    // Each worker keeps its own stories (no conflicts) and goes round them, so that consecutive
    // messages in the stream belong to different stories, as under real load.
    const appends = settings.events - settings.stories;
    let done = 0;
    await Promise.all(
      Array.from({ length: settings.inFlight }, async (_, worker) => {
        const mine = storyIds.filter((_, i) => i % settings.inFlight === worker);
        let n = 0;
        while (done < appends) {
          done += 1;
          const storyId = mine[n % mine.length] as string;
          const subtask = worker * 1_000_000 + n;
          n += 1;
          await client.addSubtask({
            storyId,
            commandId: uuidv7(),
            subtaskId: `ST-${subtask}`,
            title: titleOf(subtask),
          });
        }
      }),
    );
  }
}

/** The stream's folder under the server's store directory (one NATS server: a single copy). */
function streamDir(root: string, stream: string): string {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 8) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (entry.name === stream && dir.endsWith("streams")) found.push(path);
      else walk(path, depth + 1);
    }
  };
  walk(root, 0);
  if (found.length !== 1) throw new Error(`found ${found.length} folders of stream ${stream}`);
  return found[0] as string;
}

function filesUnder(dir: string): { path: string; bytes: number }[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => {
      const path = join(e.parentPath, e.name);
      return { path, bytes: statSync(path).size };
    });
}

/**
 * Bytes per event: the sealed blocks (every `<n>.blk` but the last, which the server still writes
 * to and has not compressed) over the events they hold (the sequences before the last block's
 * first), and every file of the stream over every event.
 */
function measure(
  root: string,
  stream: string,
  messages: number,
  bytes: number,
): Omit<Measured, "envelopeVersion" | "envelopeBytesPerEvent" | "storedHeaders"> {
  const dir = streamDir(root, stream);
  const files = filesUnder(dir);
  const blocks = files
    .filter((f) => /\/msgs\/\d+\.blk$/.test(f.path))
    .map((f) => ({ ...f, index: Number(/(\d+)\.blk$/.exec(f.path)?.[1]) }))
    .sort((a, b) => a.index - b.index);
  const last = blocks.at(-1);
  if (last === undefined) throw new Error(`stream ${stream} has no message blocks`);
  const sealed = blocks.slice(0, -1);
  // A record starts with its length (4 bytes) and its sequence (8 bytes, little-endian); the top
  // bits flag headers and tombstones. The open block is written uncompressed.
  const head = readFileSync(last.path).subarray(0, 12);
  const firstOfLast = Number(head.readBigUInt64LE(4) & ((1n << 62n) - 1n));
  const sealedEvents = firstOfLast - 1;
  const sealedBytes = sealed.reduce((sum, b) => sum + b.bytes, 0);
  return {
    events: messages,
    jetStreamBytesPerEvent: bytes / messages,
    sealedBytesPerEvent: sealedEvents > 0 ? sealedBytes / sealedEvents : Number.NaN,
    sealedBlocks: sealed.length,
    sealedEvents,
    allFilesBytesPerEvent: files.reduce((sum, f) => sum + f.bytes, 0) / messages,
  };
}

/** The mean size of the data of the last 1,000 messages (the envelopes). */
async function envelopeBytes(
  jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  stream: string,
  last: number,
): Promise<number> {
  let total = 0;
  let count = 0;
  for (let seq = Math.max(1, last - 999); seq <= last; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m === null) continue;
    total += m.data.length;
    count += 1;
  }
  return total / count;
}

function headerText(h: { keys(): string[]; get(k: string): string }): string {
  return h
    .keys()
    .map((k) => `${k}: ${h.get(k)}`)
    .join("; ");
}

await main();
