import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ContextEventData, currentSchemaVersion, eventTypeOf } from "@ctx/domain";
import { type EventStreamNames, eventHash, eventSubject } from "@ctx/event-store";
import { type ContextEvent, ContextEventSchema } from "@ctx/proto";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { v7 as uuidv7 } from "uuid";

export interface InterleavedFill {
  readonly events: number;
  readonly stories: number;
  /** Publishes awaiting their acknowledgement at most. */
  readonly publishWindow: number;
  /**
   * The stored envelope of version `version` of story `story-{story}`, chained to `prevHash` (empty
   * for version 1); `written` events came before it.
   */
  envelope(story: number, version: number, prevHash: Uint8Array, written: number): ContextEvent;
  onProgress?(written: number): void;
}

/**
 * Fills a stream version by version across the stories (story 0 v1, story 1 v1, …, story 0 v2, …),
 * so stories interleave in the stream as they do live, with up to `publishWindow` publishes in flight.
 */
export async function fillInterleaved(
  nc: NatsConnection,
  names: EventStreamNames,
  fill: InterleavedFill,
): Promise<{ events: number; seconds: number }> {
  const js = jetstream(nc);
  const perStory = Math.ceil(fill.events / fill.stories);
  const prev = new Map<number, Uint8Array>();
  const inFlight = new Set<Promise<unknown>>();
  const started = performance.now();
  let written = 0;
  for (let version = 1; version <= perStory && written < fill.events; version++) {
    for (let s = 0; s < fill.stories && written < fill.events; s++) {
      const envelope = fill.envelope(s, version, prev.get(s) ?? new Uint8Array(0), written);
      prev.set(s, envelope.hash);
      const p = js.publish(
        eventSubject(names, envelope.storyId, envelope.eventType),
        toBinary(ContextEventSchema, envelope),
        { msgID: envelope.eventId },
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= fill.publishWindow) await Promise.race(inFlight);
      written += 1;
      fill.onProgress?.(written);
    }
  }
  await Promise.all(inFlight);
  return { events: written, seconds: (performance.now() - started) / 1000 };
}

/**
 * An `envelope` for fillInterleaved: version `version` of story `story-{s}` carries
 * `eventOf(version)` in its current schema, hash-chained, written 1 ms after the event before it
 * (the first at `t0`).
 */
export function currentEnvelopes(
  eventOf: (version: number) => ContextEventData,
  t0: number,
): InterleavedFill["envelope"] {
  return (s, version, prevHash, written) => {
    const data = eventOf(version);
    const eventType = eventTypeOf(data);
    const envelope = create(ContextEventSchema, {
      eventId: uuidv7(),
      storyId: `story-${s}`,
      version,
      occurredAt: timestampFromDate(new Date(t0 + written)),
      eventType,
      schemaVersion: currentSchemaVersion[eventType],
      prevHash,
      payload: data,
    });
    envelope.hash = eventHash(envelope);
    return envelope;
  };
}
