import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  type ContextEventData,
  type StoryId,
  type StreamVersion,
  storyId,
  streamVersion,
} from "@ctx/domain";
import { type ContextEvent, ContextEventSchema } from "@ctx/proto";
import { CorruptEventError } from "./errors.ts";

/** Position of a message in the JetStream stream (not a story version). */
export type StreamSequence = number & { readonly __brand: "StreamSequence" };
export const streamSequence = (n: number) => n as StreamSequence;

/** An event as stored: its envelope, decoded, and where it sits in the stream. */
export interface RecordedEvent {
  readonly sequence: StreamSequence;
  readonly storyId: StoryId;
  readonly version: StreamVersion;
  readonly eventId: string;
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly occurredAt: Date;
  readonly data: ContextEventData;
  /** The envelope exactly as stored (hash chain, correlation and command ids). */
  readonly envelope: ContextEvent;
}

/** Decodes one stored message; a message that is not a complete envelope is a CorruptEventError. */
export function decodeEvent(bytes: Uint8Array, sequence: number): RecordedEvent {
  let envelope: ContextEvent;
  try {
    envelope = fromBinary(ContextEventSchema, bytes);
  } catch (e) {
    throw new CorruptEventError(sequence, "undecodable protobuf", { cause: e });
  }
  const data = envelope.payload;
  if (data.case === undefined) throw new CorruptEventError(sequence, "no payload");
  if (!envelope.occurredAt) throw new CorruptEventError(sequence, "no occurred_at");
  if (envelope.storyId === "" || envelope.version < 1) {
    throw new CorruptEventError(sequence, "no story id or version");
  }
  return {
    sequence: streamSequence(sequence),
    storyId: storyId(envelope.storyId),
    version: streamVersion(envelope.version),
    eventId: envelope.eventId,
    eventType: envelope.eventType,
    schemaVersion: envelope.schemaVersion,
    occurredAt: timestampDate(envelope.occurredAt),
    data,
    envelope,
  };
}
