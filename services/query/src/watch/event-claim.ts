import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

/** What a published event says about itself: its story and version. */
export interface EventClaim {
  readonly storyId: string;
  readonly version: number;
}

// Field numbers of context.v1.ContextEvent (proto/context/v1/events.proto).
const STORY_ID = 2;
const VERSION = 3;

/**
 * The story and version an event message published on a story's subject claims, read from the
 * envelope's first fields without decoding the payload; undefined for bytes that are no envelope.
 *
 * A claim is only a hint: the message was published, not necessarily stored (a version conflict
 * or a failed batch is published too, and anyone allowed to publish there can publish anything).
 * A watch reads the store to learn what was stored; the claim says how far to look and for how
 * long a version may still be on its way into the stream.
 */
export function eventClaim(data: Uint8Array): EventClaim | undefined {
  try {
    const reader = new BinaryReader(data);
    let storyId: string | undefined;
    let version: number | undefined;
    while (reader.pos < reader.len && (storyId === undefined || version === undefined)) {
      const [field, wireType] = reader.tag();
      if (field === STORY_ID && wireType === WireType.LengthDelimited) storyId = reader.string();
      else if (field === VERSION && wireType === WireType.Varint) version = reader.uint32();
      else reader.skip(wireType, field);
    }
    if (storyId === undefined || version === undefined || version < 1) return undefined;
    return { storyId, version };
  } catch {
    return undefined;
  }
}
