import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { isEnvelopeV2, originStory } from "@ctx/event-store";

/** What a published event says about itself: its story and version. */
export interface EventClaim {
  readonly storyId: string;
  readonly version: number;
}

// Field numbers of context.v1.ContextEvent (proto/context/v1/events.proto): envelope version 1.
const STORY_ID = 2;
const VERSION = 3;
// context.v1.StoredContextEvent (envelope version 2, first byte 0x08): no story id, its subject's.
const V2_VERSION = 2;

/**
 * The story and version an event message published on a story's subject claims, read from the
 * envelope's first fields without decoding the payload; undefined for bytes that are no envelope.
 * A version 2 envelope names no story: it claims the story of its subject (`{prefix}.{story}.{type}`
 * as published, `{prefix}.{partition}.{story}.{type}` as stored).
 *
 * A claim is only a hint: the message was published, not necessarily stored (a version conflict
 * or a failed batch is published too, and anyone allowed to publish there can publish anything).
 * A watch reads the store to learn what was stored; the claim says how far to look and for how
 * long a version may still be on its way into the stream.
 */
export function eventClaim(data: Uint8Array, subject = ""): EventClaim | undefined {
  try {
    const reader = new BinaryReader(data);
    const v2 = isEnvelopeV2(data);
    let storyId = v2 && subject.includes(".") ? originStory(subject) || undefined : undefined;
    let version: number | undefined;
    while (reader.pos < reader.len && (storyId === undefined || version === undefined)) {
      const [field, wireType] = reader.tag();
      if (!v2 && field === STORY_ID && wireType === WireType.LengthDelimited) {
        storyId = reader.string();
      } else if (field === (v2 ? V2_VERSION : VERSION) && wireType === WireType.Varint) {
        version = reader.uint32();
      } else reader.skip(wireType, field);
    }
    if (storyId === undefined || version === undefined || version < 1) return undefined;
    return { storyId, version };
  } catch {
    return undefined;
  }
}
