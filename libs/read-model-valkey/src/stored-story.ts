import { fromBinary } from "@bufbuild/protobuf";
import {
  initialState,
  type StoryId,
  type StreamVersion,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import { type Context, ContextSchema } from "@ctx/proto";

/** A story as the read model holds it. */
export interface StoredStory {
  readonly context: Context;
  readonly version: StreamVersion;
  /** `occurredAt` of the last event applied; undefined when the model has none. */
  readonly updatedAt: Date | undefined;
  /** A parked event was skipped: serve the event stream instead until the story is rebuilt. */
  readonly stale: boolean;
}

/** The hash fields a story is read from, in this order. */
export const storyFields = ["version", "context", "updated_at", "stale"] as const;

/**
 * Decodes a story hash's fields (in `storyFields` order); undefined when the hash does not exist.
 * A hash with only a stale flag (the story's first event was parked) is the empty story at
 * version 0, stale.
 *
 * @throws Error when the hash holds a version but no decodable context.
 */
export function decodeStoredStory(
  storyId: StoryId,
  fields: readonly (Buffer | null | undefined)[],
): StoredStory | undefined {
  const [version, context, updatedAt, stale] = fields;
  if (!version && !context && !stale) return undefined;
  const stored = {
    version: streamVersion(version ? Number(version.toString()) : 0),
    updatedAt: updatedAt ? new Date(Number(updatedAt.toString())) : undefined,
    stale: stale?.toString() === "1",
  };
  if (!context) {
    if (stored.version > 0)
      throw new Error(`story ${storyId} has version ${version} but no context`);
    return { ...stored, context: toContextMessage(initialState(storyId)) };
  }
  try {
    return { ...stored, context: fromBinary(ContextSchema, context) };
  } catch (e) {
    throw new Error(`story ${storyId} holds an undecodable context`, { cause: e });
  }
}

/** Encoded bytes as a Buffer (what iovalkey sends as is), without copying them. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
