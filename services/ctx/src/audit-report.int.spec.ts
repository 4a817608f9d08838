import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type StoryId, storyId } from "@ctx/domain";
import { eventData } from "@ctx/domain/testing";
import {
  checkpointNames,
  createEventStore,
  type EventStore,
  type EventStreamSettings,
  ExpectedVersion,
  eventSubject,
  type StoredEvent,
  storedEnvelopeBytes,
} from "@ctx/event-store";
import { type ParkingNames, park, provisionParking } from "@ctx/projector";
import { connectTestNats, runCtx, stack, storeEnv, uniqueName } from "@ctx/test-support";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditReport } from "./audit-report/collect.ts";
import { insiderStream } from "./testing/insider-stream.ts";

// Issue #25: `ctx audit report` says what happened in a period (events per type, actor and day,
// with charts), how the whole history verifies (chains, signed checkpoints), what was parked, which
// stories an operator repaired and which projections were rebuilt. Rendered here as a PDF, read
// back with pdftotext (Poppler), and as Markdown, HTML and JSON, from a stream where each of those
// happened.

const repoRoot = join(import.meta.dirname, "../../..");
const pdftotext = existsSync(join(repoRoot, ".tools/bin/pdftotext"))
  ? join(repoRoot, ".tools/bin/pdftotext")
  : "pdftotext";

let nc: NatsConnection;
let jsm: JetStreamManager;
let settings: EventStreamSettings;
let parking: ParkingNames;
let store: EventStore;
let env: Record<string, string>;
let keys: string;
let dir: string;
let alice: StoryId;
let repaired: StoryId;
let garbageSequence: number;

function ctx(...args: string[]) {
  return runCtx(args, env, 90_000);
}

/** A story written as commands of `principal` write it: created, then `subtasks` subtasks. */
async function storyBy(principal: string, subtasks: number): Promise<StoryId> {
  const id = storyId(uniqueName("report"));
  await store.append(id, [{ data: eventData.contextCreated() }], ExpectedVersion.NoStory, {
    principal,
  });
  for (let i = 0; i < subtasks; i++) {
    await store.append(
      id,
      [{ data: eventData.subtaskAdded({ subtaskId: `t${i}`, title: `Subtask ${i}` }) }],
      ExpectedVersion.Any,
      { principal },
    );
  }
  return id;
}

beforeAll(async () => {
  const s = stack();
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  settings = await insiderStream(jsm, "REPORT");
  const parked = uniqueName("REPORT_PARKED");
  parking = { stream: parked, subjectPrefix: parked.toLowerCase() };
  await provisionParking(jsm, parking);
  store = createEventStore(nc, { names: settings });
  dir = await mkdtemp(join(tmpdir(), "ctx-report-"));
  env = {
    ...process.env,
    ...s.natsEnv,
    ...storeEnv(s, "ctx"),
    READ_MODEL_NAMESPACE: uniqueName("report"),
    EVENT_STREAM: settings.stream,
    EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
    EVENT_PARTITIONS: String(settings.partitions),
    PARKED_STREAM: parking.stream,
    PARKED_SUBJECT_PREFIX: parking.subjectPrefix,
    LOG_LEVEL: "silent",
    NO_COLOR: "1",
  } as Record<string, string>;

  // Events by two actors; a signed checkpoint; an event parked by a projector; a story repaired by
  // an operator; a projection rebuilt.
  alice = await storyBy("jwt:alice", 4);
  await storyBy("mtls:billing-service", 1);
  keys = join(dir, "keys");
  expect((await ctx("audit", "keygen", "--keys", keys, "--key-id", "k1")).code).toBe(0);
  const signed = await ctx("audit", "checkpoint", "--keys", keys);
  expect(signed.code, signed.stderr).toBe(0);
  await park(jetstream(nc), parking, {
    projection: "neo4j",
    storyId: alice,
    version: 2,
    originalSequence: 2,
    eventType: "SubtaskAdded",
    reason: "a constraint the graph refused",
    data: new Uint8Array([1]),
  });
  repaired = await storyBy("jwt:alice", 0);
  garbageSequence = (
    await jetstream(nc).publish(
      eventSubject(settings, repaired, "SubtaskAdded"),
      new Uint8Array([0x0a, 0xff, 0xff]),
    )
  ).seq;
  const repair = await ctx(
    "stories",
    "repair",
    "--story",
    repaired,
    "--sequence",
    String(garbageSequence),
    "--reason",
    "bytes written by a broken tool",
    "--operator",
    "ops-oncall",
  );
  expect(repair.code, repair.stderr).toBe(0);
  const rebuilt = await ctx(
    "projections",
    "rebuild",
    "valkey",
    "--story",
    alice,
    "--operator",
    "ops-oncall",
  );
  expect(rebuilt.code, rebuilt.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  for (const name of [
    settings?.stream,
    settings && checkpointNames(settings).stream,
    settings && `${settings.stream}_OPERATIONS`,
    parking?.stream,
  ]) {
    if (name) await jsm?.streams.delete(name).catch(() => undefined);
  }
  await nc?.close();
});

const today = () => new Date().toISOString().slice(0, 10);
const tomorrow = () => new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

/** `ctx audit report` over today (UTC), with `extra` arguments. */
const reportOfToday = (...extra: string[]) =>
  ctx("audit", "report", "--from", today(), "--to", tomorrow(), ...extra);

function textOf(pdf: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(pdftotext, ["-layout", pdf, "-"], { timeout: 30_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`pdftotext: ${stderr || error.message}`)) : resolve(stdout),
    );
  });
}

describe("ctx audit report", () => {
  it("gives the period's data as JSON: every count, the verification, parked, repairs, rebuilds", async () => {
    const run = await reportOfToday("--keys", keys, "--json");
    expect(run.code, run.stderr).toBe(0);
    const r = JSON.parse(run.stdout) as AuditReport;
    expect(r.events.total).toBe(10); // 5 + 2 + 1 + the garbage + the repair
    expect(r.events.byType).toEqual([
      { key: "SubtaskAdded", count: 6 },
      { key: "ContextCreated", count: 3 },
      { key: "EventsSetAside", count: 1 },
    ]);
    expect(r.events.byActor).toEqual([
      { key: "jwt:alice", count: 6 },
      { key: "mtls:billing-service", count: 2 },
      { key: "(none)", count: 1 }, // the repair: written by ctx, not by a command
      { key: "(unreadable)", count: 1 },
    ]);
    expect(r.events.timeUnit).toBe("day");
    expect(r.events.byTime).toEqual([{ key: today(), count: 10 }]);
    expect(r.verification.breaks).toEqual([]);
    expect(r.verification.checkpoints).toEqual({
      found: 1,
      matched: 1,
      signaturesChecked: true,
    });
    expect(r.checkpoints).toMatchObject([{ lastSequence: 7, messages: 7, keyId: "k1" }]);
    expect(r.parked).toMatchObject({
      total: 1,
      byProjection: [{ key: "neo4j", count: 1 }],
      entries: [{ storyId: alice, reason: "a constraint the graph refused" }],
    });
    expect(r.repairs).toMatchObject([
      {
        storyId: repaired,
        operator: "ops-oncall",
        reason: "bytes written by a broken tool",
        setAside: [garbageSequence],
      },
    ]);
    expect(r.operations).toMatchObject([
      { action: "projection-rebuild", operator: "ops-oncall", outcome: "done" },
    ]);

    // Nothing happened yesterday.
    const before = await ctx(
      "audit",
      "report",
      "--from",
      new Date(Date.now() - 86_400_000).toISOString().slice(0, 10),
      "--to",
      today(),
      "--json",
    );
    const empty = JSON.parse(before.stdout) as AuditReport;
    expect(empty.events.total).toBe(0);
    expect(empty.repairs).toEqual([]);
    expect(empty.operations).toEqual([]);
  });

  it("renders a PDF whose text says all of it, charts included (pdftotext)", async () => {
    const file = join(dir, "report.pdf");
    const run = await reportOfToday("--keys", keys, "--format", "pdf", "--out", file);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/audit report \(pdf, \d+ bytes\) written to/);
    expect(readFileSync(file).subarray(0, 5).toString()).toBe("%PDF-");
    const text = await textOf(file);
    for (const expected of [
      `Audit report of ${settings.stream}`,
      "Every hash chain is intact",
      "1 of 1 signed checkpoints match the stream, signatures checked",
      "10 events were stored in the period",
      // The charts' own titles and labels, drawn from Vega-Lite's SVG.
      "Events per day",
      "Events per type",
      "Events per actor",
      "jwt:alice",
      "mtls:billing-service",
      "a constraint the graph refused",
      "bytes written by a broken tool",
      "ops-oncall",
      "projection-rebuild",
    ]) {
      expect(text, expected).toContain(expected);
    }
    // Each chart is there: its title appears as a heading and inside the chart.
    expect(text.split("Events per type").length - 1).toBeGreaterThanOrEqual(2);
  });

  it("renders Markdown tables and a self-contained HTML page with its charts as SVG", async () => {
    const md = await reportOfToday();
    expect(md.code, md.stderr).toBe(0);
    expect(md.stdout).toContain("| SubtaskAdded | 6 |");
    expect(md.stdout).toContain("| jwt:alice | 6 |");
    expect(md.stdout).toContain("signatures NOT checked (no keys given)");

    const html = await reportOfToday("--format", "html");
    expect(html.code, html.stderr).toBe(0);
    expect(html.stdout.match(/<svg/g)?.length).toBe(3);
    expect(html.stdout).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    expect(html.stdout).toContain("<td>jwt:alice</td>");
  });

  it("exits 1 and says so when the history does not verify", async () => {
    // A next version with its predecessor's content and hash: it does not hash to it.
    const last = ((await store.readStored(alice)).at(-1) as StoredEvent).envelope;
    await jetstream(nc).publish(
      eventSubject(settings, alice, "SubtaskAdded"),
      storedEnvelopeBytes({ ...last, version: last.version + 1, prevHash: last.hash }),
    );
    const run = await reportOfToday();
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("1 break(s) of the hash chains");
    expect(run.stdout).toMatch(/\| altered \|/);
  });

  it("refuses a period that ends before it starts (exit 1), and a time without its zone (usage, exit 2)", async () => {
    const backwards = await ctx("audit", "report", "--from", tomorrow(), "--to", today());
    expect(backwards.code).toBe(1);
    expect(backwards.stderr).toMatch(/--from.*before --to/);
    const zoneless = await ctx("audit", "report", "--from", "2026-12-01T08:00:00");
    expect(zoneless.code).toBe(2);
    expect(zoneless.stderr).toMatch(/with its zone/);
  });
});
