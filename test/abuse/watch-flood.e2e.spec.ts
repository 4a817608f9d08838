import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ContextQueryService } from "@ctx/proto";
import { newStory, type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import { eventually, sendTestToken, uniqueName } from "@ctx/test-support";
import { AckPolicy } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// A flood of WatchContext calls from one client: the ones within the per-client cap are served
// (every watcher sees every new version), the rest are refused RESOURCE_EXHAUSTED, and the flood
// takes nothing from JetStream that projectors, rebuilds and the CLI need: no consumer is created,
// and stream info and consumer creation keep working while it lasts.

const STORIES = 50;
const WATCHES = 1_500;
const PER_CLIENT = 1_000;
const CONNECTIONS = 4;

let s: QueryStack;
let command: Awaited<ReturnType<QueryStack["startCommand"]>>;
let baseUrl: string;
const stories = Array.from({ length: STORIES }, () => newStory());

beforeAll(async () => {
  s = await startQueryStack();
  command = await s.startCommand();
  for (const story of stories) await command.client.createContext({ storyId: story, title: "W" });
  const q = await s.startQuery({ WATCH_MAX_PER_CLIENT: String(PER_CLIENT) });
  baseUrl = q.baseUrl;
}, 120_000);

afterAll(async () => {
  await s?.stop();
});

interface Watcher {
  readonly story: string;
  readonly versions: number[];
  code?: Code;
}

describe("a watch flood", () => {
  it(`of ${WATCHES} watches from one client serves ${PER_CLIENT} and refuses the rest, with no JetStream consumer`, async () => {
    // The query service's snapshotter has a durable consumer of its own; nothing else may appear.
    const consumers = async () => {
      const names: string[] = [];
      for await (const c of s.jsm.consumers.list(s.settings.stream)) names.push(c.name);
      return names.filter((n) => !n.startsWith("snapshotter_"));
    };
    const consumersBefore = await consumers();
    const clients = Array.from({ length: CONNECTIONS }, () =>
      createClient(
        ContextQueryService,
        createGrpcTransport({ baseUrl, interceptors: [sendTestToken] }),
      ),
    );
    const abort = new AbortController();
    const watchers: Watcher[] = Array.from({ length: WATCHES }, (_, i) => ({
      story: stories[i % STORIES] as string,
      versions: [],
    }));
    // A call the server sheds before it starts (its queue of calls is full) is UNAVAILABLE and
    // safe to retry, which is what a client does; RESOURCE_EXHAUSTED (the cap) is final.
    let shed = 0;
    const running = watchers.map(async (w, i) => {
      const client = clients[i % CONNECTIONS] as (typeof clients)[number];
      for (;;) {
        try {
          for await (const r of client.watchContext(
            { storyId: w.story },
            { signal: abort.signal },
          )) {
            w.versions.push(r.state?.version ?? -1);
          }
          return;
        } catch (e) {
          const code = ConnectError.from(e).code;
          if (code !== Code.Unavailable || abort.signal.aborted) {
            w.code = code;
            return;
          }
          shed += 1;
          await new Promise((r) => setTimeout(r, 20 + (i % 50)));
        }
      }
    });
    const served = () => watchers.filter((w) => w.versions.length > 0);
    const refused = () => watchers.filter((w) => w.code === Code.ResourceExhausted);
    await eventually(
      () => {
        const codes = watchers.map((w) => (w.versions.length > 0 ? "served" : String(w.code)));
        const tally = Object.fromEntries(
          [...new Set(codes)].map((c) => [c, codes.filter((x) => x === c).length]),
        );
        expect(tally).toEqual({
          served: PER_CLIENT,
          [String(Code.ResourceExhausted)]: WATCHES - PER_CLIENT,
        });
      },
      { timeout: 60_000 },
    );
    expect(served()).toHaveLength(PER_CLIENT);
    expect(refused()).toHaveLength(WATCHES - PER_CLIENT);

    // What operators and projectors need still works, and the flood holds no consumer.
    expect(await consumers()).toEqual(consumersBefore);
    const durable = uniqueName("rebuild");
    await s.jsm.consumers.add(s.settings.stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
    });
    await s.jsm.consumers.delete(s.settings.stream, durable);

    // Every served watcher sees its story's next version.
    for (const story of stories) {
      await command.client.addSubtask({ storyId: story, subtaskId: "t-1", title: "new" });
    }
    await eventually(
      () => {
        for (const w of served()) expect(w.versions).toEqual([1, 2]);
      },
      { timeout: 60_000 },
    );
    console.log(`watch flood: ${shed} calls shed by the server's queue and retried`);
    abort.abort();
    await Promise.all(running);
    expect(
      watchers.filter(
        (w) =>
          w.code !== undefined && w.code !== Code.Canceled && w.code !== Code.ResourceExhausted,
      ),
    ).toEqual([]);
  }, 180_000);
});
