// Test helpers for the domain and its consumers; needs vitest.
export type {
  Decider,
  DeciderSpecGiven,
  DeciderSpecThen,
  DeciderSpecWhen,
} from "./decider-spec.ts";
export { DeciderSpec } from "./decider-spec.ts";
export { domainEvents, eventData, firstEventTime } from "./event-data.ts";
