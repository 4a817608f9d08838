import { create } from "@bufbuild/protobuf";
import type { Logger } from "@ctx/config";
import { type ContextState, evolve, type StoryId } from "@ctx/domain";
import {
  type EventStreamNames,
  isEventStoreUnavailableError,
  type RecordedEvent,
} from "@ctx/event-store";
import { type WatchContextResponse, WatchContextResponseSchema } from "@ctx/proto";
import type { PointInTime, TemporalReader } from "@ctx/snapshots";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { streamResponse } from "../context/context-response.ts";
import { eventClaim } from "./event-claim.ts";

/** Stored events a channel keeps, folded, for its watchers to take (the newest ones). */
export const CHANNEL_RING = 32;

/** Stored events one read asks for, by a channel or by a watcher catching up. */
export const READ_PAGE = 64;

/**
 * How long a channel keeps looking for a version a published message claimed before it gives up
 * (the publish was refused, or never stored): the stream stores a message shortly after core NATS
 * delivers it, and a replica answering a direct get may lag the leader.
 */
export const CLAIM_BACKOFF_MS = [2, 5, 10, 20, 50, 100, 200, 500, 1_000, 1_000, 1_000] as const;

/** One stored event of a story (all the parts an upcaster made of it), folded into the state. */
export interface ChannelEntry {
  readonly version: number;
  readonly sequence: number;
  /** The story right after this event. */
  readonly state: ContextState;
  /** The answer for that state, built once for every watcher that takes it. */
  answer(): WatchContextResponse;
}

/** What a channel needs from the hub that owns it. */
export interface ChannelHost {
  readonly nc: NatsConnection;
  readonly names: EventStreamNames;
  readonly reader: TemporalReader;
  readonly logger: Logger;
  /** How often a channel reads its story even without a message (see WATCH_RESYNC_MS). */
  readonly resyncMs: number;
  /** Aborted when the service stops. */
  readonly stopping: AbortSignal;
  /** The channel read new events: its head moved. */
  advanced(channel: StoryChannel): void;
  /** The channel cannot read its story (an event no reader can read): its watchers end with it. */
  failed(channel: StoryChannel, error: unknown): void;
}

/** The answer for a state that came from the event stream. */
export const watchAnswer = (state: ContextState): WatchContextResponse =>
  create(WatchContextResponseSchema, { state: streamResponse(state) });

/** A story's events grouped by stored event: an upcaster may split one into parts. */
export function byStoredEvent(events: readonly RecordedEvent[]): RecordedEvent[][] {
  const groups: RecordedEvent[][] = [];
  for (const e of events) {
    const last = groups[groups.length - 1];
    if (last !== undefined && last[0]?.sequence === e.sequence) last.push(e);
    else groups.push([e]);
  }
  return groups;
}

/**
 * The live feed of one watched story, shared by all its watchers in this process: ONE core NATS
 * subscription on the subjects the story's events are published to (`{prefix}.{story}.*`; the
 * stream stores them under a partition token, but core subscribers see the publish subject), and
 * no JetStream consumer.
 *
 * A message is only a hint that the story may have moved: the channel then reads the events after
 * its head from the store (direct gets), folds each into the state once, and keeps the newest
 * `CHANNEL_RING` of them for its watchers. Published is not stored (a refused append is published
 * too), and the stream stores a message shortly after core NATS delivers it, so the version a
 * message claims is looked for with back-off until it is read or the claim is given up. Messages
 * lost on the way (a reconnection, a subscription still propagating through a cluster) are caught
 * by a read every `resyncMs` and after every reconnection (`refresh`).
 */
export class StoryChannel {
  readonly storyId: StoryId;
  /** Resolves once the server has the subscription: a start read after it misses no message. */
  readonly ready: Promise<void>;
  readonly #host: ChannelHost;
  readonly #subscription: Subscription;
  readonly #timer: ReturnType<typeof setInterval>;
  #head: { readonly state: ContextState; readonly sequence: number } | undefined;
  readonly #ring: ChannelEntry[] = [];
  /** The highest version a message claimed, to be read. */
  #wanted = 0;
  /** A read was asked for (a message without a usable claim, a resync). */
  #kicked = false;
  #pumping = false;
  #closed = false;
  #endPause: (() => void) | undefined;

  constructor(host: ChannelHost, storyId: StoryId) {
    this.#host = host;
    this.storyId = storyId;
    this.#subscription = host.nc.subscribe(`${host.names.subjectPrefix}.${storyId}.*`, {
      callback: (error, msg) => {
        if (error === null) this.#hint(msg.data, msg.subject);
      },
    });
    this.ready = host.nc.flush();
    this.#timer = setInterval(() => this.refresh(), host.resyncMs);
    this.#timer.unref();
  }

  /** The version of the newest event the channel has read; 0 before its first watcher started. */
  get version(): number {
    return this.#head?.state.version ?? 0;
  }

  /** The first version the ring holds (the version after the head when it holds none). */
  get ringStart(): number {
    return this.#ring[0]?.version ?? this.version + 1;
  }

  /** The entry right after `version`, when the ring holds it. */
  entryAfter(version: number): ChannelEntry | undefined {
    const first = this.#ring[0];
    if (first === undefined) return undefined;
    return this.#ring[version + 1 - first.version];
  }

  /**
   * A watcher started from `point`: the first one gives the channel its head; a later one that
   * started further on says the channel has more to read.
   */
  seed(point: PointInTime): void {
    if (this.#head === undefined) {
      this.#head = { state: point.state, sequence: point.sequence };
    } else if (point.state.version > this.#head.state.version) {
      this.#wanted = Math.max(this.#wanted, point.state.version);
    }
    void this.#pump();
  }

  /** Reads the story for anything new, whether or not a message said so. */
  refresh(): void {
    this.#kicked = true;
    this.#endPause?.();
    void this.#pump();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#subscription.unsubscribe();
    this.#endPause?.();
    this.#ring.length = 0;
  }

  #hint(data: Uint8Array, subject: string): void {
    if (this.#closed) return;
    const claim = eventClaim(data, subject);
    if (claim === undefined || claim.storyId !== this.storyId) {
      // Not an envelope of this story: nothing to wait for, but worth one look.
      this.refresh();
      return;
    }
    // A version the channel has: a refused append (another one won) or a re-sent duplicate.
    if (claim.version <= this.version) return;
    this.#wanted = Math.max(this.#wanted, claim.version);
    this.#endPause?.();
    void this.#pump();
  }

  /** Reads until the head reaches what was claimed; one pump at a time, whatever the messages. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    let attempt = 0;
    try {
      while (
        !this.#closed &&
        this.#head !== undefined &&
        (this.#kicked || this.#head.state.version < this.#wanted)
      ) {
        this.#kicked = false;
        let found = 0;
        try {
          found = await this.#readNew();
        } catch (e) {
          if (this.#closed || this.#host.stopping.aborted) return;
          if (!isEventStoreUnavailableError(e)) {
            this.#host.failed(this, e);
            return;
          }
          this.#host.logger.warn(
            { err: e, storyId: this.storyId },
            "watch: reading the story failed; retrying",
          );
        }
        if (found > 0) {
          attempt = 0;
          continue;
        }
        if (this.#kicked || this.version >= this.#wanted) continue;
        const delay = CLAIM_BACKOFF_MS[attempt++];
        if (delay === undefined) {
          // The claimed version never appeared: a refused publish. The next resync looks again.
          this.#wanted = this.version;
          break;
        }
        await this.#pause(delay);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Reads the events after the head, a page at a time; returns how many stored events it read. */
  async #readNew(): Promise<number> {
    let found = 0;
    for (;;) {
      const head = this.#head;
      if (head === undefined || this.#closed) return found;
      const from = head.state.version + 1;
      const events = await this.#host.reader.events(
        this.storyId,
        {
          fromVersion: from,
          toVersion: from + READ_PAGE - 1,
          after: { sequence: head.sequence, version: head.state.version },
        },
        { signal: this.#host.stopping },
      );
      if (this.#closed || this.#head !== head) return found;
      let state = head.state;
      let sequence = head.sequence;
      let read = 0;
      for (const parts of byStoredEvent(events)) {
        const first = parts[0];
        // The store returns a story's events gapless from the version asked for.
        if (first === undefined || first.version !== state.version + 1) break;
        for (const e of parts) state = evolve(state, e);
        sequence = first.sequence;
        const entryState = state;
        let answer: WatchContextResponse | undefined;
        this.#ring.push({
          version: first.version,
          sequence,
          state: entryState,
          answer: () => {
            answer ??= watchAnswer(entryState);
            return answer;
          },
        });
        if (this.#ring.length > CHANNEL_RING) this.#ring.shift();
        read++;
      }
      if (read === 0) return found;
      this.#head = { state, sequence };
      found += read;
      this.#host.advanced(this);
      if (state.version < from + READ_PAGE - 1) return found;
    }
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#endPause = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#endPause = done;
    });
  }
}
