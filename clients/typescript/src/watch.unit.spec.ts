import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { ContextQueries } from "./client.ts";
import { toContextError } from "./errors.ts";
import {
  type GetContextResponse,
  GetContextResponseSchema,
} from "./gen/context/v1/query_service_pb.js";
import { watchStory } from "./watch.ts";

// The watch's bookkeeping against a scripted query service (no servers; the e2e spec runs it
// against the real one): each WatchContext call plays the next script, a list of versions then
// how it ends.

type Script = { readonly versions: readonly number[]; readonly end?: unknown };

const state = (version: number): GetContextResponse =>
  create(GetContextResponseSchema, { version, context: { storyId: "s", title: `v${version}` } });

function scripted(scripts: readonly Script[]) {
  const read: number[] = [];
  let calls = 0;
  const queries = {
    async *watchContext() {
      const script = scripts[calls++];
      if (script === undefined) throw toContextError(new ConnectError("done", Code.NotFound));
      for (const v of script.versions) yield { state: state(v) };
      if (script.end !== undefined) throw script.end;
    },
    async getContextAtVersion({ version }: { version: number }) {
      read.push(version);
      return state(version);
    },
  } as unknown as ContextQueries;
  return { queries, read, calls: () => calls };
}

const unavailable = () => toContextError(new ConnectError("gone", Code.Unavailable));
const fast = { retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1 } };

async function collect(
  queries: ContextQueries,
  options: Parameters<typeof watchStory>[2],
  count: number,
): Promise<number[]> {
  const versions: number[] = [];
  for await (const s of watchStory(queries, "s", options)) {
    versions.push(s.version);
    if (versions.length === count) break;
  }
  return versions;
}

describe("watchStory", () => {
  it("skips states it gave before a reconnect and reads the versions it missed", async () => {
    const s = scripted([{ versions: [3, 4], end: unavailable() }, { versions: [4, 7, 8] }]);
    expect(await collect(s.queries, fast, 6)).toEqual([3, 4, 5, 6, 7, 8]);
    expect(s.read).toEqual([5, 6]);
  });

  it("starts at fromVersion, reading the versions before the first streamed state", async () => {
    const s = scripted([{ versions: [4, 5] }]);
    expect(await collect(s.queries, { ...fast, fromVersion: 2 }, 4)).toEqual([2, 3, 4, 5]);
    expect(s.read).toEqual([2, 3]);
  });

  it("fromVersion 0 is from the first version", async () => {
    const s = scripted([{ versions: [2] }]);
    expect(await collect(s.queries, { ...fast, fromVersion: 0 }, 2)).toEqual([1, 2]);
  });

  it("reconnects after a stream that ends without an error (a closed connection)", async () => {
    const s = scripted([{ versions: [1] }, { versions: [1, 2] }]);
    expect(await collect(s.queries, fast, 2)).toEqual([1, 2]);
    expect(s.calls()).toBe(2);
  });

  it("reconnects after a lagging watch was ended, not after the limit of watches", async () => {
    const lagging = toContextError(new ConnectError("behind", Code.ResourceExhausted));
    const s = scripted([{ versions: [1], end: lagging }, { versions: [2] }]);
    expect(await collect(s.queries, fast, 2)).toEqual([1, 2]);

    const limit = toContextError(
      new ConnectError("too many", Code.ResourceExhausted, { "x-limit": "watches" }),
    );
    const limited = scripted([{ versions: [], end: limit }]);
    await expect(collect(limited.queries, fast, 1)).rejects.toBe(limit);
  });

  it("gives up with the last error after maxAttempts reconnects without a state", async () => {
    const last = unavailable();
    const s = scripted([
      { versions: [1], end: unavailable() },
      { versions: [], end: unavailable() },
      { versions: [], end: last },
    ]);
    await expect(collect(s.queries, fast, 5)).rejects.toBe(last);
    expect(s.calls()).toBe(3);
  });

  it("throws an error a reconnect does not cure (NOT_FOUND) at once", async () => {
    const s = scripted([]);
    await expect(collect(s.queries, fast, 1)).rejects.toMatchObject({ name: "NotFoundError" });
  });

  it("ends without an error when the caller's signal aborts", async () => {
    const controller = new AbortController();
    controller.abort();
    const s = scripted([{ versions: [1] }]);
    expect(await collect(s.queries, { ...fast, signal: controller.signal }, 1)).toEqual([]);
    expect(s.calls()).toBe(0);
  });
});
