import type { Logger } from "@ctx/config";
import type { StoryId } from "@ctx/domain";
import {
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Counter } from "prom-client";
import { contextEventUpcaster, type EventUpcaster, type StoredEvent } from "./codec.ts";
import { EventStoreUnavailableError, isNatsOutage } from "./errors.ts";
import type { EventStoreOptions, StoryHead } from "./event-store.ts";
import { defaultEventStreamNames, type EventStreamNames } from "./event-stream.ts";

export const WRONG_LAST_SEQUENCE = 10071;
const SET_ASIDE_METRIC = "ctx_event_store_set_aside_read_total";
/** Set-aside messages a store says it passed over (once each), remembered to say it once. */
export const SET_ASIDE_LOGGED = 10_000;
export const EMPTY = new Uint8Array(0);

/**
 * What the event store's reader and appender share (see createEventStore): one of each per store
 * over one core, so that the heads the reader finds are the ones the appender chains onto, and
 * both fail fast the same way while NATS is down. Internal to the package: callers see EventStore.
 */
export class StoreCore {
  readonly names: EventStreamNames;
  readonly upcaster: EventUpcaster;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  /** Publish and read timeout in milliseconds. */
  readonly timeout: number;
  #jsm: Promise<JetStreamManager> | undefined;
  readonly #heads = new Map<StoryId, StoryHead>();
  readonly #headCacheSize: number;
  #connected = true;
  readonly #setAsideRead: Counter | undefined;
  readonly #logger: Logger | undefined;
  readonly #setAsideLogged = new Set<string>();

  constructor(nc: NatsConnection, options: EventStoreOptions) {
    this.nc = nc;
    this.names = options.names ?? defaultEventStreamNames;
    this.upcaster = options.upcaster ?? contextEventUpcaster;
    this.timeout = options.timeoutMs ?? 5_000;
    this.js = jetstream(nc, { timeout: this.timeout });
    this.#headCacheSize = options.headCacheSize ?? 10_000;
    this.#logger = options.logger;
    const registry = options.registry;
    if (registry) {
      this.#setAsideRead =
        (registry.getSingleMetric(SET_ASIDE_METRIC) as Counter | undefined) ??
        new Counter({
          name: SET_ASIDE_METRIC,
          help: "Stored messages reads passed over because an operator set them aside (ctx stories repair)",
          registers: [registry],
        });
    }
    // While the connection is down, calls fail at once (UNAVAILABLE) instead of each waiting for
    // its timeout in the client's reconnect buffer.
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") this.#connected = false;
        if (status.type === "reconnect") this.#connected = true;
      }
    })().catch(() => undefined);
  }

  /** Whether the connection to NATS is up, as its last status said. */
  get connected(): boolean {
    return this.#connected;
  }

  manager(): Promise<JetStreamManager> {
    this.#jsm ??= this.js.jetstreamManager(false);
    return this.#jsm;
  }

  /** Runs a NATS call; wrong-last-sequence becomes WrongLastSequence, outages EventStoreUnavailableError. */
  async guard<T>(call: () => Promise<T>): Promise<T> {
    this.ensureConnected();
    try {
      return await call();
    } catch (e) {
      throw guarded(e);
    }
  }

  ensureConnected(): void {
    if (!this.#connected || this.nc.isClosed()) {
      throw new EventStoreUnavailableError("JetStream is unavailable: not connected to NATS");
    }
  }

  /** The story's head as last seen by this store (an append or a read), if it still remembers it. */
  cachedHead(storyId: StoryId): StoryHead | undefined {
    return this.#heads.get(storyId);
  }

  /** Remembers the story's head, what the next append chains onto, and returns it. */
  remember(storyId: StoryId, head: StoryHead): StoryHead {
    this.#heads.delete(storyId);
    this.#heads.set(storyId, head);
    if (this.#heads.size > this.#headCacheSize) {
      const oldest = this.#heads.keys().next().value;
      if (oldest !== undefined) this.#heads.delete(oldest);
    }
    return head;
  }

  /** Forgets the story's head: it moved on without this store, or is to be read again. */
  forget(storyId: StoryId): void {
    this.#heads.delete(storyId);
  }

  /** Counts (and says once) that a read passed over a message an operator set aside. */
  passedOver(story: string, sequence: number): void {
    this.#setAsideRead?.inc();
    const key = `${story}\u0000${sequence}`;
    if (this.#logger === undefined || this.#setAsideLogged.has(key)) return;
    if (this.#setAsideLogged.size >= SET_ASIDE_LOGGED) this.#setAsideLogged.clear();
    this.#setAsideLogged.add(key);
    this.#logger.info(
      { storyId: story, sequence },
      "passing over a stored message the story's EventsSetAside sets aside",
    );
  }
}

/** Where an event leaves its story: what the next append chains onto. */
export function headOf(event: Pick<StoredEvent, "version" | "sequence" | "envelope">): StoryHead {
  return { version: event.version, sequence: event.sequence, hash: event.envelope.hash };
}

/** Internal: the server's wrong-last-sequence answer, turned into a ConcurrencyError by append. */
export class WrongLastSequence extends Error {
  override name = "WrongLastSequence";
}

/** What a failed NATS call throws: WrongLastSequence, EventStoreUnavailableError, or the error. */
export function guarded(e: unknown): unknown {
  if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) {
    return new WrongLastSequence(e.message, { cause: e });
  }
  if (isNatsOutage(e)) {
    return new EventStoreUnavailableError(`JetStream is unavailable: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return e;
}
