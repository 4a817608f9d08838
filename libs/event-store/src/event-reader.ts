import {
  ContextEventType,
  storyId as checkedStoryId,
  type StoryId,
  StoryNotFoundError,
} from "@ctx/domain";
import { DeliverPolicy, type StoredMsg } from "@nats-io/jetstream";
import {
  decodeStoredEvent,
  type EventUpcaster,
  linkStoredEvent,
  originStory,
  type RecordedEvent,
  type StoredEvent,
  setAsideEvent,
  streamSequence,
  unreadableEvent,
} from "./codec.ts";
import { collectDirectBatch, directGet } from "./direct-batch.ts";
import { CorruptEventError, type EventReadError, isEventReadError } from "./errors.ts";
import { SIGNATURE_HEADER } from "./event-signing.ts";
import type {
  EventStore,
  ReadAllOptions,
  ReadOptions,
  StoryHead,
  StoryMessagesOptions,
} from "./event-store.ts";
import { type EventStreamNames, parseStoredSubject, storySubjects } from "./event-stream.ts";
import {
  checkFollows,
  type MessageVerdict,
  noneSetAside,
  planSetAside,
  type SetAsideIndex,
  type StoredMessage,
  setAsideEntry,
  setAsideIndexOf,
} from "./set-aside.ts";
import { EMPTY, headOf, SET_ASIDE_LOGGED, type StoreCore } from "./store-core.ts";
import { mergeSubjects } from "./story-merge.ts";
import { READ_BATCH, scan } from "./stream-scan.ts";

/**
 * The event store's reads: every EventStore method but append and setAside, over the core it
 * shares with the appender (see createEventStore). The appender asks it what an append needs to
 * know of the stream too: a story's head, what the leader holds after a re-send, and, to set
 * messages aside, a story's messages and set-aside index. Internal to the package.
 */
export class EventReader implements Omit<EventStore, "append" | "setAside"> {
  readonly names: EventStreamNames;
  readonly upcaster: EventUpcaster;
  readonly #core: StoreCore;

  constructor(core: StoreCore) {
    this.#core = core;
    this.names = core.names;
    this.upcaster = core.upcaster;
  }

  /** The story's last message, by direct get (any replica), or from the stream's leader. */
  async fetchHead(storyId: StoryId, fromLeader = false): Promise<StoryHead | undefined> {
    const jsm = await this.#core.manager();
    const query = { last_by_subj: storySubjects(this.names, storyId) };
    const msg = await this.#core.guard(() =>
      fromLeader
        ? jsm.streams.getMessage(this.names.stream, query)
        : directGet(jsm, this.names.stream, query),
    );
    if (!msg) {
      this.#core.forget(storyId);
      return undefined;
    }
    try {
      return this.#core.remember(
        storyId,
        headOf(decodeStoredEvent(msg.data, msg.seq, msg.subject)),
      );
    } catch (e) {
      if (!isEventReadError(e)) throw e;
      // The last message cannot be read. If it is set aside, the head is where the story's chain
      // ends: a whole read says (and remembers it); if not, that read fails with why.
      this.#core.forget(storyId);
      await this.readStored(storyId, { bySubject: false, fromLeader });
      const head = this.#core.cachedHead(storyId);
      if (head === undefined) throw e;
      return head;
    }
  }

  head(storyId: StoryId): Promise<StoryHead | undefined> {
    return this.fetchHead(storyId);
  }

  async versionStoredBy(storyId: StoryId, time: Date): Promise<number> {
    const jsm = await this.#core.manager();
    const messages = await this.#core.guard(() =>
      collectDirectBatch(
        jsm,
        this.names.stream,
        { multi_last: [storySubjects(this.names, storyId)], up_to_time: time },
        this.#core.timeout,
      ),
    );
    // One message per event type of the story: the last of each.
    let version = 0;
    for (const msg of messages) {
      version = Math.max(version, decodeStoredEvent(msg.data, msg.seq, msg.subject).version);
    }
    return version;
  }

  async readAt(sequence: number): Promise<StoredEvent | undefined> {
    const jsm = await this.#core.manager();
    const msg = await this.#core.guard(() => directGet(jsm, this.names.stream, { seq: sequence }));
    if (!msg) return undefined;
    try {
      return decodeStoredEvent(msg.data, msg.seq, msg.subject);
    } catch (e) {
      if (!isEventReadError(e)) throw e;
      const story = originStory(msg.subject);
      const entry = setAsideEntry(await this.setAsideIndex(story), msg.seq, msg.data);
      if (entry === undefined) throw e;
      this.#core.passedOver(story, msg.seq);
      return setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
    }
  }

  /**
   * The messages of a story an operator set aside: the entries of its last EventsSetAside (one
   * direct get, answered from the server's subject index). Asked only when a read meets a message
   * it cannot read, so reads of healthy stories never pay for it.
   */
  async setAsideIndex(story: string): Promise<SetAsideIndex> {
    try {
      checkedStoryId(story);
    } catch {
      return noneSetAside; // no story could have set it aside
    }
    const jsm = await this.#core.manager();
    const subject = `${this.names.subjectPrefix}.*.${story}.${ContextEventType.EventsSetAside}`;
    const msg = await this.#core.guard(() =>
      directGet(jsm, this.names.stream, { last_by_subj: subject }),
    );
    if (!msg) return noneSetAside;
    return setAsideIndexOf(this.upcaster.decode(msg.data, msg.seq, msg.subject)[0]);
  }

  /**
   * One stored message of a story, read in order after the story's `version` (undefined when
   * unknown: the first message after a position whose version the caller did not give): decoded,
   * checked against its subject and its version against the version before it. A message that
   * cannot be read is looked up in the story's set-aside index: what an operator set aside is
   * passed over (undefined) or read as a version only; anything else fails with why.
   */
  #readOne(
    story: StoryId,
    msg: StoredMessage,
    version: number | undefined,
    index: () => Promise<SetAsideIndex>,
  ): StoredEvent | Promise<StoredEvent | undefined> {
    try {
      const event = decodeStoredEvent(msg.data, msg.seq, msg.subject);
      if (version !== undefined) checkFollows(event, version, story);
      return event;
    } catch (e) {
      if (!isEventReadError(e)) throw e;
      return this.#setAsideOrThrow(story, msg, version, index, e);
    }
  }

  async #setAsideOrThrow(
    story: StoryId,
    msg: StoredMessage,
    version: number | undefined,
    index: () => Promise<SetAsideIndex>,
    error: EventReadError,
  ): Promise<StoredEvent | undefined> {
    const entry = setAsideEntry(await index(), msg.seq, msg.data);
    if (entry === undefined) throw error;
    this.#core.passedOver(story, msg.seq);
    const event = setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
    if (event !== undefined && version !== undefined) checkFollows(event, version, story);
    return event;
  }

  async read(storyId: StoryId, options: ReadOptions = {}): Promise<readonly RecordedEvent[]> {
    const stored = await this.readStored(storyId, options);
    const events: RecordedEvent[] = [];
    let index: Promise<SetAsideIndex> | undefined;
    for (const event of stored) {
      try {
        events.push(...this.upcaster.upcast(event));
      } catch (e) {
        if (!isEventReadError(e)) throw e;
        index ??= this.setAsideIndex(storyId);
        const setAside = await this.#setAsideStored(event, index, e);
        events.push(...this.upcaster.upcast(setAside));
      }
    }
    return events;
  }

  /**
   * A stored event that cannot be brought to its current shape, as set aside by an operator (read
   * as its version only); fails with `error` when no operator set it aside. Its bytes are read
   * again (a direct get by sequence) for the SHA-256 check: this happens only to such events.
   */
  async #setAsideStored(
    event: StoredEvent,
    index: Promise<SetAsideIndex>,
    error: EventReadError,
  ): Promise<StoredEvent> {
    const entries = await index;
    if (!entries.has(event.sequence)) throw error;
    const jsm = await this.#core.manager();
    const msg = await this.#core.guard(() =>
      directGet(jsm, this.names.stream, { seq: event.sequence }),
    );
    const entry = msg && setAsideEntry(entries, msg.seq, msg.data);
    const setAside = entry && setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
    if (!setAside || setAside.version !== event.version) throw error;
    this.#core.passedOver(event.storyId, event.sequence);
    return setAside;
  }

  async readStored(storyId: StoryId, options: ReadOptions = {}): Promise<readonly StoredEvent[]> {
    const from = options.fromVersion ?? 1;
    // Linked from where the read started, then cut to the versions asked for.
    const asked = (events: readonly StoredEvent[]) =>
      from > 1 ? events.filter((e) => e.version >= from) : events;
    try {
      return asked(
        await this.#linked(storyId, await this.#readStoredOnce(storyId, options), options),
      );
    } catch (e) {
      // Any replica answers a direct get, and one catching up after a restart can answer part of
      // a read (versions that do not follow on, where another replica answered the batch before).
      // That is not the last word: the leader reads the story again before a reader is told that
      // it cannot be read. A message that is unreadable indeed is so on the leader too.
      if (options.fromLeader === true || !isEventReadError(e)) throw e;
      const again = await this.#readStoredOnce(storyId, { ...options, fromLeader: true });
      return asked(await this.#linked(storyId, again, options));
    }
  }

  /**
   * A story's events read in order, each checked as the link after the one before it (see
   * linkStoredEvent; the first after version 1's empty hash, or `afterHash`): a version 2 event
   * whose content does not hash, after the previous event's hash, to its stored hash is refused
   * like any other unreadable message, unless an operator set it aside.
   */
  async #linked(
    storyId: StoryId,
    events: readonly StoredEvent[],
    options: ReadOptions,
  ): Promise<readonly StoredEvent[]> {
    const first = events[0];
    let prev: Uint8Array | undefined =
      first?.version === 1
        ? EMPTY
        : options.afterSequence !== undefined
          ? options.afterHash
          : undefined;
    let replaced: StoredEvent[] | undefined;
    let index: Promise<SetAsideIndex> | undefined;
    for (let i = 0; i < events.length; i++) {
      let event = events[i] as StoredEvent;
      if (prev !== undefined) {
        try {
          linkStoredEvent(event, prev);
        } catch (e) {
          if (!isEventReadError(e)) throw e;
          index ??= this.setAsideIndex(storyId);
          event = await this.#setAsideStored(event, index, e);
          replaced ??= events.slice();
          replaced[i] = event;
        }
        if (event.setAside !== undefined && event.envelope.envelopeVersion === 2) {
          event.envelope.prevHash = prev;
        }
      }
      prev = event.envelope.hash;
    }
    return replaced ?? events;
  }

  async #readStoredOnce(storyId: StoryId, options: ReadOptions): Promise<readonly StoredEvent[]> {
    const from = options.fromVersion ?? 1;
    const to = options.toVersion ?? Number.POSITIVE_INFINITY;
    const until = options.untilTime?.getTime() ?? Number.POSITIVE_INFINITY;
    const after = options.afterSequence ?? 0;
    // Each event asked for costs the server a lookup and a message, so a bounded read asks for its
    // range alone: versions are gapless, so reading from the story's start up to `to` takes `to`
    // events, and from a known position (afterSequence at fromVersion) `to - from + 1`.
    let size = READ_BATCH;
    if (Number.isFinite(to)) {
      const first = options.afterSequence === undefined ? 1 : from;
      size = Math.min(READ_BATCH, Math.max(1, to - first + 1));
    }
    if (options.sizeHint !== undefined && options.sizeHint >= 1) {
      size = Math.min(size, Math.ceil(options.sizeHint));
    }
    const beyond = (e: StoredEvent) => e.version > to || e.occurredAt.getTime() > until;

    // From the story's start, or from a known event whose version is given: subject by subject.
    if (
      options.bySubject !== false &&
      options.fromLeader !== true &&
      (after === 0 || options.fromVersion !== undefined)
    ) {
      const first = after === 0 ? 1 : from;
      // A message it cannot read is for the read through the filter below to judge, in order.
      const read = await this.#readBySubject(storyId, after, first, to, size, beyond).catch(
        (e: unknown) => {
          if (isEventReadError(e)) return undefined;
          throw e;
        },
      );
      if (read !== undefined) {
        const { head, events } = read;
        if (head) {
          this.#core.remember(storyId, headOf(head));
        } else if (options.mustExist && options.afterSequence === undefined) {
          throw new StoryNotFoundError(storyId);
        }
        return events;
      }
    }

    const events: StoredEvent[] = [];
    let last: StoredEvent | undefined;
    let lastSequence = 0;
    // Every event must follow the one before it: from the story's start, version 1 comes first;
    // after a position, the first one read sets the pace (the caller checks where it starts).
    let version: number | undefined = after === 0 ? 0 : undefined;
    let index: Promise<SetAsideIndex> | undefined;
    const setAside = () => {
      index ??= this.setAsideIndex(storyId);
      return index;
    };
    const take = (event: StoredEvent | undefined): boolean => {
      if (event === undefined) return true; // set aside: as if it were not there
      version = event.version;
      last = event;
      if (beyond(event)) return false;
      // Every event read, for the links; readStored keeps those from `from` on.
      events.push(event);
      // The range is complete: asking whether the story goes on would cost another request.
      return event.version < to;
    };
    const reachedEnd = await scan(
      this.#core,
      `story ${storyId}`,
      storySubjects(this.names, storyId),
      after + 1,
      size,
      (msg) => {
        lastSequence = msg.seq;
        const read = this.#readOne(storyId, msg, version, setAside);
        return read instanceof Promise ? read.then(take) : take(read);
      },
      options.fromLeader === true,
    );
    if (reachedEnd && last) {
      // The chain goes on from the last event (or set-aside link); the next append expects the
      // story's last message, whatever it is.
      const end: StoredEvent = last;
      this.#core.remember(storyId, {
        version: end.version,
        sequence: streamSequence(lastSequence),
        hash: end.envelope.hash,
      });
    }
    if (options.mustExist && last === undefined && options.afterSequence === undefined) {
      throw new StoryNotFoundError(storyId);
    }
    return events;
  }

  /**
   * A story's events up to a bound (`beyond`), from its start or after a known event
   * (`firstVersion` is the version of the event after it), read one subject (event type) at a
   * time, with the story's last event (its head) when it has any; undefined when that did not give
   * gapless versions from `firstVersion` (an event of a new type landed while reading, or times out
   * of order across subjects): the caller then reads through the story's filter.
   *
   * Why: the story's filter (`{prefix}.*.{story}.>`) is a wildcard, and for a wildcard nats-server
   * walks the stream's messages from the start sequence on, matching every subject (when a block
   * holds about as many subjects as messages, which is how stories interleave). A story read then
   * costs the server time in proportion to the stream, not the story: 32 ms of CPU for a story of
   * about 12 events in a 156k-message stream. A literal subject is looked up in the server's
   * per-subject index instead: 9 ms there (the write bench's whole-story reads, docs/BENCHMARKS.md).
   * The story's subjects come from the server's subject index: the last message of each (a
   * `multi_last` direct get, which any replica answers, like the reads).
   */
  async #readBySubject(
    storyId: StoryId,
    afterSequence: number,
    firstVersion: number,
    toVersion: number,
    size: number,
    beyond: (event: StoredEvent) => boolean,
  ): Promise<{ head: StoredEvent | undefined; events: StoredEvent[] } | undefined> {
    const jsm = await this.#core.manager();
    // The last event of each of the story's subjects, found through the server's subject index;
    // only subjects with events after `afterSequence` are read.
    const lasts = await this.#core.guard(() =>
      collectDirectBatch(
        jsm,
        this.names.stream,
        { multi_last: [storySubjects(this.names, storyId)] },
        this.#core.timeout,
      ),
    );
    // The story's head: the newest of those.
    let newest: StoredMsg | undefined;
    for (const msg of lasts) if (newest === undefined || msg.seq > newest.seq) newest = msg;
    const head = newest && decodeStoredEvent(newest.data, newest.seq, newest.subject);
    const fresh = lasts.filter((msg) => msg.seq > afterSequence);
    if (head === undefined || fresh.length === 0) return { head, events: [] };
    // No subject holds more of the events to read than there are: up to the story's last version.
    const lastVersion = Math.min(head.version, toVersion);
    const batch = Math.max(1, Math.min(size, lastVersion - firstVersion + 1));
    let bounded = false;
    // A message an operator set aside is passed over here too (versions are checked by the merge),
    // so a repaired story is still read subject by subject.
    let index: Promise<SetAsideIndex> | undefined;
    const setAside = () => {
      index ??= this.setAsideIndex(storyId);
      return index;
    };
    const parts = await Promise.all(
      fresh.map(async ({ subject }) => {
        const part: StoredEvent[] = [];
        const take = (e: StoredEvent | undefined): boolean => {
          if (e === undefined) return true;
          if (beyond(e)) {
            bounded = true;
            return false;
          }
          part.push(e);
          return e.version < lastVersion;
        };
        await scan(this.#core, `story ${storyId}`, subject, afterSequence + 1, batch, (msg) => {
          const read = this.#readOne(storyId, msg, undefined, setAside);
          return read instanceof Promise ? read.then(take) : take(read);
        });
        return part;
      }),
    );
    const events = mergeSubjects(parts, firstVersion);
    if (events === undefined) return undefined;
    // Read up to the head's version, the head must be the last event read: a newest message whose
    // version is not the story's last (a repeat stored after it) is for the filter to judge.
    const last = events[events.length - 1];
    if (!bounded && lastVersion === head.version && last?.sequence !== head.sequence) {
      return undefined;
    }
    return { head, events };
  }

  async *readAll(
    options: ReadAllOptions = {},
  ): AsyncIterable<RecordedEvent & { readonly partition: number }> {
    for await (const stored of this.readAllStored(options)) {
      const { partition } = stored;
      let events: readonly RecordedEvent[];
      try {
        events = this.upcaster.upcast(stored);
      } catch (e) {
        if (!isEventReadError(e) || stored.unreadable !== undefined) throw e;
        const index = this.setAsideIndex(stored.storyId);
        events = this.upcaster.upcast(await this.#setAsideStored(stored, index, e));
      }
      // Object.assign, not a spread: a spread would read (decode) a legacy event's envelope.
      for (const event of events) yield Object.assign(event, { partition });
    }
  }

  async *readAllMessages(options: ReadAllOptions = {}): AsyncIterable<StoredMessage> {
    const jsm = await this.#core.manager();
    const info = await this.#core.guard(() => jsm.streams.info(this.names.stream));
    const from = Math.max(options.fromSequence ?? 1, info.state.first_seq);
    const to = Math.min(options.toSequence ?? info.state.last_seq, info.state.last_seq);
    if (info.state.messages === 0 || from > to) return;
    const consumer = await this.#core.guard(() =>
      this.#core.js.consumers.get(this.names.stream, {
        filter_subjects: [`${this.names.subjectPrefix}.>`],
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: from,
      }),
    );
    const messages = await consumer.consume({ max_messages: 1024 });
    try {
      for await (const msg of messages) {
        if (msg.seq > to) break;
        const signature = options.signatures === true ? msg.headers?.get(SIGNATURE_HEADER) : "";
        yield {
          seq: msg.seq,
          subject: msg.subject,
          data: msg.data,
          time: msg.time,
          ...(signature ? { signature } : {}),
        };
        if (msg.seq >= to || msg.info.pending === 0) break;
      }
    } finally {
      await messages.close();
    }
  }

  storyMessages(
    storyId: StoryId,
    options: StoryMessagesOptions = {},
  ): Promise<readonly StoredMessage[]> {
    return this.#messagesOn(`story ${storyId}`, storySubjects(this.names, storyId), options);
  }

  streamMessages(options: StoryMessagesOptions = {}): Promise<readonly StoredMessage[]> {
    return this.#messagesOn(
      `stream ${this.names.stream}`,
      `${this.names.subjectPrefix}.>`,
      options,
    );
  }

  async #messagesOn(
    what: string,
    filter: string,
    options: StoryMessagesOptions,
  ): Promise<readonly StoredMessage[]> {
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const messages: StoredMessage[] = [];
    let bytes = 0;
    const first = (options.afterSequence ?? 0) + 1;
    if (limit < 1) return messages;
    const size = Math.min(READ_BATCH, limit);
    await scan(this.#core, what, filter, first, size, (msg) => {
      const signature = msg.header?.get(SIGNATURE_HEADER);
      messages.push(
        signature
          ? { seq: msg.seq, subject: msg.subject, data: msg.data, time: msg.time, signature }
          : msg,
      );
      bytes += msg.data.length;
      return messages.length < limit && bytes < maxBytes;
    });
    return messages;
  }

  async *readAllStored(
    options: ReadAllOptions = {},
  ): AsyncIterable<StoredEvent & { readonly partition: number }> {
    // The set-aside entries of the stories whose messages could not be read, asked once each.
    const indexes = new Map<string, Promise<SetAsideIndex>>();
    const indexOf = (story: string) => {
      let index = indexes.get(story);
      if (index === undefined) {
        if (indexes.size >= SET_ASIDE_LOGGED) indexes.clear();
        index = this.setAsideIndex(story);
        indexes.set(story, index);
      }
      return index;
    };
    for await (const msg of this.readAllMessages(options)) {
      const { partition } = parseStoredSubject(this.names, msg.subject);
      let event: StoredEvent | undefined;
      try {
        event = decodeStoredEvent(msg.data, msg.seq, msg.subject);
        // A (type, version) no chain reads may be set aside: the replay then yields what the
        // story's readers read (its version only) instead of what they would refuse.
        const shape = { type: event.eventType, version: event.schemaVersion };
        const { registry } = this.upcaster;
        if (!registry.isCurrent(shape) && registry.steps(shape).length === 0) {
          const story = event.storyId;
          const entry = setAsideEntry(await indexOf(story), msg.seq, msg.data);
          if (entry !== undefined) {
            this.#core.passedOver(story, msg.seq);
            event = setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
          }
        }
      } catch (e) {
        if (!isEventReadError(e)) throw e;
        event = await this.#replayed(msg, indexOf, e);
      }
      if (event !== undefined) yield Object.assign(event, { partition });
    }
  }

  /**
   * A message a replay cannot read: set aside (read as a version only, or passed over), or, when
   * no operator set it aside, an event marked `unreadable` (the upcaster refuses it with `error`).
   */
  async #replayed(
    msg: StoredMessage,
    indexOf: (story: string) => Promise<SetAsideIndex>,
    error: EventReadError,
  ): Promise<StoredEvent | undefined> {
    const story = originStory(msg.subject);
    const entry = setAsideEntry(await indexOf(story), msg.seq, msg.data);
    if (entry === undefined)
      return unreadableEvent(msg.data, msg.seq, msg.subject, msg.time, error);
    this.#core.passedOver(story, msg.seq);
    return setAsideEvent(msg.data, msg.seq, msg.subject, entry, msg.time);
  }

  /** Every stored message of a story, in stream order. */
  async allStoryMessages(storyId: StoryId): Promise<StoredMessage[]> {
    const messages: StoredMessage[] = [];
    await scan(
      this.#core,
      `story ${storyId}`,
      storySubjects(this.names, storyId),
      1,
      READ_BATCH,
      (msg) => {
        messages.push(msg);
        return true;
      },
    );
    return messages;
  }

  async isSetAside(storyId: string, sequence: number, bytes: Uint8Array): Promise<boolean> {
    const entry = setAsideEntry(await this.setAsideIndex(storyId), sequence, bytes);
    if (entry !== undefined) this.#core.passedOver(storyId, sequence);
    return entry !== undefined;
  }

  async examine(storyId: StoryId): Promise<readonly MessageVerdict[]> {
    const messages = await this.allStoryMessages(storyId);
    if (messages.length === 0) throw new StoryNotFoundError(storyId);
    const index = await this.setAsideIndex(storyId);
    return planSetAside(storyId, messages, index, [], this.upcaster).verdicts;
  }

  /**
   * The events a re-sent append found stored, read from the stream's leader: it acknowledged them,
   * and a follower (which any direct get may reach) may not hold them yet.
   */
  async storedEvents(first: number, last: number): Promise<RecordedEvent[]> {
    const jsm = await this.#core.manager();
    const events: RecordedEvent[] = [];
    for (let seq = first; seq <= last; seq++) {
      const msg = await this.#core.guard(() => jsm.streams.getMessage(this.names.stream, { seq }));
      if (!msg) {
        throw new CorruptEventError({ sequence: seq, reason: "acknowledged but missing" });
      }
      events.push(...this.upcaster.decode(msg.data, msg.seq, msg.subject));
    }
    return events;
  }

  /**
   * The story's last stored message as the stream's leader holds it: its sequence, and its event
   * id (none when it is no event a reader can read). The leader stored what it acknowledged; a
   * follower may not hold it yet.
   */
  async lastOnLeader(
    storyId: StoryId,
  ): Promise<{ sequence: number; eventId: string | undefined } | undefined> {
    const jsm = await this.#core.manager();
    const msg = await this.#core.guard(() =>
      jsm.streams.getMessage(this.names.stream, {
        last_by_subj: storySubjects(this.names, storyId),
      }),
    );
    return msg ? { sequence: msg.seq, eventId: eventIdOf(msg) } : undefined;
  }
}

/** The event id of a stored message; undefined when it is no event a reader can read. */
function eventIdOf(msg: StoredMsg): string | undefined {
  try {
    return decodeStoredEvent(msg.data, msg.seq, msg.subject).eventId;
  } catch (e) {
    if (isEventReadError(e)) return undefined;
    throw e;
  }
}
