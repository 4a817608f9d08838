import {
  type ContextState,
  type EncodedContext,
  encodeContextState,
  evolveAll,
  fromContextMessage,
  initialState,
  type StoryId,
  type StreamVersion,
  streamVersion,
} from "@ctx/domain";
import { followsOn } from "@ctx/event-store";
import {
  type Projection,
  type ProjectionBatch,
  type StoryEvents,
  type StoryPosition,
  VersionConflictError,
} from "@ctx/projector";
import type { Context } from "@ctx/proto";
import type { Valkey } from "iovalkey";
import {
  checkGeneration,
  defaultGeneration,
  defaultKeyPrefix,
  type GenerationKeys,
  type KeyLayout,
  keyLayout,
  subtaskStatusNames,
  subtaskStatusSet,
  type ValkeyReadModelOptions,
} from "./key-layout.ts";
import { allScripts, checkpointScript, writeStoryScript } from "./read-model-scripts.ts";
import { asBuffer, decodeStoredStory, type StoredStory, storyFields } from "./stored-story.ts";
import { toStoreError } from "./to-store-error.ts";
import { assertFailsFast } from "./valkey-client.ts";
import { loadScripts, runScripts, type ScriptCall, type ScriptReply } from "./valkey-script.ts";

// Keys of a SCAN page and of an UNLINK when dropping a generation.
const dropPageSize = 1_000;

/**
 * The Valkey read model: each story's current context, encoded once as a context.v1.Context,
 * beside indexes of its subtasks by status and of the stories by last update.
 *
 * `apply` takes two round trips whatever the batch size: one pipeline reads every story of the
 * batch, and one pipeline writes each story with a version-guarded Lua script, then the checkpoint.
 * The caller owns the client: `close()` leaves it open.
 *
 * @throws TypeError when the client would keep calls waiting forever during an outage.
 */
export function createValkeyProjection(
  valkey: Valkey,
  options: ValkeyReadModelOptions = {},
): Projection {
  assertFailsFast(valkey);
  return new ValkeyProjection(
    valkey,
    keyLayout(options.keyPrefix ?? defaultKeyPrefix),
    options.stateCacheSize ?? 10_000,
  );
}

class ValkeyProjection implements Projection {
  readonly name = "valkey";
  readonly #valkey: Valkey;
  readonly #keys: KeyLayout;
  // The state of each story as this projection last wrote it, with its encoding (the next write of
  // the story copies the unchanged parts), by generation and story, oldest first. A story's state
  // at a version is the fold of the stream up to it, whoever wrote it, so an entry at the version a
  // batch expects is that story's state; the write script still checks the version.
  readonly #states = new Map<string, EncodedContext>();
  readonly #stateCacheSize: number;

  constructor(valkey: Valkey, keys: KeyLayout, stateCacheSize: number) {
    this.#valkey = valkey;
    this.#keys = keys;
    this.#stateCacheSize = stateCacheSize;
  }

  #remember(generation: number, encoded: EncodedContext): void {
    if (this.#stateCacheSize <= 0) return;
    const key = `${generation}\u0000${encoded.state.storyId}`;
    this.#states.delete(key);
    this.#states.set(key, encoded);
    if (this.#states.size > this.#stateCacheSize) {
      const oldest = this.#states.keys().next().value;
      if (oldest !== undefined) this.#states.delete(oldest);
    }
  }

  #forget(generation: number, storyId: StoryId): void {
    this.#states.delete(`${generation}\u0000${storyId}`);
  }

  init(): Promise<void> {
    return this.#call("loading scripts", () => loadScripts(this.#valkey, allScripts));
  }

  activeGeneration(): Promise<number> {
    return this.#call("reading the active generation", async () => {
      const stored = await this.#valkey.get(this.#keys.activeGeneration);
      return stored === null ? defaultGeneration : Number(stored);
    });
  }

  async activateGeneration(generation: number): Promise<void> {
    checkGeneration(generation);
    await this.#call("activating a generation", () =>
      this.#valkey.set(this.#keys.activeGeneration, String(generation)),
    );
  }

  checkpoint(generation: number, partition: number): Promise<number> {
    const key = this.#keys.generation(generation).checkpoint;
    return this.#call("reading a checkpoint", async () =>
      Number((await this.#valkey.hget(key, String(partition))) ?? 0),
    );
  }

  async positions(
    generation: number,
    storyIds: readonly StoryId[],
  ): Promise<Map<StoryId, StoryPosition>> {
    const keys = this.#keys.generation(generation);
    // Versions and flags only: the runtime asks for every batch, contexts would be dead weight.
    const results = await this.#call("reading positions", async () => {
      const pipeline = this.#valkey.pipeline();
      for (const id of storyIds) pipeline.hmget(keys.story(id), "version", "stale");
      return (await pipeline.exec()) ?? [];
    });
    return new Map(
      storyIds.map((id, i) => {
        const [error, fields] = results[i] ?? [new Error("no reply"), null];
        if (error) throw toStoreError(error, "reading positions");
        const [version, stale] = fields as (string | null)[];
        return [id, { version: streamVersion(Number(version ?? 0)), stale: stale === "1" }];
      }),
    );
  }

  async apply(batch: ProjectionBatch): Promise<void> {
    const keys = this.#keys.generation(batch.generation);
    const stories = batch.stories.filter((s) => s.events.length > 0);
    checkStories(stories);

    // Stories this projection wrote last at the expected version need no read.
    const befores = new Map<StoryId, ContextState>();
    const encodings = new Map<StoryId, EncodedContext>();
    for (const story of stories) {
      const cached = this.#states.get(`${batch.generation}\u0000${story.storyId}`);
      if (cached?.state.version === story.expectedVersion) {
        befores.set(story.storyId, cached.state);
        encodings.set(story.storyId, cached);
      }
    }
    const byId = new Map(stories.map((s) => [s.storyId, s]));
    const unread = stories.filter((s) => !befores.has(s.storyId)).map((s) => s.storyId);
    const stored = await this.#call("reading stories", () => this.#readStories(keys, unread));

    const conflicts: Conflict[] = [];
    unread.forEach((id, i) => {
      const current = stored[i];
      const story = byId.get(id) as StoryEvents;
      const version = current?.version ?? 0;
      if (version !== story.expectedVersion) conflicts.push({ story, version });
      else befores.set(id, stateOf(id, current));
    });
    const writes: ScriptCall[] = [];
    const written: { story: StoryEvents; encoded: EncodedContext }[] = [];
    for (const story of stories) {
      const before = befores.get(story.storyId);
      if (before === undefined) continue;
      const state = evolveAll(before, story.events);
      const encoded = encodeContextState(state, encodings.get(story.storyId));
      writes.push(this.#writeStory(keys, encoded, before));
      written.push({ story, encoded });
    }
    // Last, and checked on the server: only a batch the model holds whole moves the checkpoint.
    writes.push(this.#writeCheckpoint(keys, batch, stories));

    let replies: readonly unknown[];
    try {
      replies = await this.#call("writing stories", () => runScripts(this.#valkey, writes));
    } catch (e) {
      // Whether any of it was written is unknown: read these stories again next time.
      for (const { story } of written) this.#forget(batch.generation, story.storyId);
      throw e;
    }
    written.forEach(({ story, encoded }, i) => {
      const [held, version] = replies[i] as readonly ScriptReply[];
      if (held === 1) this.#remember(batch.generation, encoded);
      else {
        this.#forget(batch.generation, story.storyId);
        conflicts.push({ story, version: Number(String(version)) });
      }
    });
    for (const c of conflicts) this.#forget(batch.generation, c.story.storyId);
    if (conflicts.length > 0) throw conflictError(batch.generation, conflicts);
  }

  async readContext(
    generation: number,
    storyId: StoryId,
  ): Promise<
    | { readonly context: Context; readonly version: StreamVersion; readonly stale: boolean }
    | undefined
  > {
    const keys = this.#keys.generation(generation);
    const [stored] = await this.#call("reading a story", () => this.#readStories(keys, [storyId]));
    return stored && { context: stored.context, version: stored.version, stale: stored.stale };
  }

  async markStale(generation: number, storyId: StoryId, reason: string): Promise<void> {
    const keys = this.#keys.generation(generation);
    this.#forget(generation, storyId);
    await this.#call("marking a story stale", () =>
      this.#valkey
        .multi()
        .hset(keys.story(storyId), "stale", "1", "stale_reason", reason)
        .sadd(this.#keys.generations, String(generation))
        .exec(),
    );
  }

  async replaceStory(generation: number, state: ContextState): Promise<void> {
    const keys = this.#keys.generation(generation);
    const write = this.#writeStory(keys, encodeContextState(state), undefined);
    this.#forget(generation, state.storyId);
    await this.#call("replacing a story", async () => {
      await this.#valkey.sadd(this.#keys.generations, String(generation));
      await runScripts(this.#valkey, [write]);
    });
  }

  async dropGeneration(generation: number): Promise<void> {
    const { pattern } = this.#keys.generation(generation);
    for (const key of [...this.#states.keys()]) {
      if (key.startsWith(`${generation}\u0000`)) this.#states.delete(key);
    }
    await this.#call("dropping a generation", async () => {
      let cursor = "0";
      do {
        const [next, found] = await this.#valkey.scan(
          cursor,
          "MATCH",
          pattern,
          "COUNT",
          dropPageSize,
        );
        if (found.length > 0) await this.#valkey.unlink(...found);
        cursor = next;
      } while (cursor !== "0");
      // Last, so that a drop cut short is still listed, and can be run again.
      await this.#valkey.srem(this.#keys.generations, String(generation));
    });
  }

  generations(): Promise<readonly number[]> {
    return this.#call("reading generations", async () =>
      (await this.#valkey.smembers(this.#keys.generations)).map(Number).sort((a, b) => a - b),
    );
  }

  async close(): Promise<void> {
    // The caller owns the client.
  }

  /** One pipeline: the stored stories, undefined where absent. */
  async #readStories(
    keys: GenerationKeys,
    storyIds: readonly StoryId[],
  ): Promise<(StoredStory | undefined)[]> {
    if (storyIds.length === 0) return [];
    const pipeline = this.#valkey.pipeline();
    for (const id of storyIds) pipeline.hmgetBuffer(keys.story(id), ...storyFields);
    const results = (await pipeline.exec()) ?? [];
    return storyIds.map((id, i) => {
      const [error, fields] = results[i] ?? [new Error("no reply"), null];
      if (error) throw error;
      return decodeStoredStory(id, fields as (Buffer | null)[]);
    });
  }

  /** The write of a state over `before` (what the guard expects), or over anything (a replacement). */
  #writeStory(
    keys: GenerationKeys,
    encoded: EncodedContext,
    before: ContextState | undefined,
  ): ScriptCall {
    const { state } = encoded;
    const id = state.storyId;
    const moves = subtaskMoves(before, state);
    const statusKeys =
      before === undefined || moves.length > 0
        ? subtaskStatusNames.map((name) => keys.subtasks(id, name))
        : [];
    return {
      script: writeStoryScript,
      keys: [keys.story(id), keys.byUpdate, ...statusKeys],
      args: [
        before?.version ?? "",
        state.version,
        asBuffer(encoded.bytes),
        state.updatedAt?.getTime() ?? "",
        id,
        ...moves,
      ],
    };
  }

  #writeCheckpoint(
    keys: GenerationKeys,
    batch: ProjectionBatch,
    stories: readonly StoryEvents[],
  ): ScriptCall {
    return {
      script: checkpointScript,
      keys: [keys.checkpoint, this.#keys.generations, ...stories.map((s) => keys.story(s.storyId))],
      args: [
        batch.partition,
        batch.checkpoint,
        batch.generation,
        // The version each story reaches: its last event's (parts of a split event share one).
        ...stories.map((s) => s.events[s.events.length - 1]?.version ?? s.expectedVersion),
      ],
    };
  }

  async #call<T>(doing: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw toStoreError(e, doing);
    }
  }
}

interface Conflict {
  readonly story: StoryEvents;
  readonly version: number;
}

/**
 * The subtasks that change status sets from `before` to `after` (all of them for a replacement), as
 * the write script's (id, set left, set joined) triples.
 */
function subtaskMoves(before: ContextState | undefined, after: ContextState): (string | number)[] {
  if (before?.subtasks === after.subtasks) return [];
  const moves: (string | number)[] = [];
  for (const [id, subtask] of after.subtasks) {
    const was = before?.subtasks.get(id);
    const from = was === undefined ? 0 : subtaskStatusSet(was.status);
    const to = subtaskStatusSet(subtask.status);
    if (from !== to) moves.push(id, from, to);
  }
  for (const [id, subtask] of before?.subtasks ?? []) {
    const from = subtaskStatusSet(subtask.status);
    if (!after.subtasks.has(id) && from !== 0) moves.push(id, from, 0);
  }
  return moves;
}

function stateOf(storyId: StoryId, stored: StoredStory | undefined): ContextState {
  return stored === undefined
    ? initialState(storyId)
    : fromContextMessage(stored.context, stored.version, stored.updatedAt);
}

/**
 * The runtime's promise, checked before anything is written: each story once, its events its own
 * and numbered on from the expected version.
 *
 * @throws RangeError when the batch breaks it (a bug in the caller, not a poison event).
 */
function checkStories(stories: readonly StoryEvents[]): void {
  const seen = new Set<StoryId>();
  for (const { storyId, expectedVersion, events } of stories) {
    if (seen.has(storyId)) throw new RangeError(`story ${storyId} appears twice in one batch`);
    seen.add(storyId);
    let at: number = expectedVersion;
    for (const event of events) {
      if (event.storyId !== storyId || !followsOn(at, event)) {
        throw new RangeError(
          `event ${event.eventId} (story ${event.storyId}, version ${event.version}) does not follow version ${at} of story ${storyId}`,
        );
      }
      at = event.version;
    }
  }
}

function conflictError(generation: number, conflicts: readonly Conflict[]): VersionConflictError {
  const [first, ...others] = conflicts;
  if (first === undefined) throw new TypeError("no conflict to report");
  const more = others.length > 0 ? ` (and ${others.length} more stories)` : "";
  return new VersionConflictError(
    first.story.storyId,
    `story ${first.story.storyId} is at version ${first.version} in generation ${generation}, not at the expected version ${first.story.expectedVersion}${more}`,
  );
}
