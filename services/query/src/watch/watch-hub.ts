import type { Logger } from "@ctx/config";
import { type ContextState, evolve, type StoryId } from "@ctx/domain";
import type { EventStreamNames, RecordedEvent } from "@ctx/event-store";
import type { WatchContextResponse } from "@ctx/proto";
import type { TemporalReader } from "@ctx/snapshots";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  ShuttingDownError,
  UnknownStoryError,
  WatchLaggingError,
  WatchLimit,
  WatchLimitError,
} from "../errors.ts";
import type { WatchEnd, WatchMetrics } from "../query-metrics.ts";
import {
  byStoredEvent,
  type ChannelEntry,
  type ChannelHost,
  READ_PAGE,
  StoryChannel,
  watchAnswer,
} from "./story-channel.ts";

/** The bounds of the watches of one process (see docs/OPERATIONS.md, Limits: Watches). */
export interface WatchLimits {
  /** Watches open in the process at once (WATCH_MAX). */
  readonly maxWatches: number;
  /** Watches open at once by one client (WATCH_MAX_PER_CLIENT). */
  readonly maxPerClient: number;
  /** Versions a watch may fall behind its story before it is ended (WATCH_MAX_LAG). */
  readonly maxLag: number;
  /** How often a watched story is read even without a message (WATCH_RESYNC_MS). */
  readonly resyncMs: number;
}

export interface WatchHubOptions {
  readonly nc: NatsConnection;
  readonly names: EventStreamNames;
  readonly reader: TemporalReader;
  readonly limits: WatchLimits;
  readonly metrics: WatchMetrics;
  readonly logger: Logger;
  /** Aborted when the service stops: every watch then ends with UNAVAILABLE. */
  readonly stopping: AbortSignal;
}

/** One WatchContext call, as the hub needs it. */
export interface WatchCall {
  /** The call's signal: the client cancelled or went away, or its deadline passed. */
  readonly signal: AbortSignal;
  /** Who is calling, for the limit per client: the peer address until calls carry a principal. */
  readonly client: string;
  /**
   * Ends the call even while its response waits for a client that does not read (HTTP/2 flow
   * control); the client sees RESOURCE_EXHAUSTED.
   */
  readonly shed?: () => void;
}

/**
 * Every WatchContext of a process. Watches cost no JetStream consumer: the watchers of one story
 * share one core NATS subscription and one read of each new event (a StoryChannel), and a watcher
 * that is behind the channel reads what it missed from the store. A watch holds its story's state,
 * never a queue of answers: one whose client falls more than `maxLag` versions behind is ended.
 */
export interface WatchHub {
  /**
   * The story's current state, then its state after every new event, in version order, none
   * skipped or repeated, until the call ends or the service stops.
   *
   * @throws WatchLimitError when the process or the client has the most watches open already;
   *   UnknownStoryError for a story without events; WatchLaggingError when the client reads too
   *   slowly; ShuttingDownError when the service stops; the store's errors for unreadable events.
   */
  watch(storyId: StoryId, call: WatchCall): AsyncGenerator<WatchContextResponse>;
  /** Reads every watched story again: after a NATS reconnection, messages sent meanwhile are lost. */
  resync(): void;
  /** Watches open and stories watched in this process. */
  size(): { readonly watches: number; readonly stories: number };
  /** Drops every channel (the service stopped; watches have ended with UNAVAILABLE). */
  close(): void;
}

export function createWatchHub(options: WatchHubOptions): WatchHub {
  return new Hub(options);
}

/** How long a watcher waits before reading again when the store lags the channel (a replica). */
const STORE_BEHIND_RETRY_MS = 100;

/** An answer of a watch, and the version it is the state after. */
interface WatchStep {
  readonly version: number;
  readonly answer: WatchContextResponse;
}

interface StoryWatchers {
  readonly channel: StoryChannel;
  readonly watchers: Set<Watcher>;
}

class Hub implements WatchHub, ChannelHost {
  readonly nc: NatsConnection;
  readonly names: EventStreamNames;
  readonly reader: TemporalReader;
  readonly logger: Logger;
  readonly resyncMs: number;
  readonly stopping: AbortSignal;
  readonly #limits: WatchLimits;
  readonly #metrics: WatchMetrics;
  readonly #stories = new Map<StoryId, StoryWatchers>();
  readonly #byChannel = new Map<StoryChannel, StoryWatchers>();
  readonly #perClient = new Map<string, number>();
  #open = 0;

  constructor(o: WatchHubOptions) {
    this.nc = o.nc;
    this.names = o.names;
    this.reader = o.reader;
    this.logger = o.logger;
    this.resyncMs = o.limits.resyncMs;
    this.stopping = o.stopping;
    this.#limits = o.limits;
    this.#metrics = o.metrics;
  }

  async *watch(storyId: StoryId, call: WatchCall): AsyncGenerator<WatchContextResponse> {
    const signal = AbortSignal.any([call.signal, this.stopping]);
    const watcher = this.#admit(storyId, call, signal);
    try {
      await watcher.channel.ready;
      const start = await this.reader.current(storyId, { signal });
      signal.throwIfAborted();
      if (start.state.version === 0) throw new UnknownStoryError(storyId);
      watcher.begin(start.state, start.sequence);
      watcher.channel.seed(start);
      let next: WatchStep = { version: start.state.version, answer: watchAnswer(start.state) };
      for (;;) {
        watcher.inYield = true;
        yield next.answer;
        watcher.inYield = false;
        watcher.taken = next.version;
        next = await watcher.next(signal);
      }
    } catch (e) {
      // A stopping service ends every watch the same way, whatever step it was in.
      if (this.stopping.aborted && !watcher.endedWith) throw new ShuttingDownError();
      throw e;
    } finally {
      this.#release(watcher, this.#endReason(watcher, call));
    }
  }

  resync(): void {
    for (const { channel } of this.#stories.values()) channel.refresh();
  }

  size() {
    return { watches: this.#open, stories: this.#stories.size };
  }

  close(): void {
    for (const { channel, watchers } of this.#stories.values()) {
      for (const w of watchers) w.end(new ShuttingDownError(), "stopping");
      channel.close();
    }
    this.#stories.clear();
    this.#byChannel.clear();
    this.#metrics.watchedStories(0);
  }

  // ChannelHost: a channel read new events. Its watchers take them, or are ended when too late.
  advanced(channel: StoryChannel): void {
    const story = this.#byChannel.get(channel);
    if (story === undefined) return;
    for (const w of story.watchers) {
      if (w.started && channel.version - w.taken > this.#limits.maxLag) {
        this.#shed(w, new WatchLaggingError(channel.storyId, this.#limits.maxLag));
      } else {
        w.wake();
      }
    }
  }

  // ChannelHost: the story cannot be read on (an unreadable or corrupt event).
  failed(channel: StoryChannel, error: unknown): void {
    const story = this.#byChannel.get(channel);
    this.logger.warn({ err: error, storyId: channel.storyId }, "watch: the story cannot be read");
    if (story === undefined) return;
    for (const w of story.watchers) w.end(error, "error");
    this.#dropChannel(story);
  }

  #admit(storyId: StoryId, call: WatchCall, signal: AbortSignal): Watcher {
    if (this.stopping.aborted) throw new ShuttingDownError();
    const { maxWatches, maxPerClient } = this.#limits;
    if (this.#open >= maxWatches) {
      this.#metrics.refused(WatchLimit.Process);
      throw new WatchLimitError(WatchLimit.Process, maxWatches);
    }
    const ofClient = this.#perClient.get(call.client) ?? 0;
    if (ofClient >= maxPerClient) {
      this.#metrics.refused(WatchLimit.Client);
      throw new WatchLimitError(WatchLimit.Client, maxPerClient);
    }
    let story = this.#stories.get(storyId);
    if (story === undefined) {
      const channel = new StoryChannel(this, storyId);
      story = { channel, watchers: new Set() };
      this.#stories.set(storyId, story);
      this.#byChannel.set(channel, story);
      this.#metrics.watchedStories(this.#stories.size);
    }
    const watcher = new Watcher(this.reader, story.channel, call, signal);
    story.watchers.add(watcher);
    this.#open++;
    this.#perClient.set(call.client, ofClient + 1);
    this.#metrics.opened();
    return watcher;
  }

  /** Ends a watch whose client is too far behind: at once, also while it waits on the client. */
  #shed(w: Watcher, error: WatchLaggingError): void {
    this.logger.info(
      { storyId: w.channel.storyId, client: w.call.client, maxLag: this.#limits.maxLag },
      "watch ended: the client fell too far behind",
    );
    const waitingOnClient = w.inYield;
    w.end(error, "lagging");
    this.#release(w, "lagging");
    // Suspended in a yield, the watch cannot throw: its response waits for the client to read.
    if (waitingOnClient) w.call.shed?.();
  }

  #release(w: Watcher, reason: WatchEnd): void {
    if (w.released) return;
    w.released = true;
    this.#open--;
    const ofClient = (this.#perClient.get(w.call.client) ?? 1) - 1;
    if (ofClient > 0) this.#perClient.set(w.call.client, ofClient);
    else this.#perClient.delete(w.call.client);
    this.#metrics.closed(reason);
    const story = this.#byChannel.get(w.channel);
    if (story === undefined) return;
    story.watchers.delete(w);
    if (story.watchers.size === 0) this.#dropChannel(story);
  }

  #dropChannel(story: StoryWatchers): void {
    story.channel.close();
    this.#byChannel.delete(story.channel);
    if (this.#stories.get(story.channel.storyId) === story) {
      this.#stories.delete(story.channel.storyId);
    }
    this.#metrics.watchedStories(this.#stories.size);
  }

  #endReason(w: Watcher, call: WatchCall): WatchEnd {
    if (w.endReason !== undefined) return w.endReason;
    if (this.stopping.aborted) return "stopping";
    if (call.signal.aborted) return "cancelled";
    return "error";
  }
}

/** One watch: where its client is in the story, and the state it has there. */
class Watcher {
  readonly channel: StoryChannel;
  readonly call: WatchCall;
  readonly #reader: TemporalReader;
  /** Stored events read from the store, not yet answered (a watcher behind the channel's ring). */
  #pending: RecordedEvent[][] = [];
  #state: ContextState | undefined;
  #sequence = 0;
  #wake: (() => void) | undefined;
  /** The watch has its first answer: it counts against the lag limit from now on. */
  started = false;
  /** The version of the last answer the client took (it asked for the next one). */
  taken = 0;
  /** Suspended in a yield: the answer waits for the client. */
  inYield = false;
  released = false;
  endedWith: unknown;
  endReason: WatchEnd | undefined;

  constructor(reader: TemporalReader, channel: StoryChannel, call: WatchCall, signal: AbortSignal) {
    this.#reader = reader;
    this.channel = channel;
    this.call = call;
    signal.addEventListener("abort", () => this.wake(), { once: true });
  }

  begin(state: ContextState, sequence: number): void {
    this.#state = state;
    this.#sequence = sequence;
    this.taken = state.version;
    this.started = true;
  }

  wake(): void {
    this.#wake?.();
  }

  /** Ends the watch with `error` at its next step; drops what it holds. */
  end(error: unknown, reason: WatchEnd): void {
    if (this.endedWith !== undefined) return;
    this.endedWith = error;
    this.endReason = reason;
    this.#state = undefined;
    this.#pending = [];
    this.wake();
  }

  /** The answer after the next version: from the channel, or read from the store when behind it. */
  async next(signal: AbortSignal): Promise<WatchStep> {
    for (;;) {
      if (this.endedWith !== undefined) throw this.endedWith;
      signal.throwIfAborted();
      const state = this.#state;
      // Only an ended watch has no state, and it threw above.
      if (state === undefined) throw new TypeError("a watch stepped before it started");
      const entry = this.channel.entryAfter(state.version);
      if (entry !== undefined) {
        this.#pending = [];
        return this.#adopt(entry);
      }
      const parts = this.#pending.shift();
      if (parts?.[0]?.version === state.version + 1) return this.#fold(state, parts);
      if (parts !== undefined) {
        this.#pending = [];
        continue;
      }
      if (this.channel.version > state.version) {
        // Behind the channel's ring (a slow client, or a start read older than the channel's head).
        const until = Math.min(this.channel.ringStart - 1, state.version + READ_PAGE);
        const events = await this.#reader.events(
          this.channel.storyId,
          {
            fromVersion: state.version + 1,
            toVersion: until,
            after: { sequence: this.#sequence, version: state.version },
          },
          { signal },
        );
        this.#pending = byStoredEvent(events);
        // The store lags the channel (a replica answered): look again shortly.
        if (this.#pending.length === 0) await this.#waitForWake(signal, STORE_BEHIND_RETRY_MS);
        continue;
      }
      await this.#waitForWake(signal);
    }
  }

  #adopt(entry: ChannelEntry): WatchStep {
    this.#state = entry.state;
    this.#sequence = entry.sequence;
    return { version: entry.version, answer: entry.answer() };
  }

  #fold(state: ContextState, parts: readonly RecordedEvent[]): WatchStep {
    let next = state;
    for (const e of parts) next = evolve(next, e);
    this.#state = next;
    this.#sequence = parts[0]?.sequence ?? this.#sequence;
    return { version: next.version, answer: watchAnswer(next) };
  }

  #waitForWake(signal: AbortSignal, timeoutMs?: number): Promise<void> {
    if (signal.aborted || this.endedWith !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      if (timeoutMs !== undefined) timer = setTimeout(done, timeoutMs);
      this.#wake = done;
    });
  }
}
