// The floor of the write path: a gRPC server on node:http2 that does, per unary call, the least a
// service appending one event per call can do, and nothing else (no Connect, no interceptors, no
// validation, no handler). The write bench drives it with the same Go load generator and in-flight
// levels as the command service, so that the service's rate can be read against what any Node
// process serving gRPC and appending to JetStream reaches on the same machine in the same run.
//
// FLOOR_MODE:
// - `publish`: one pre-encoded envelope per call through the event store's ack publisher (one
//   socket write per event-loop turn, one reply subscription) with the story-wide expectation
//   headers the store sends, then the reply parsed: the NATS work of an append, no more.
// - `store`: EventStore.append of one event (envelope built and hashed, expectation, head cache):
//   the event store's whole append, without the command service around it.
//
// Each call appends to the next of FLOOR_STORIES stories (round robin, so two calls in flight never
// share a story), stories of their own (`floor-<pid>-<n>`, each given its first event before the
// server listens), and answers with its own request message.
//
// Run as a child process with the NATS variables of a user that may write the stream (NATS_URL and
// its login, as the services take them): `node bench/support/append-floor-server.ts`; prints
// `{"port":N}` on stdout once it listens on 127.0.0.1; stops on SIGTERM or when its stdin ends.
import * as http2 from "node:http2";
import { setFlagsFromString } from "node:v8";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { storyId as toStoryId } from "@ctx/domain";
import {
  createEventStore,
  defaultEventStreamNames,
  type EventStreamNames,
  eventSubject,
} from "@ctx/event-store";
import { createAckPublisher } from "@ctx/event-store/ack-publisher";
import { ContextEventSchema, SubtaskAddedSchema } from "@ctx/proto";
import { connectNats, natsConnectionOf } from "@ctx/service";
import { MsgHdrsImpl } from "@nats-io/transport-node";
import { expectedSubjects } from "./expectation.ts";

// The services run with this flag (libs/config runService); the floor should not differ in it.
setFlagsFromString("--no-allocation-site-pretenuring");

const mode = process.env.FLOOR_MODE ?? "publish";
if (mode !== "publish" && mode !== "store") throw new Error("FLOOR_MODE must be publish or store");
const stories = Number(process.env.FLOOR_STORIES ?? 10_000);
const names: EventStreamNames = {
  stream: process.env.FLOOR_STREAM ?? defaultEventStreamNames.stream,
  subjectPrefix: process.env.FLOOR_SUBJECT_PREFIX ?? defaultEventStreamNames.subjectPrefix,
};
const timeoutMs = 10_000;

const nc = await connectNats(natsConnectionOf(process.env), { name: `bench-floor-${mode}` });
const ids = Array.from({ length: stories }, (_, i) => toStoryId(`floor-${process.pid}-${i}`));
let next = 0;

/** Appends one event to the story `index`; rejects on anything but a stored event. */
const append: (index: number) => Promise<void> = mode === "publish" ? publisher() : storeAppender();

function publisher(): (index: number) => Promise<void> {
  const acks = createAckPublisher(nc, timeoutMs);
  const sequences = new Array<number>(stories).fill(0);
  // One envelope of the bench's typical size, encoded once (the floor builds nothing per call).
  const bytes = toBinary(
    ContextEventSchema,
    create(ContextEventSchema, {
      storyId: ids[0] as string,
      version: 2,
      occurredAt: timestampFromDate(new Date()),
      schemaVersion: 1,
      commandId: "0190c2a4-7d3e-7000-8000-000000000000",
      prevHash: new Uint8Array(16),
      hash: new Uint8Array(16),
      envelopeVersion: 2,
      payload: {
        case: "subtaskAdded",
        value: create(SubtaskAddedSchema, {
          subtaskId: "t100000",
          title: "Benchmark subtask 100000",
        }),
      },
    }),
  );
  return async (index) => {
    const id = ids[index] as string;
    const last = sequences[index] as number;
    const headers = MsgHdrsImpl.fromRecord({
      "Nats-Expected-Last-Subject-Sequence": [String(last)],
      "Nats-Expected-Last-Subject-Sequence-Subject": [expectedSubjects(names, id, last)],
    });
    const reply = await acks.request([
      { subject: eventSubject(names, id, "SubtaskAdded"), data: bytes, headers },
    ]);
    const ack = reply.json<{ seq?: number; error?: { description: string } }>();
    if (ack.error !== undefined || ack.seq === undefined) {
      throw new Error(`append refused: ${ack.error?.description ?? "no sequence"}`);
    }
    sequences[index] = ack.seq;
  };
}

function storeAppender(): (index: number) => Promise<void> {
  const store = createEventStore(nc, { names, timeoutMs });
  let subtask = 0;
  return async (index) => {
    const n = subtask++;
    await store.append(
      ids[index] as (typeof ids)[0],
      [
        {
          data: {
            case: "subtaskAdded",
            value: create(SubtaskAddedSchema, {
              subtaskId: `t${n}`,
              title: `Benchmark subtask ${n}`,
            }),
          },
        },
      ],
      "any",
    );
  };
}

// Every story gets its first event before the server listens, as the command service's stories
// exist before the bench measures it: a first append costs more (the store reads the story's head;
// the expectation covers every partition), and it is not what the floor is for.
let warmed = 0;
await Promise.all(
  Array.from({ length: 64 }, async () => {
    while (warmed < stories) await append(warmed++);
  }),
);

const server = http2.createServer();
server.on("stream", (stream) => {
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  stream.on("end", () => {
    const index = next;
    next = (next + 1) % stories;
    append(index).then(
      () => {
        if (stream.destroyed) return;
        stream.respond(
          { ":status": 200, "content-type": "application/grpc+proto" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(Buffer.concat(chunks));
      },
      (e: unknown) => {
        if (stream.destroyed) return;
        const message = encodeURIComponent(e instanceof Error ? e.message : String(e));
        stream.respond(
          { ":status": 200, "content-type": "application/grpc+proto" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () =>
          stream.sendTrailers({ "grpc-status": "13", "grpc-message": message }),
        );
        stream.end();
      },
    );
  });
  stream.on("error", () => undefined);
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
});
const stop = () => {
  server.close(() => void nc.close().finally(() => process.exit(0)));
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.once("SIGTERM", stop);
// The bench holds stdin open; if it dies, stdin ends and the server goes too.
process.stdin.on("end", stop).resume();
