import { connectTestNats, uniqueName } from "@ctx/test-support";
import { headers, type NatsConnection, errors as natsErrors } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAckPublisher } from "./ack-publisher.ts";

let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectTestNats();
});

afterAll(async () => {
  await nc.close();
});

const message = (subject: string, text: string) => ({
  subject,
  data: new TextEncoder().encode(text),
  headers: headers(),
});

describe("the ack publisher", () => {
  it("answers each of many requests made in one event-loop turn with its own reply", async () => {
    const subject = uniqueName("echo");
    const sub = nc.subscribe(subject, {
      callback: (_, msg) => {
        msg.respond(new TextEncoder().encode(`re: ${msg.string()}`));
      },
    });
    await nc.flush();
    const publisher = createAckPublisher(nc, 5_000);
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) => publisher.request([message(subject, `m${i}`)])),
    );
    expect(replies.map((r) => r.string())).toEqual(
      Array.from({ length: 100 }, (_, i) => `re: m${i}`),
    );
    sub.unsubscribe();
  });

  it("publishes a request's messages in order, the reply subject on the last", async () => {
    const subject = uniqueName("batch");
    const seen: string[] = [];
    const sub = nc.subscribe(subject, {
      callback: (_, msg) => {
        seen.push(`${msg.string()}${msg.reply ? " (reply)" : ""}`);
        if (msg.reply) msg.respond(new TextEncoder().encode("ok"));
      },
    });
    await nc.flush();
    const publisher = createAckPublisher(nc, 5_000);
    const reply = await publisher.request(["a", "b", "c"].map((t) => message(subject, t)));
    expect(reply.string()).toBe("ok");
    expect(seen).toEqual(["a", "b", "c (reply)"]);
    sub.unsubscribe();
  });

  it("fails with NoRespondersError when nothing listens, and TimeoutError when nothing answers", async () => {
    const publisher = createAckPublisher(nc, 300);
    await expect(publisher.request([message(uniqueName("nobody"), "x")])).rejects.toBeInstanceOf(
      natsErrors.NoRespondersError,
    );
    const silent = uniqueName("silent");
    const sub = nc.subscribe(silent, { callback: () => undefined });
    await nc.flush();
    const started = Date.now();
    await expect(publisher.request([message(silent, "x")])).rejects.toBeInstanceOf(
      natsErrors.TimeoutError,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    sub.unsubscribe();
  });

  it("fails what is pending when the connection closes", async () => {
    const own = await connectTestNats();
    const silent = uniqueName("silent");
    const sub = own.subscribe(silent, { callback: () => undefined });
    await own.flush();
    const publisher = createAckPublisher(own, 5_000);
    const pending = publisher.request([message(silent, "x")]);
    await new Promise((r) => setTimeout(r, 50));
    sub.unsubscribe();
    await own.close();
    await expect(pending).rejects.toBeInstanceOf(natsErrors.ClosedConnectionError);
  });
});
