import { create, type DescMessage, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { payloadCaseOf } from "@ctx/domain";
import { uuidv7 } from "@ctx/ids";
import { type ContextEvent, ContextEventSchema } from "@ctx/proto";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { EventStore } from "../event-store.ts";
import { eventSubject } from "../event-stream.ts";
import { eventHash } from "../hash-chain.ts";

/** An event as some release wrote it: its type, the schema version it stamped, its payload. */
export interface WrittenEvent {
  readonly eventType: string;
  readonly schemaVersion: number;
  /** The payload message of that schema version (e.g. a context.legacy.v1 message). */
  readonly payload: Message;
  /** The message `payload` is (needed to encode it). */
  readonly payloadSchema: DescMessage;
  readonly occurredAt: Date;
}

/** The envelope an older release wrote for one event, chained onto `prevHash`. */
export function envelopeAsWritten(
  storyId: string,
  version: number,
  prevHash: Uint8Array,
  event: WrittenEvent,
): ContextEvent {
  const c = payloadCaseOf(event.eventType);
  if (c === undefined) throw new TypeError(`no payload field for ${event.eventType}`);
  const field = ContextEventSchema.field[c];
  if (field.message === undefined) throw new TypeError(`${c} is not a message field`);
  // The written bytes, carried by today's message of the field (as unknown fields where they differ).
  const carrier = fromBinary(field.message, toBinary(event.payloadSchema, event.payload));
  const envelope = create(ContextEventSchema, {
    eventId: uuidv7(),
    storyId,
    version,
    occurredAt: timestampFromDate(event.occurredAt),
    eventType: event.eventType,
    schemaVersion: event.schemaVersion,
    prevHash,
    payload: { case: c, value: carrier } as ContextEvent["payload"],
  });
  envelope.hash = eventHash(envelope);
  return envelope;
}

/**
 * Appends events to a story exactly as an older (or other) release wrote them: each payload's own
 * bytes in its type's field of the envelope, the schema version it stamped, chained onto the
 * story's head, published straight to the stream. For tests of reading old events; the product
 * itself only ever writes current versions.
 */
export async function appendAsWritten(
  nc: NatsConnection,
  store: EventStore,
  storyId: string,
  events: readonly WrittenEvent[],
): Promise<void> {
  const js = jetstream(nc);
  const head = await store.head(storyId as never);
  let version: number = head?.version ?? 0;
  let prevHash = head?.hash ?? new Uint8Array(0);
  for (const event of events) {
    version += 1;
    const envelope = envelopeAsWritten(storyId, version, prevHash, event);
    prevHash = envelope.hash;
    await js.publish(
      eventSubject(store.names, storyId, event.eventType),
      toBinary(ContextEventSchema, envelope),
      { msgID: envelope.eventId },
    );
  }
}
