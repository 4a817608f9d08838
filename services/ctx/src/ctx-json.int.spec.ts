import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { createEventStore } from "@ctx/event-store";
import { appendAsWritten } from "@ctx/event-store/testing";
import { park } from "@ctx/projector";
import { ContextCreatedSchema, SubtaskAddedSchema } from "@ctx/proto";
import {
  type CtxRun,
  connectTestNats,
  runCtx,
  stack,
  storeEnv,
  uniqueName,
} from "@ctx/test-support";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Provisioned } from "./commands/streams.ts";

// Issue #24: ctx for scripts. The real bin/ctx, against the test run's NATS, Valkey and Neo4j,
// reached through --nats-url (no NATS_URL in its environment): --json gives one JSON document on
// stdout and nothing else there; failures and usage errors go to stderr, with exit codes 1 and 2.

const rootVersion = (
  JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

let nc: NatsConnection;
let env: Record<string, string | undefined>;
let natsUrl: string;
const stream = uniqueName("CLIJSON");
const prefix = stream.toLowerCase();
const names = { stream, subjectPrefix: prefix };
const parking = { stream: `${stream}_PARKED`, subjectPrefix: `${prefix}_parked` };
const story = `cli-${Date.now().toString(36)}`;

function ctx(...args: string[]): Promise<CtxRun> {
  return runCtx(["--nats-url", natsUrl, ...args], env);
}

/** A run that succeeded with --json: its stdout as the one JSON document it must be. */
async function json<T>(...args: string[]): Promise<T> {
  const run = await ctx(...args, "--json");
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as T;
}

beforeAll(async () => {
  const s = stack();
  const { NATS_URL, ...natsLogin } = s.natsEnv;
  natsUrl = NATS_URL ?? "";
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    // No local stack's settings or credentials: only what is given here.
    STACK_DIR: `/nonexistent/${stream}`,
    ...natsLogin,
    ...storeEnv(s, "ctx"),
    READ_MODEL_NAMESPACE: uniqueName("clijson"),
    EVENT_STREAM: stream,
    EVENT_SUBJECT_PREFIX: prefix,
    EVENT_PARTITIONS: "4",
    PARKED_STREAM: parking.stream,
    PARKED_SUBJECT_PREFIX: parking.subjectPrefix,
    SNAPSHOT_STREAM: `${stream}_SNAPSHOTS`,
    SNAPSHOT_SUBJECT_PREFIX: `${prefix}_snapshots`,
    LOG_LEVEL: "silent",
  };
  nc = await connectTestNats();
});

afterAll(async () => {
  await nc?.close();
});

describe("ctx --json", () => {
  it("provision reports what it made ready", async () => {
    const provisioned = await json<Provisioned>("provision");
    expect(provisioned.eventStream).toMatchObject({ name: stream, events: 0, partitions: 4 });
    expect(provisioned.ready.map((r) => r.name)).toEqual([
      parking.stream,
      `${stream}_SNAPSHOTS`,
      `${stream}_COMMAND_SNAPSHOTS`,
      expect.stringContaining(stream),
      expect.stringContaining(stream),
    ]);

    const store = createEventStore(nc, { names });
    const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute));
    await appendAsWritten(nc, store, story, [
      {
        eventType: "ContextCreated",
        schemaVersion: 1,
        payloadSchema: ContextCreatedSchema,
        payload: create(ContextCreatedSchema, { title: "JSON", description: "for scripts" }),
        occurredAt: at(1),
      },
      {
        eventType: "SubtaskAdded",
        schemaVersion: 1,
        payloadSchema: SubtaskAddedSchema,
        payload: create(SubtaskAddedSchema, { subtaskId: "a", title: "A" }),
        occurredAt: at(2),
      },
    ]);
  });

  it("events stats: the stream's kinds of events", async () => {
    const stats = await json<{ stream: string; events: number; kinds: unknown[] }>(
      "events",
      "stats",
    );
    expect(stats).toMatchObject({ stream, events: 2 });
    expect(stats.kinds).toEqual([
      expect.objectContaining({
        type: "ContextCreated",
        schemaVersion: 1,
        count: 1,
        unreadable: false,
      }),
      expect.objectContaining({
        type: "SubtaskAdded",
        schemaVersion: 1,
        count: 1,
        unreadable: false,
      }),
    ]);
  });

  it("events list: the story's history", async () => {
    const listed = await json<{ story: string; events: unknown[] }>(
      "events",
      "list",
      "--story",
      story,
    );
    expect(listed.story).toBe(story);
    expect(listed.events).toEqual([
      expect.objectContaining({
        version: 1,
        type: "ContextCreated",
        occurredAt: "2026-01-01T00:01:00.000Z",
        setAside: false,
      }),
      expect.objectContaining({ version: 2, type: "SubtaskAdded", setAside: false }),
    ]);
  });

  it("stories check: every message readable", async () => {
    const check = await json<{ unreadable: number[]; messages: unknown[] }>(
      "stories",
      "check",
      "--story",
      story,
    );
    expect(check.unreadable).toEqual([]);
    expect(check.messages).toHaveLength(2);
  });

  it("parked list: none, then the parked event", async () => {
    expect(await json("parked", "list")).toEqual({ parked: [] });
    await park(jetstream(nc), parking, {
      projection: "neo4j",
      storyId: story,
      version: 2,
      originalSequence: 2,
      eventType: "SubtaskAdded",
      reason: "for the test",
      data: new Uint8Array([1]),
    });
    const { parked } = await json<{ parked: unknown[] }>("parked", "list");
    expect(parked).toEqual([
      expect.objectContaining({
        projection: "neo4j",
        story,
        version: 2,
        eventSequence: 2,
        type: "SubtaskAdded",
        reason: "for the test",
      }),
    ]);
    expect(await json("parked", "list", "--projection", "valkey")).toEqual({ parked: [] });
  });

  it("projections status: both read models, per partition", async () => {
    const status = await json<{ stream: string; events: number; projections: unknown[] }>(
      "projections",
      "status",
    );
    expect(status).toMatchObject({ stream, events: 2, lastSequence: 2 });
    const partitions = [0, 1, 2, 3].map((partition) =>
      expect.objectContaining({ partition, ackFloor: null, pending: null }),
    );
    expect(status.projections).toEqual([
      expect.objectContaining({ projection: "neo4j", parked: 1, lag: 0, partitions }),
      expect.objectContaining({ projection: "valkey", parked: 0, lag: 0, partitions }),
    ]);
  });

  it("a failure: nothing on stdout, the error as JSON on stderr, exit code 1", async () => {
    const run = await ctx("events", "list", "--story", "no-such-story", "--json");
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(JSON.parse(run.stderr)).toEqual({
      error: {
        message: expect.stringContaining("no-such-story"),
        name: expect.any(String),
        exitCode: 1,
      },
    });
  });
});

describe("ctx --version", () => {
  it("prints the product version, -V too", async () => {
    for (const flag of ["--version", "-V"]) {
      const run = await runCtx([flag], env);
      expect(run).toEqual({ code: 0, stdout: `${rootVersion}\n`, stderr: "" });
    }
    expect(await json("version")).toEqual({
      version: rootVersion,
      node: expect.stringMatching(/^v24\./),
    });
  });
});

describe("usage errors", () => {
  it("a bad number exits 2, naming the option and what it expects, before connecting", async () => {
    for (const args of [
      ["projections", "rebuild", "all", "--batch-size", "lots"],
      ["stories", "repair", "--story", story, "--sequence", "0", "--reason", "r"],
      ["streams", "restore", "--from", "x", "--replicas", "7"],
    ]) {
      const run = await ctx(...args);
      expect(run.code).toBe(2);
      expect(run.stdout).toBe("");
      expect(run.stderr).toMatch(
        /^error: option '--[a-z-]+ <n>' argument '\w+' is invalid\. Expected a whole number/,
      );
    }
  });

  it("with --json the usage error is a JSON document on stderr", async () => {
    const run = await ctx(
      "token",
      "mint",
      "--key",
      "k",
      "--issuer",
      "i",
      "--audience",
      "a",
      "--subject",
      "s",
      "--ttl",
      "soon",
      "--json",
    );
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(JSON.parse(run.stderr)).toEqual({
      error: {
        message: expect.stringMatching(
          /^option '--ttl <duration>' argument 'soon' is invalid\. Expected a duration/,
        ),
        name: "UsageError",
        exitCode: 2,
      },
    });
  });

  it("an unknown command exits 2", async () => {
    const run = await ctx("frobnicate");
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown command 'frobnicate'/);
  });
});
