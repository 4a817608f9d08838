import type { EventStreamSettings } from "../event-stream.ts";

/** Settings of a test's own event stream named `name` (make it unique): 4 partitions, 1 replica. */
export function testStreamSettings(name: string): EventStreamSettings {
  return {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions: 4,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
}
