// The audit benchmark: `ctx audit verify --all` over a stream of BENCH_AUDIT_EVENTS events
// (1,000,000 by default, over 10,000 stories), against the raw rate of consuming the same stream in
// order with no decoding at all, in the same run. Also the library alone (ChainAuditor over the
// store's readAllMessages, in this process). Run it with `make bench`.
//
// Env: BENCH_AUDIT_EVENTS (1000000), BENCH_AUDIT_STORIES (10000).
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventData } from "@ctx/domain/testing";
import { ChainAuditor, createEventStore, defaultEventStreamNames } from "@ctx/event-store";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { currentEnvelopes, fillInterleaved } from "./support/fill.ts";
import { rawOrderedRead } from "./support/raw-read.ts";
import { describeMachine, gitState } from "./support/run-info.ts";
import { type BenchStack, onShutdown, startBenchStack } from "./support/servers.ts";
import { envNumber, resultsDir } from "./support/settings.ts";
import { fmt, table } from "./support/stats.ts";

const settings = {
  events: envNumber("BENCH_AUDIT_EVENTS", 1_000_000),
  stories: envNumber("BENCH_AUDIT_STORIES", 10_000),
  publishWindow: 2_000,
};
const names = defaultEventStreamNames;
const repoRoot = join(import.meta.dirname, "..");

/** The library: every message through ChainAuditor, in this process. */
async function libraryAudit(nc: NatsConnection) {
  const store = createEventStore(nc, { names });
  const auditor = new ChainAuditor(names);
  const started = performance.now();
  for await (const m of store.readAllMessages({ signatures: true })) auditor.add(m);
  const breaks = auditor.finish().length;
  return { events: auditor.messages, seconds: (performance.now() - started) / 1000, breaks };
}

/** `bin/ctx audit verify --all --json` as an operator runs it (process start included). */
function ctxAudit(stack: BenchStack) {
  const started = performance.now();
  return new Promise<{ events: number; seconds: number; breaks: number; exit: number }>(
    (resolve, reject) => {
      execFile(
        join(repoRoot, "bin/ctx"),
        ["audit", "verify", "--all", "--json"],
        {
          env: { ...process.env, ...stack.natsEnv("ctx"), LOG_LEVEL: "warn" },
          maxBuffer: 256 * 1024 * 1024,
          timeout: 3_600_000,
        },
        (error, stdout, stderr) => {
          const seconds = (performance.now() - started) / 1000;
          try {
            const result = JSON.parse(stdout) as { messages: number; breaks: unknown[] };
            const exit = error ? Number(error.code ?? 1) : 0;
            resolve({ events: result.messages, seconds, breaks: result.breaks.length, exit });
          } catch {
            reject(new Error(`ctx audit verify gave no JSON: ${stderr}`));
          }
        },
      );
    },
  );
}

async function main(): Promise<void> {
  const started = new Date();
  const machine = describeMachine();
  console.log(
    `audit bench: ${settings.events} events over ${settings.stories} stories; ${machine.cpus}× ${machine.cpuModel}`,
  );
  const stack = await startBenchStack({});
  const teardown = onShutdown(() => stack.stop());
  try {
    await stack.provision();
    const nc = await stack.connectNats("bench-audit");
    const filled = await fillInterleaved(nc, names, {
      events: settings.events,
      stories: settings.stories,
      publishWindow: settings.publishWindow,
      envelope: currentEnvelopes(
        (version) =>
          version === 1
            ? eventData.contextCreated({ title: "An audited story" })
            : eventData.subtaskAdded({
                subtaskId: `t${version}`,
                title: `Subtask ${version} of a story with a title of about fifty-five chars`,
              }),
        Date.UTC(2026, 0, 1),
      ),
    });
    const info = await (await jetstreamManager(nc)).streams.info(names.stream);
    console.log(
      `  filled ${names.stream}: ${filled.events} events in ${fmt(filled.seconds)} s (${fmt(info.state.bytes / 1e6)} MB)`,
    );
    const raw = await rawOrderedRead(nc, names);
    const library = await libraryAudit(nc);
    const ctx = await ctxAudit(stack);
    await nc.close();
    if (library.breaks > 0 || ctx.breaks > 0 || ctx.exit !== 0) {
      throw new Error(
        `breaks in a stream written honestly: library ${library.breaks}, ctx ${ctx.breaks}`,
      );
    }
    const rate = (r: { events: number; seconds: number }) => r.events / r.seconds;
    const results = {
      bench: "audit",
      startedAt: started.toISOString(),
      git: gitState(),
      machine,
      settings,
      streamBytes: info.state.bytes,
      raw: { ...raw, perSecond: rate(raw) },
      library: { ...library, perSecond: rate(library), ratio: rate(library) / rate(raw) },
      ctx: { ...ctx, perSecond: rate(ctx), ratio: rate(ctx) / rate(raw) },
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(join(resultsDir, "audit.json"), `${JSON.stringify(results, null, 2)}\n`);
    console.log(
      `\n${table(
        ["", "events", "seconds", "events/s", "of raw"],
        [
          [
            "raw ordered consume, no decoding",
            String(raw.events),
            fmt(raw.seconds),
            fmt(rate(raw), 0),
            "1.00",
          ],
          [
            "ChainAuditor over readAllMessages (library)",
            String(library.events),
            fmt(library.seconds),
            fmt(rate(library), 0),
            fmt(results.library.ratio, 2),
          ],
          [
            "bin/ctx audit verify --all (process start included)",
            String(ctx.events),
            fmt(ctx.seconds),
            fmt(rate(ctx), 0),
            fmt(results.ctx.ratio, 2),
          ],
        ],
      )}\n\nJSON: bench/results/audit.json`,
    );
  } finally {
    await teardown();
  }
}

await main();
