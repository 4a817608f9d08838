import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { ContextEventFrameSchema } from "@ctx/proto";
import { sha256 } from "../sha256.ts";

/**
 * Stored bytes made by hand (a field a newer release adds, a payload no reader can decode), hashed
 * as the writer of that content would have hashed them: readers refuse an envelope whose content
 * does not hash to its stored hash, so a fixture that means to test something else must be hashed.
 */
export function hashedAgain(bytes: Uint8Array): Uint8Array {
  const frame = fromBinary(ContextEventFrameSchema, bytes);
  frame.hash = new Uint8Array(0);
  frame.hash = sha256(frame.prevHash, toBinary(ContextEventFrameSchema, frame));
  return toBinary(ContextEventFrameSchema, frame);
}
