// Test support: writing events as other releases wrote them.
export type { WrittenEvent } from "./as-written.ts";
export { appendAsWritten, envelopeAsWritten } from "./as-written.ts";
export { hashedAgain } from "./hashed-again.ts";
export { withPlainBytes } from "./plain-bytes.ts";
export { testStreamSettings } from "./stream-settings.ts";
