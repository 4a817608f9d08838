// The backup and restore benchmark: a stream of BENCH_EVENTS events is backed up with JetStream's
// snapshot API (what `ctx streams backup` runs, as the operator's NATS user) into a folder, then
// restored into a second, empty server (what `ctx streams restore` runs), and the restored stream is
// compared with the manifest. Prints MB/s and events/s of each, and the backup's bytes per event.
// Run it with `make bench`.
//
// Env: BENCH_EVENTS (100000), BENCH_STORIES (1000).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import type { ContextEventData } from "@ctx/domain";
import {
  backupStreams,
  defaultEventStreamSettings,
  openBackup,
  restoreBackup,
} from "@ctx/event-store";
import { connectNats, natsConnectionOf } from "@ctx/service";
import { currentEnvelopes, fillInterleaved } from "./support/fill.ts";
import { describeMachine, gitState } from "./support/run-info.ts";
import { type BenchStack, onShutdown, startBenchStack } from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const settings = {
  events: envNumber("BENCH_EVENTS", 100_000),
  stories: envNumber("BENCH_STORIES", 1_000),
  publishWindow: 2_000,
};
const names = defaultEventStreamSettings;

/** Event `v` (1-based) of a story: created, then subtasks and decisions with some text. */
function eventOf(v: number): ContextEventData {
  if (v === 1) {
    return {
      case: "contextCreated",
      value: {
        $typeName: "context.v1.ContextCreated",
        title: "Checkout in one step",
        description: "",
      },
    };
  }
  return v % 3 === 0
    ? {
        case: "decisionAdded",
        value: {
          $typeName: "context.v1.DecisionAdded",
          decisionId: `d${v}`,
          title: "Store events in JetStream",
          rationale: "one stream, subjects per story, server-side concurrency checks",
          madeBy: "ada",
          alternatives: ["a relational outbox"],
          affectsSubtaskIds: [`t${v - 1}`],
        },
      }
    : {
        case: "subtaskAdded",
        value: {
          $typeName: "context.v1.SubtaskAdded",
          subtaskId: `t${v}`,
          title: `Subtask ${v}`,
          dependsOn: v > 3 ? [`t${v - 2}`] : [],
        },
      };
}

async function operator(stack: BenchStack) {
  return connectNats(natsConnectionOf(stack.natsEnv("ctx")), { name: "bench-backup" });
}

async function main() {
  const source = await startBenchStack();
  const target = await startBenchStack();
  const work = mkdtempSync(join(os.tmpdir(), "bench-backup-"));
  const stopAll = onShutdown(async () => {
    rmSync(work, { recursive: true, force: true });
    await Promise.all([source.stop(), target.stop()]);
  });
  try {
    await source.provision();
    const writer = await source.connectNats("bench-backup-fill");
    const t0 = Date.now() - settings.events;
    console.log(`filling ${names.stream} with ${settings.events} events…`);
    const filled = await fillInterleaved(writer, names, {
      events: settings.events,
      stories: settings.stories,
      publishWindow: settings.publishWindow,
      envelope: currentEnvelopes(eventOf, t0),
    });
    await writer.drain();

    const out = join(work, "backup");
    const sourceNc = await operator(source);
    const backupStart = performance.now();
    const manifest = await backupStreams(sourceNc, {
      streams: [names.stream],
      out,
      inboxPrefix: source.natsEnv("ctx").NATS_INBOX_PREFIX ?? "_INBOX",
    });
    const backupSeconds = (performance.now() - backupStart) / 1000;
    await sourceNc.drain();
    const stream = manifest.streams[0];
    if (!stream) throw new Error("the backup holds no stream");

    const targetNc = await operator(target);
    const restoreStart = performance.now();
    const verified = await openBackup(out);
    const verifySeconds = (performance.now() - restoreStart) / 1000;
    const [restored] = await restoreBackup(targetNc, verified);
    const restoreSeconds = (performance.now() - restoreStart) / 1000;
    await verified.close();
    await targetNc.drain();
    if (!restored?.matches) throw new Error("the restored stream differs from the manifest");

    const mb = (bytes: number, seconds: number) => bytes / 1_048_576 / seconds;
    const rows = [
      {
        phase: "backup",
        seconds: backupSeconds,
        dataMBs: mb(stream.data_bytes, backupSeconds),
        streamMBs: mb(stream.stream_bytes, backupSeconds),
        eventsPerSecond: stream.messages / backupSeconds,
      },
      {
        phase: "restore (verify + upload)",
        seconds: restoreSeconds,
        dataMBs: mb(stream.data_bytes, restoreSeconds),
        streamMBs: mb(stream.stream_bytes, restoreSeconds),
        eventsPerSecond: stream.messages / restoreSeconds,
      },
    ];
    console.log(
      `\n${stream.messages} events (filled at ${fmt(filled.events / filled.seconds, 0)}/s), stream ${fmt(stream.stream_bytes / 1_048_576)} MB, backup ${fmt(stream.data_bytes / 1_048_576)} MB: ${fmt(stream.data_bytes / stream.messages)} bytes per event (${fmt((100 * stream.data_bytes) / stream.stream_bytes)} % of the stream's)`,
    );
    console.log(
      table(
        ["phase", "seconds", "backup MB/s", "stream MB/s", "events/s"],
        rows.map((r) => [
          r.phase,
          fmt(r.seconds, 2),
          fmt(r.dataMBs),
          fmt(r.streamMBs),
          fmt(r.eventsPerSecond, 0),
        ]),
      ),
    );
    console.log(`(of the restore, checking the checksums took ${fmt(verifySeconds, 2)} s)`);
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      join(resultsDir, "backup-restore.json"),
      JSON.stringify(
        {
          settings,
          machine: describeMachine(),
          git: gitState(),
          server: manifest.server.version,
          events: stream.messages,
          streamBytes: stream.stream_bytes,
          backupBytes: stream.data_bytes,
          bytesPerEvent: stream.data_bytes / stream.messages,
          verifySeconds,
          phases: rows,
        },
        null,
        2,
      ),
    );
  } finally {
    await stopAll();
  }
}

await main();
