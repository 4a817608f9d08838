import type { RecordedEvent } from "../codec.ts";

/**
 * An event with its envelope's byte fields as plain Uint8Arrays, to compare events byte for byte
 * whatever array holds them: a reader's are Buffer views of the message (a direct get), a plain
 * array (the leader's STREAM.MSG.GET), or the writer's own arrays.
 */
export function withPlainBytes<E extends Pick<RecordedEvent, "envelope">>(e: E): E {
  return {
    ...e,
    envelope: {
      ...e.envelope,
      hash: Uint8Array.from(e.envelope.hash),
      prevHash: Uint8Array.from(e.envelope.prevHash),
      commandFingerprint: Uint8Array.from(e.envelope.commandFingerprint),
    },
  };
}
