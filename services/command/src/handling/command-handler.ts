import {
  type Command,
  decideAll,
  evolve,
  initialState,
  type StoryId,
  type StreamVersion,
  streamVersion,
} from "@ctx/domain";
import {
  ConcurrencyError,
  type EventStore,
  isConcurrencyError,
  type RecordedEvent,
} from "@ctx/event-store";
import { uuidv7 } from "@ctx/ids";
import { defaultCacheLimits, type LoadedStory, StoryCache } from "./story-cache.ts";

export interface CommandRequest {
  readonly storyId: StoryId;
  readonly commands: readonly Command[];
  /** When set, the story must be at exactly this version (0: must not exist), or ConcurrencyError. */
  readonly expectedVersion?: number;
  /** Idempotency key, scoped to the story; generated when absent. */
  readonly commandId?: string;
  readonly correlationId: string;
  readonly causationId: string;
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
  /** Called with the time an append took, for metrics. */
  readonly onAppend?: (seconds: number, events: number) => void;
}

export interface CommandHandler {
  handle(request: CommandRequest): Promise<CommandResult>;
  /** What the story cache holds now (for metrics). */
  cached(): { readonly stories: number; readonly events: number };
}

/**
 * Runs commands: load the story (cache, else the event store), decide, append with the story's version
 * as the server-checked expectation. A lost race reloads and decides again, unless the caller pinned
 * an expected version, which then fails with ConcurrencyError.
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

  async function load(storyId: StoryId): Promise<LoadedStory> {
    const cached = cache.get(storyId);
    const base: LoadedStory = cached ?? {
      state: initialState(storyId),
      sequence: 0,
      commands: new Map(),
    };
    const events = await store.read(storyId, {
      afterSequence: base.sequence,
      fromVersion: base.state.version + 1,
    });
    const story = apply(base, events);
    cache.set(storyId, story);
    return story;
  }

  async function handle(request: CommandRequest): Promise<CommandResult> {
    const commandId = request.commandId ?? uuidv7();
    let story = cache.get(request.storyId) ?? (await load(request.storyId));
    for (let attempt = 1; ; attempt++) {
      request.signal?.throwIfAborted();
      const seen = story.commands.get(commandId);
      if (seen) return { ...seen, deduplicated: true };
      const version = story.state.version;
      if (request.expectedVersion !== undefined && request.expectedVersion !== version) {
        // The cache may be behind; decide on what the store says.
        story = await load(request.storyId);
        if (story.commands.has(commandId)) continue;
        if (request.expectedVersion !== story.state.version) {
          throw new ConcurrencyError(
            request.storyId,
            streamVersion(request.expectedVersion),
            story.state.version,
          );
        }
      }
      const events = decideAll(request.commands, story.state);
      if (events.length === 0)
        return { version: story.state.version, eventIds: [], deduplicated: false };
      const started = performance.now();
      try {
        const result = await store.append(
          request.storyId,
          events.map((data) => ({ data })),
          story.state.version,
          { commandId, correlationId: request.correlationId, causationId: request.causationId },
        );
        options.onAppend?.((performance.now() - started) / 1000, events.length);
        story = apply(story, result.events);
        cache.set(request.storyId, story);
        const eventIds = result.events.map((e) => e.eventId);
        return { version: result.version, eventIds, deduplicated: result.deduplicated };
      } catch (e) {
        if (!isConcurrencyError(e)) throw e;
        // Another writer got there first. Its events follow the ones held here: read only those.
        // Nothing new means what is held no longer matches the stream (e.g. it was recreated).
        const held = story.sequence;
        story = await load(request.storyId);
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

/** Folds recorded events into a loaded story, remembering which command wrote them. */
function apply(story: LoadedStory, events: readonly RecordedEvent[]): LoadedStory {
  if (events.length === 0) return story;
  let state = story.state;
  const { commands } = story;
  for (const event of events) {
    state = evolve(state, event);
    const commandId = event.envelope.commandId;
    if (commandId !== "") {
      const before = commands.get(commandId);
      commands.set(commandId, {
        version: event.version,
        eventIds: [...(before?.eventIds ?? []), event.eventId],
      });
    }
  }
  const last = events[events.length - 1] as RecordedEvent;
  return { state, sequence: Number(last.sequence), commands };
}
