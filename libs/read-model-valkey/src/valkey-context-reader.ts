import { untilAborted } from "@ctx/config";
import { type StoryId, storyId } from "@ctx/domain";
import type { SubtaskStatus } from "@ctx/proto";
import type { Valkey } from "iovalkey";
import {
  defaultGeneration,
  defaultKeyPrefix,
  type KeyLayout,
  keyLayout,
  keySuffix,
  subtaskStatusName,
  type ValkeyReadModelOptions,
} from "./key-layout.ts";
import { readActiveScript } from "./read-model-scripts.ts";
import { decodeStoredStory, type StoredStory, storyFields } from "./stored-story.ts";
import { toStoreError } from "./to-store-error.ts";
import { assertFailsFast } from "./valkey-client.ts";
import { runScripts, type ScriptReply } from "./valkey-script.ts";

/** A story whose last update is at or after some time. */
export interface StoryUpdate {
  readonly storyId: StoryId;
  /** `occurredAt` of the story's last event. */
  readonly updatedAt: Date;
}

/** How a read may be cut short. */
export interface ValkeyReadOptions {
  /**
   * Aborting it rejects the read with the signal's reason at once; a read not sent yet is not
   * sent. (A command Valkey has is answered anyway: one key's read, bounded by the client's
   * command timeout; the answer is dropped.)
   */
  readonly signal?: AbortSignal;
}

/**
 * What the query service serves from the Valkey read model. Every call reads the active generation
 * and its data in one atomic step, so a generation switch (a finished rebuild) never mixes two
 * generations in one answer.
 *
 * Errors: StoreUnavailableError (from `@ctx/projector`) when Valkey cannot be reached; the signal's
 * reason when it is aborted.
 */
export interface ValkeyContextReader {
  /** The story's current context; undefined when the model does not have it. */
  getContext(storyId: StoryId, options?: ValkeyReadOptions): Promise<StoredStory | undefined>;
  /** Ids of the story's subtasks in a status, sorted. */
  subtasksByStatus(storyId: StoryId, status: SubtaskStatus): Promise<string[]>;
  /** Stories last updated at or after `since`, newest first, at most `limit`. */
  storiesUpdatedSince(since: Date, limit: number): Promise<StoryUpdate[]>;
}

/**
 * A reader of the active generation; the caller owns the client.
 *
 * @throws TypeError when the client would keep calls waiting forever during an outage.
 */
export function createValkeyContextReader(
  valkey: Valkey,
  options: ValkeyReadModelOptions = {},
): ValkeyContextReader {
  assertFailsFast(valkey);
  return new ValkeyContextReaderImpl(valkey, keyLayout(options.keyPrefix ?? defaultKeyPrefix));
}

class ValkeyContextReaderImpl implements ValkeyContextReader {
  readonly #valkey: Valkey;
  readonly #keys: KeyLayout;

  constructor(valkey: Valkey, keys: KeyLayout) {
    this.#valkey = valkey;
    this.#keys = keys;
  }

  async getContext(
    storyId: StoryId,
    options: ValkeyReadOptions = {},
  ): Promise<StoredStory | undefined> {
    const { signal } = options;
    signal?.throwIfAborted();
    const read = this.#readActive(keySuffix.story(storyId), "HMGET", ...storyFields);
    const fields = signal ? await untilAborted(read, signal) : await read;
    return decodeStoredStory(storyId, fields as (Buffer | null)[]);
  }

  async subtasksByStatus(storyId: StoryId, status: SubtaskStatus): Promise<string[]> {
    const name = subtaskStatusName(status);
    if (name === undefined) return [];
    const members = await this.#readActive(keySuffix.subtasks(storyId, name), "SMEMBERS");
    return (members as Buffer[]).map(String).sort();
  }

  async storiesUpdatedSince(since: Date, limit: number): Promise<StoryUpdate[]> {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`invalid limit ${limit}: expected a non-negative safe integer`);
    }
    if (limit === 0) return [];
    const flat = (await this.#readActive(
      keySuffix.byUpdate,
      "ZRANGE",
      "+inf",
      since.getTime(),
      "BYSCORE",
      "REV",
      "LIMIT",
      0,
      limit,
      "WITHSCORES",
    )) as Buffer[];
    const updates: StoryUpdate[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      updates.push({
        storyId: storyId(String(flat[i])),
        updatedAt: new Date(Number(String(flat[i + 1]))),
      });
    }
    return updates;
  }

  /** Runs a read command on a key of the active generation, given by what follows the generation. */
  async #readActive(
    suffix: string,
    command: string,
    ...args: (string | number)[]
  ): Promise<readonly ScriptReply[]> {
    try {
      const [reply] = await runScripts(this.#valkey, [
        {
          script: readActiveScript,
          keys: [this.#keys.activeGeneration],
          args: [this.#keys.generationStem, suffix, defaultGeneration, command, ...args],
        },
      ]);
      const [, result] = reply as readonly ScriptReply[];
      return result as readonly ScriptReply[];
    } catch (e) {
      throw toStoreError(e, `reading ${command} of the active generation`);
    }
  }
}
