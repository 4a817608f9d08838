import {
  type Command,
  type Decided,
  decideWithin,
  defaultStoryLimits,
  evolve,
  initialState,
  measureChange,
  measureStory,
  type StoryId,
  type StoryLimits,
  type StreamVersion,
  streamVersion,
} from "@ctx/domain";
import {
  type AppendResult,
  ConcurrencyError,
  type EventStore,
  equalBytes,
  isConcurrencyError,
  isEventReadError,
  type RecordedEvent,
  type StoredEvent,
} from "@ctx/event-store";
import { uuidv7 } from "@ctx/ids";
import { CommandIdReusedError } from "../errors.ts";
import type { CommandSnapshotStore, StoredSnapshot } from "../snapshots/command-snapshot-store.ts";
import type { CommandSnapshotter } from "../snapshots/command-snapshotter.ts";
import {
  canonicalJson,
  commandsOf,
  FROM_EVENTS,
  fingerprintBytes,
  fingerprintFromEvents,
  fingerprintOf,
  fingerprintOfCanonical,
  isComparable,
} from "./command-fingerprint.ts";
import {
  type CommandEntry,
  type CommandOutcome,
  defaultCacheLimits,
  type IndexedCommand,
  isIndexed,
  type LoadedStory,
  StoryCache,
} from "./story-cache.ts";
import { StoryLanes } from "./story-lanes.ts";

export interface CommandRequest {
  readonly storyId: StoryId;
  /**
   * The request's name, its RPC method (e.g. "ArchiveContext"): with a fingerprint of the
   * commands, what a command id stands for. Stored with the command's first event.
   */
  readonly name: string;
  readonly commands: readonly Command[];
  /** When set, the story must be at exactly this version (0: must not exist), or ConcurrencyError. */
  readonly expectedVersion?: number;
  /**
   * Idempotency key, scoped to the story; generated when absent. The same key with the same
   * request returns the first result; with another request it is refused (CommandIdReusedError).
   */
  readonly commandId?: string;
  readonly correlationId: string;
  readonly causationId: string;
  /**
   * Who issued the command (the authenticated principal, e.g. "jwt:alice"), stored in every event
   * of it; not part of the fingerprint, so a retry by another principal is still a retry.
   */
  readonly principal?: string;
  /** Aborts retries when the caller's deadline has passed. */
  readonly signal?: AbortSignal;
}

export interface CommandResult {
  readonly version: StreamVersion;
  readonly eventIds: readonly string[];
  /** The command id had been handled before: nothing was appended this time. */
  readonly deduplicated: boolean;
}

export interface CommandHandlerOptions {
  /** Stories kept in memory (0 disables the cache). Default: `defaultCacheLimits`. */
  readonly cacheSize?: number;
  /** Events kept in memory, summed over the cached stories (0 disables the cache). */
  readonly cacheEvents?: number;
  /** Attempts for a command without expected version that keeps losing races to other writers. */
  readonly maxAttempts?: number;
  /** What one command may carry and one story may hold (default: `defaultStoryLimits`). */
  readonly limits?: StoryLimits;
  /** Called with the time an append took, for metrics. */
  readonly onAppend?: (seconds: number, events: number) => void;
  /**
   * Where a story the handler does not hold is loaded from first: its newest snapshot and the
   * events after it. Unset, a story is read from its first event.
   */
  readonly snapshots?: CommandSnapshotStore;
  /** Told of every append, to write snapshots in the background. */
  readonly snapshotter?: CommandSnapshotter;
  /** Called after each load of a story the handler did not hold, for metrics and logs. */
  readonly onColdLoad?: (load: ColdLoad) => void;
  /**
   * Commands of one story that wait for the one in flight before them, at most (see StoryLanes);
   * past that a command runs at once and may race the others. Default 256.
   */
  readonly laneDepth?: number;
}

/** Why a load did not use a snapshot, though the handler has a snapshot store. */
export type SnapshotFallback =
  /** The story has none (yet). */
  | "missing"
  /** It does not decode, is of another format, or its pages of command ids do not match it. */
  | "unusable"
  /** It does not match the event stream: its last event is not there, or the events after it do not chain onto it. */
  | "unlinked"
  /** The snapshot stream could not be read. */
  | "unavailable"
  /** A retry named a command the snapshot listed and the stream does not hold where it said. */
  | "index";

/** How a story the handler did not hold was loaded. */
export interface ColdLoad {
  readonly storyId: StoryId;
  readonly from: "snapshot" | "events";
  /** Events read from the event stream: the tail after the snapshot, or the whole story. */
  readonly events: number;
  readonly seconds: number;
  /** Set when a snapshot store was there and not used: why. */
  readonly fallback?: SnapshotFallback;
  /** What went wrong, for "unusable" and "unavailable". */
  readonly problem?: unknown;
}

export interface CommandHandler {
  handle(request: CommandRequest): Promise<CommandResult>;
  /** What the story cache holds now (for metrics). */
  cached(): { readonly stories: number; readonly events: number };
}

/**
 * Runs commands: load the story (cache, else the event store), decide within the limits, append
 * with the story's version as the server-checked expectation. Commands of one story run one after
 * another in arrival order (StoryLanes), so that this process never races itself; a race lost to
 * another process reloads and decides again, unless the caller pinned an expected version, which
 * then fails with ConcurrencyError.
 * A command id the story holds already answers the first result when the request is the same
 * one, and CommandIdReusedError otherwise.
 */
export function createCommandHandler(
  store: EventStore,
  options: CommandHandlerOptions = {},
): CommandHandler {
  const cache = new StoryCache({
    stories: options.cacheSize ?? defaultCacheLimits.stories,
    events: options.cacheEvents ?? defaultCacheLimits.events,
  });
  const maxAttempts = options.maxAttempts ?? 10;
  const limits = options.limits ?? defaultStoryLimits;
  const { snapshots } = options;

  /**
   * Brings the story up to date from the store. `fromLeader` after the server said the story
   * moved on (a conflict, a version the cache does not hold): only the stream's leader surely
   * holds what it acknowledged, while a direct get may reach a follower that is behind.
   */
  async function load(storyId: StoryId, fromLeader = false): Promise<LoadedStory> {
    const cached = cache.get(storyId);
    if (cached === undefined) return coldLoad(storyId, fromLeader);
    const events = await store.read(storyId, {
      afterSequence: cached.sequence,
      afterHash: cached.hash,
      fromVersion: cached.state.version + 1,
      ...(fromLeader ? { fromLeader } : {}),
    });
    const story = apply(cached, events);
    cache.set(storyId, story);
    return story;
  }

  /**
   * Loads a story the handler does not hold: from its newest snapshot and the events after it when
   * the snapshot matches the stream, else from its first event. A snapshot matches when the stream
   * holds, at the sequence it names, the event of its version with its hash, and the first event
   * after it (if any) has the next version and chains onto that hash: the story's history up to
   * there is then the one the snapshot was folded from (each hash covers the ones before it).
   */
  async function coldLoad(storyId: StoryId, fromLeader: boolean): Promise<LoadedStory> {
    const started = performance.now();
    const report = (
      story: LoadedStory,
      from: ColdLoad["from"],
      events: number,
      fallback?: SnapshotFallback,
      problem?: unknown,
    ) => {
      options.onColdLoad?.({
        storyId,
        from,
        events,
        seconds: (performance.now() - started) / 1000,
        ...(fallback ? { fallback } : {}),
        ...(problem !== undefined ? { problem } : {}),
      });
      cache.set(storyId, story);
      return story;
    };
    const readAll = async (fallback?: SnapshotFallback, problem?: unknown) => {
      const events = await store.read(storyId, fromLeader ? { fromLeader } : {});
      return report(apply(emptyStory(storyId), events), "events", events.length, fallback, problem);
    };
    if (snapshots === undefined) return readAll();
    let snapshot: StoredSnapshot;
    try {
      const lookup = await snapshots.load(storyId);
      if (lookup.found === "none") return readAll("missing");
      if (lookup.found === "unusable") return readAll("unusable", lookup.why);
      snapshot = lookup.snapshot;
    } catch (e) {
      return readAll("unavailable", e);
    }
    const { state, sequence, hash } = snapshot;
    let anchor: StoredEvent | undefined;
    let tail: readonly RecordedEvent[];
    try {
      [anchor, tail] = await Promise.all([
        store.readAt(sequence),
        store.read(storyId, {
          afterSequence: sequence,
          // The first event after it is checked as the anchor's link (a version 2 envelope keeps
          // no previous hash: the store fills it in once the link holds).
          afterHash: hash,
          fromVersion: state.version + 1,
          ...(fromLeader ? { fromLeader } : {}),
        }),
      ]);
    } catch (e) {
      // A message the store cannot read after the snapshot (or at it): the read from the first
      // event meets it too, and fails as a load without a snapshot would (DATA_LOSS).
      if (!isEventReadError(e)) throw e;
      return readAll("unlinked", e);
    }
    const first = tail[0];
    const linked =
      anchor !== undefined &&
      anchor.storyId === storyId &&
      anchor.version === state.version &&
      equalBytes(anchor.envelope.hash, hash) &&
      (first === undefined ||
        (first.version === state.version + 1 &&
          (first.part ?? 0) === 0 &&
          equalBytes(first.envelope.prevHash, hash)));
    if (!linked) return readAll("unlinked");
    const base: LoadedStory = {
      state,
      measure: measureStory(state),
      sequence,
      hash,
      commands: snapshot.commands,
      snapshot: snapshot.base,
    };
    return report(apply(base, tail), "snapshot", tail.length);
  }

  /** The events of `commandId`, read where `where` (a command entry) says they lie. */
  async function commandEvents(
    storyId: StoryId,
    commandId: string,
    where: Pick<CommandEntry, "firstSequence" | "firstVersion" | "version">,
  ): Promise<RecordedEvent[]> {
    const events = await store.read(storyId, {
      afterSequence: where.firstSequence - 1,
      fromVersion: where.firstVersion,
      toVersion: where.version,
    });
    return events.filter((e) => e.envelope.commandId === commandId);
  }

  /**
   * The outcome of a command a snapshot listed, read from its events as a full read would have
   * recorded it; undefined when the stream does not hold it where the snapshot said.
   */
  async function resolve(
    storyId: StoryId,
    commandId: string,
    indexed: IndexedCommand,
  ): Promise<CommandOutcome | undefined> {
    const own = await commandEvents(storyId, commandId, indexed);
    const found = new Map<string, CommandEntry>();
    record(found, own);
    const outcome = found.get(commandId);
    return outcome === undefined ||
      isIndexed(outcome) ||
      outcome.firstVersion !== indexed.firstVersion
      ? undefined
      : derived(outcome, own);
  }

  /**
   * `seen` with its fingerprint, when it is one to derive from the command's events (FROM_EVENTS):
   * read back from the stream, where `seen` says they lie.
   */
  async function fingerprinted(
    storyId: StoryId,
    commandId: string,
    seen: CommandOutcome,
  ): Promise<CommandOutcome> {
    if (seen.fingerprint !== FROM_EVENTS) return seen;
    return derived(seen, await commandEvents(storyId, commandId, seen));
  }

  const lanes = new StoryLanes(options.laneDepth ?? 256);

  function handle(request: CommandRequest): Promise<CommandResult> {
    return lanes.run(request.storyId, () => decideAndAppend(request), request.signal);
  }

  async function decideAndAppend(request: CommandRequest): Promise<CommandResult> {
    const commandId = request.commandId ?? uuidv7();
    const canonical = canonicalJson(request.commands);
    const fingerprint = fingerprintOfCanonical(canonical);
    let story = cache.get(request.storyId) ?? (await load(request.storyId));
    for (let attempt = 1; ; attempt++) {
      request.signal?.throwIfAborted();
      const seen = story.commands.get(commandId);
      if (seen && !isIndexed(seen)) {
        const known = await fingerprinted(request.storyId, commandId, seen);
        if (known !== seen) story.commands.set(commandId, known);
        return repeated(request, commandId, fingerprint, known);
      }
      if (seen) {
        const outcome = await resolve(request.storyId, commandId, seen);
        if (outcome) {
          story.commands.set(commandId, outcome);
          return repeated(request, commandId, fingerprint, outcome);
        }
        // The snapshot listed what the stream does not hold: read the story from its first event.
        cache.delete(request.storyId);
        const events = await store.read(request.storyId, { fromLeader: true });
        story = apply(emptyStory(request.storyId), events);
        options.onColdLoad?.({
          storyId: request.storyId,
          from: "events",
          events: events.length,
          seconds: 0,
          fallback: "index",
        });
        cache.set(request.storyId, story);
        continue;
      }
      const version = story.state.version;
      if (request.expectedVersion !== undefined && request.expectedVersion !== version) {
        // The cache may be behind; decide on what the store says.
        story = await load(request.storyId, true);
        if (story.commands.has(commandId)) continue;
        if (request.expectedVersion !== story.state.version) {
          throw new ConcurrencyError(
            request.storyId,
            streamVersion(request.expectedVersion),
            story.state.version,
          );
        }
      }
      const decided = decideWithin(request.commands, story, limits);
      const { events } = decided;
      if (events.length === 0)
        return { version: story.state.version, eventIds: [], deduplicated: false };
      const started = performance.now();
      try {
        const result = await store.append(
          request.storyId,
          events.map((data) => ({ data })),
          story.state.version,
          {
            commandId,
            correlationId: request.correlationId,
            causationId: request.causationId,
            commandName: request.name,
            commandFingerprint: fingerprintBytes(fingerprint),
            fingerprintDerivable: isDerivable(events, canonical),
            principal: request.principal ?? "",
          },
        );
        options.onAppend?.((performance.now() - started) / 1000, events.length);
        const eventIds = result.events.map((e) => e.eventId);
        story = appended(story, result, decided, {
          commandId,
          name: request.name,
          fingerprint,
          eventIds,
        });
        cache.set(request.storyId, story);
        options.snapshotter?.appended(story);
        return { version: result.version, eventIds, deduplicated: result.deduplicated };
      } catch (e) {
        if (!isConcurrencyError(e)) throw e;
        // Another writer got there first. Its events follow the ones held here: read only those.
        // Nothing new means what is held no longer matches the stream (e.g. it was recreated).
        const held = story.sequence;
        story = await load(request.storyId, true);
        if (story.sequence === held) {
          cache.delete(request.storyId);
          story = await load(request.storyId);
        }
        const pinned = request.expectedVersion !== undefined;
        if (story.commands.has(commandId)) continue;
        if (pinned || attempt >= maxAttempts) {
          throw new ConcurrencyError(
            request.storyId,
            pinned ? streamVersion(request.expectedVersion as number) : version,
            story.state.version,
            { cause: e },
          );
        }
        await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
      }
    }
  }

  return { handle, cached: () => ({ stories: cache.size, events: cache.events }) };
}

/**
 * The earlier result of a command id, when the request is that command again; a request is the
 * same when its name and fingerprint are those stored with the command. A command stored without
 * them (written before they were) is taken to be the same, as every command was before: refusing
 * it would fail the retries of commands sent just before an upgrade. A fingerprint of a format this
 * release does not compute leaves the name alone to compare.
 */
function repeated(
  request: CommandRequest,
  commandId: string,
  fingerprint: string,
  seen: CommandOutcome,
): CommandResult {
  if (
    seen.name !== "" &&
    (seen.name !== request.name ||
      (isComparable(seen.fingerprint) && seen.fingerprint !== fingerprint))
  ) {
    throw new CommandIdReusedError(request.storyId, commandId, seen.name, request.name);
  }
  return { version: seen.version, eventIds: seen.eventIds, deduplicated: true };
}

function emptyStory(storyId: StoryId): LoadedStory {
  const state = initialState(storyId);
  return {
    state,
    measure: measureStory(state),
    sequence: 0,
    hash: new Uint8Array(0),
    commands: new Map(),
    snapshot: { version: 0, pages: 0, pagesDigest: new Uint8Array(0) },
  };
}

/**
 * The story after an append of the events `decided` holds. When the store appended exactly them,
 * the decided state is the story's (evolve took the same events; only the version, the same, and
 * the time of the last event, set here, were provisional): the events are not applied twice, and
 * the command is remembered from what the handler knows, not read back from the envelopes.
 * Otherwise (a re-sent append the store found stored already) they are applied as stored.
 */
function appended(
  story: LoadedStory,
  result: AppendResult,
  decided: Decided,
  command: {
    readonly commandId: string;
    readonly name: string;
    readonly fingerprint: string;
    /** The ids of `result.events`. */
    readonly eventIds: readonly string[];
  },
): LoadedStory {
  const { events } = result;
  const last = events[events.length - 1];
  if (
    result.deduplicated ||
    last === undefined ||
    events.length !== decided.events.length ||
    last.version !== decided.state.version
  ) {
    return apply(story, events);
  }
  const firstEvent = events[0] as RecordedEvent;
  if (command.commandId !== "") {
    story.commands.set(command.commandId, {
      firstVersion: firstEvent.version,
      firstSequence: Number(firstEvent.sequence),
      version: last.version,
      eventIds: command.eventIds,
      name: internedName(command.name),
      fingerprint: command.fingerprint,
    });
  }
  return {
    state: { ...decided.state, updatedAt: last.occurredAt },
    measure: decided.measure,
    sequence: Number(last.sequence),
    hash: last.envelope.hash,
    commands: story.commands,
    snapshot: story.snapshot,
  };
}

/** Folds recorded events into a loaded story, remembering which command wrote them. */
function apply(story: LoadedStory, events: readonly RecordedEvent[]): LoadedStory {
  if (events.length === 0) return story;
  let state = story.state;
  for (const event of events) state = evolve(state, event);
  record(story.commands, events);
  const measure = measureChange(
    story.state,
    state,
    events.map((e) => e.data),
    story.measure,
  );
  const last = events[events.length - 1] as RecordedEvent;
  return {
    state,
    measure,
    sequence: Number(last.sequence),
    hash: last.envelope.hash,
    commands: story.commands,
    snapshot: story.snapshot,
  };
}

/**
 * Remembers the outcome of the commands that wrote `events`, and what each command was. A command
 * a snapshot listed stays listed, now ending at `event` (a retry reads all its events).
 */
function record(commands: Map<string, CommandEntry>, events: readonly RecordedEvent[]): void {
  for (const event of events) {
    const { commandId, commandName, commandFingerprint } = event.envelope;
    if (commandId === "") continue;
    const before = commands.get(commandId);
    if (before && isIndexed(before)) {
      commands.set(commandId, { ...before, version: event.version });
      continue;
    }
    commands.set(commandId, {
      firstVersion: before?.firstVersion ?? event.version,
      firstSequence: before?.firstSequence ?? Number(event.sequence),
      version: event.version,
      eventIds: [...(before?.eventIds ?? []), event.eventId],
      // The first event of a command carries what it was.
      name: before?.name ?? internedName(commandName),
      fingerprint:
        before?.fingerprint ??
        (commandFingerprint.length === 0 &&
        event.envelope.envelopeVersion === 2 &&
        commandName !== ""
          ? FROM_EVENTS
          : fingerprintOf(commandFingerprint)),
    });
  }
}

/** Whether the events give back the request whose canonical JSON is `canonical` (commandsOf). */
function isDerivable(events: Decided["events"], canonical: string): boolean {
  const commands = commandsOf(events);
  return commands !== undefined && canonicalJson(commands) === canonical;
}

/** `outcome` with the fingerprint its command's events give, when it was one to derive. */
function derived(outcome: CommandOutcome, events: readonly RecordedEvent[]): CommandOutcome {
  if (outcome.fingerprint !== FROM_EVENTS) return outcome;
  return { ...outcome, fingerprint: fingerprintFromEvents(events.map((e) => e.data)) };
}

// Request names are few (the service's methods): a cached story keeps one string for each, not
// one per command. Bounded, in case a stream holds names of other writers.
const names = new Map<string, string>();
function internedName(name: string): string {
  const known = names.get(name);
  if (known !== undefined) return known;
  if (names.size < 64) names.set(name, name);
  return name;
}
