import { create } from "@bufbuild/protobuf";
import { type ContextState, evolve, type StoryId } from "@ctx/domain";
import { type EventStore, type RecordedEvent, storySubjects } from "@ctx/event-store";
import { type WatchContextResponse, WatchContextResponseSchema } from "@ctx/proto";
import type { TemporalReader } from "@ctx/snapshots";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { streamResponse } from "../context/context-response.ts";
import { ShuttingDownError, UnknownStoryError } from "../query-errors.ts";

export interface WatchOptions {
  readonly nc: NatsConnection;
  readonly store: EventStore;
  readonly reader: TemporalReader;
  /** Aborted when the service stops: every watch then ends with UNAVAILABLE. */
  readonly stopping: AbortSignal;
}

/**
 * The story's current state, then its state after every new event, in version order, until the
 * call is cancelled, its deadline passes or the service stops. New events come from an ordered
 * consumer on the story's subjects starting right after the last event of the first answer, so no
 * version is skipped, repeated or reordered; the server keeps no state for it once it ends.
 */
export async function* watchContext(
  o: WatchOptions,
  storyId: StoryId,
  callSignal: AbortSignal,
): AsyncGenerator<WatchContextResponse> {
  const signal = AbortSignal.any([callSignal, o.stopping]);
  const start = await o.reader.current(storyId, { signal });
  if (start.state.version === 0) throw new UnknownStoryError(storyId);
  let state: ContextState = start.state;
  let sequence = start.sequence;
  const answer = () => create(WatchContextResponseSchema, { state: streamResponse(state) });
  // One stored event (all the parts an upcaster split it into), already upcast by the store.
  const apply = (parts: readonly RecordedEvent[]) => {
    for (const e of parts) {
      state = evolve(state, e);
      sequence = e.sequence;
    }
  };
  yield answer();

  const consumer = await jetstream(o.nc).consumers.get(o.store.names.stream, {
    filter_subjects: [storySubjects(o.store.names, storyId)],
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: sequence + 1,
  });
  const messages = await consumer.consume({ max_messages: 256 });
  const close = () => {
    messages.close().catch(() => undefined);
  };
  signal.addEventListener("abort", close, { once: true });
  try {
    if (signal.aborted) close();
    for await (const msg of messages) {
      const parts = o.store.upcaster.decode(msg.data, msg.seq, msg.subject);
      const event = parts[0];
      if (event === undefined || event.version <= state.version) continue;
      if (event.version > state.version + 1) {
        // Never expected from an ordered consumer; if it happens, read what is missing.
        const missing = await o.reader.events(storyId, {
          fromVersion: state.version + 1,
          toVersion: event.version - 1,
          after: { sequence, version: state.version },
        });
        for (const e of missing) {
          state = evolve(state, e); // already upcast by the reader
          sequence = e.sequence;
          yield answer();
        }
      }
      apply(parts);
      yield answer();
    }
  } finally {
    signal.removeEventListener("abort", close);
    close();
    // An ordered consumer outlives its reader on the server (for minutes): remove it now.
    await consumer.delete().catch(() => undefined);
  }
  if (o.stopping.aborted) throw new ShuttingDownError();
  callSignal.throwIfAborted();
}
