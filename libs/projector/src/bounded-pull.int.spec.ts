import { connectTestNats, eventually, uniqueName } from "@ctx/test-support";
import {
  AckPolicy,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BoundedPull,
  type BoundedPullOptions,
  createBoundedPull,
  type Delivery,
  isPullEndedError,
} from "./index.ts";

let nc: NatsConnection;
let jsm: JetStreamManager;
let js: JetStreamClient;
const streams: string[] = [];

beforeAll(async () => {
  nc = await connectTestNats();
  jsm = await jetstreamManager(nc);
  js = jetstream(nc);
});

afterAll(async () => {
  for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
  await nc.close();
});

/** A stream with `count` messages of `size` bytes, and a durable pull consumer of it. */
async function streamWith(
  count: number,
  size: number,
): Promise<{ stream: string; subject: string; consumer: string }> {
  const stream = uniqueName("PULL");
  const subject = stream.toLowerCase();
  streams.push(stream);
  await jsm.streams.add({ name: stream, subjects: [`${subject}.>`] });
  for (let i = 0; i < count; i++)
    await js.publish(`${subject}.m`, new Uint8Array(size).fill(i % 251));
  const consumer = uniqueName("c");
  await jsm.consumers.add(stream, {
    durable_name: consumer,
    ack_policy: AckPolicy.All,
    deliver_policy: DeliverPolicy.All,
  });
  return { stream, subject, consumer };
}

/** Every pull request sent for a stream, as the server receives it. */
async function wire(stream: string) {
  const seen: { batch: number; max_bytes: number }[] = [];
  const sub = nc.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${stream}.>`, {
    callback: (_, msg) => {
      seen.push(msg.json());
    },
  });
  await nc.flush();
  return { seen, stop: () => sub.unsubscribe() };
}

/** A pull of at most 10 messages (and 100 kB) at a time. */
function smallPull(
  stream: string,
  consumer: string,
  options: Partial<BoundedPullOptions> = {},
): BoundedPull {
  return createBoundedPull({
    nc,
    stream,
    consumer,
    maxMessages: 10,
    maxBytes: 100_000,
    pullMessages: 10,
    minPullBytes: 10_000,
    ...options,
  });
}

describe("bounded pull", () => {
  it("keeps what is requested and queued within its messages and bytes, and loses nothing", async () => {
    const size = 5_000;
    const { stream, consumer } = await streamWith(200, size);
    const requests = await wire(stream);
    const limits = { maxMessages: 40, maxBytes: 60_000, pullMessages: 20, minPullBytes: 10_000 };
    const pull: BoundedPull = createBoundedPull({ nc, stream, consumer, ...limits });
    const taken: Delivery[] = [];
    try {
      while (taken.length < 200) {
        // Wait until nothing more comes (the window is full, or the stream is drained).
        let last = -1;
        await eventually(
          () => {
            const now = pull.queuedMessages;
            const settled = now === last;
            last = now;
            expect(settled && now > 0).toBe(true);
          },
          { interval: 20 },
        );
        expect(pull.queuedMessages).toBeLessThanOrEqual(limits.maxMessages);
        expect(pull.queuedBytes).toBeLessThanOrEqual(limits.maxBytes);
        const batch = pull.take(7, 3 * size + 100);
        expect(batch.length).toBeGreaterThan(0);
        expect(batch.length).toBeLessThanOrEqual(3);
        taken.push(...batch);
        batch[batch.length - 1]?.ack();
      }
      expect(taken.map((d) => d.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      expect(taken.every((d) => d.data.length === size && d.size > size)).toBe(true);
      for (const r of requests.seen) {
        expect(r.batch).toBeLessThanOrEqual(limits.pullMessages);
        expect(r.max_bytes).toBeGreaterThanOrEqual(limits.minPullBytes);
        expect(r.max_bytes).toBeLessThanOrEqual(limits.maxBytes);
      }
      await eventually(async () =>
        expect((await jsm.consumers.info(stream, consumer)).ack_floor.stream_seq).toBe(200),
      );
    } finally {
      requests.stop();
      pull.close();
    }
  });

  it("asks again when a request expires, and delivers what comes later", async () => {
    const { stream, subject, consumer } = await streamWith(0, 0);
    const requests = await wire(stream);
    const pull = smallPull(stream, consumer, {
      expiresMs: 1_000,
      heartbeatMs: 500,
    });
    try {
      await eventually(() => expect(requests.seen.length).toBeGreaterThanOrEqual(3));
      await js.publish(`${subject}.late`, new Uint8Array([1, 2, 3]));
      await eventually(() => expect(pull.queuedMessages).toBe(1));
      expect(pull.take(10, 100_000).map((d) => [...d.data])).toEqual([[1, 2, 3]]);
    } finally {
      requests.stop();
      pull.close();
    }
  });

  it("numbers its deliveries as the consumer does", async () => {
    const { stream, consumer } = await streamWith(5, 10);
    const pull = smallPull(stream, consumer);
    try {
      await eventually(() => expect(pull.queuedMessages).toBe(5));
      const taken = pull.take(10, 100_000);
      expect(taken.map((d) => [d.seq, d.deliverySeq])).toEqual([
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
        [5, 5],
      ]);
      expect(pull.ended).toBeUndefined();
    } finally {
      pull.close();
    }
  });

  // What a connection cut does to deliveries on their way: the consumer made them, they never
  // came. Another client pulling from the same consumer makes the same gap, deterministically.
  it("ends, queueing nothing after the gap, when deliveries it never saw were made", async () => {
    const { stream, consumer } = await streamWith(30, 10);
    const pull = smallPull(stream, consumer);
    try {
      // The window is full: no request of the pull is in flight.
      await eventually(async () => {
        expect(pull.queuedMessages).toBe(10);
        expect((await jsm.consumers.info(stream, consumer)).num_waiting).toBe(0);
      });
      const thief = await (await js.consumers.get(stream, consumer)).fetch({
        max_messages: 3,
        expires: 2_000,
      });
      const stolen: number[] = [];
      for await (const m of thief) stolen.push(m.seq);
      expect(stolen).toEqual([11, 12, 13]);

      expect(pull.take(10, 100_000).map((d) => d.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      await eventually(() => expect(pull.ended).toBeDefined());
      expect(pull.ended?.message).toMatch(/deliveries 11 to 13 .* never arrived/);
      // Message 14 came after the gap: acknowledging it would acknowledge 11 to 13 unseen.
      expect(pull.queuedMessages).toBe(0);
      expect((await jsm.consumers.info(stream, consumer)).ack_floor.stream_seq).toBe(0);
    } finally {
      pull.close();
    }
  });

  it("ends, saying why, when its consumer is deleted", async () => {
    const { stream, consumer } = await streamWith(0, 0);
    let ended: unknown;
    const pull = smallPull(stream, consumer, {
      onEnd: (e) => {
        ended = e;
      },
    });
    try {
      // Once its request waits at the server (deleted before, the request would go unanswered
      // until the watchdog gives it up and the next finds no consumer: a 503).
      await eventually(async () =>
        expect((await jsm.consumers.info(stream, consumer)).num_waiting).toBe(1),
      );
      await jsm.consumers.delete(stream, consumer);
      await eventually(() => expect(pull.ended).toBeDefined());
      expect(isPullEndedError(ended)).toBe(true);
      expect(pull.ended?.code).toBe(409);
      expect(pull.ended?.message).toMatch(/consumer deleted/i);
    } finally {
      pull.close();
    }
  });
});
