import type { EventStreamNames } from "@ctx/event-store";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

/**
 * The raw read of an event stream: every message consumed in order, nothing decoded. The
 * denominator of the benches that read a whole stream (upcasting, audit).
 */
export async function rawOrderedRead(
  nc: NatsConnection,
  names: EventStreamNames,
): Promise<{ readonly events: number; readonly seconds: number }> {
  const consumer = await jetstream(nc).consumers.get(names.stream, {
    filter_subjects: [`${names.subjectPrefix}.>`],
  });
  const started = performance.now();
  let events = 0;
  const messages = await consumer.consume({ max_messages: 1024 });
  for await (const msg of messages) {
    events += msg.data.length > 0 ? 1 : 0;
    if (msg.info.pending === 0) break;
  }
  await messages.close();
  return { events, seconds: (performance.now() - started) / 1000 };
}
