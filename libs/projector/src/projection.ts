import type { ContextState, StoryId, StreamVersion } from "@ctx/domain";
import type { RecordedEvent } from "@ctx/event-store";
import type { Context } from "@ctx/proto";

/** What a read model holds of one story. */
export interface StoryPosition {
  /** The last event version applied; 0 when the model has nothing of the story. */
  readonly version: StreamVersion;
  /** The story skipped a parked event: its model data must not be served until it is rebuilt. */
  readonly stale: boolean;
}

/** Events of one story to apply, starting exactly at the model's version + 1, in version order. */
export interface StoryEvents {
  readonly storyId: StoryId;
  /** The version the model holds now; the write must check it (version guard). */
  readonly expectedVersion: StreamVersion;
  readonly events: readonly RecordedEvent[];
}

/** One write to a read model: several stories, and where the partition stands afterwards. */
export interface ProjectionBatch {
  readonly generation: number;
  readonly partition: number;
  /**
   * Stream sequence up to which every event of the partition is applied once this batch is:
   * stored with the batch, it is where consumers resume (a restored backup resumes correctly).
   */
  readonly checkpoint: number;
  readonly stories: readonly StoryEvents[];
}

/**
 * A read model the projector runtime keeps up to date (Neo4j, Valkey, ...). Its writes are idempotent
 * and version-guarded: the runtime only hands it the next events of each story, and the model checks
 * the guard again inside the write, throwing VersionConflictError when it does not hold.
 *
 * Errors: StoreUnavailableError for an outage (the runtime backs off and retries, acking nothing);
 * VersionConflictError (the runtime re-reads positions and retries); anything else is taken as "this
 * batch cannot be applied" and the runtime narrows it down to the poison event, which is parked.
 */
export interface Projection {
  /** Short name: `neo4j`, `valkey`. Names consumers, leases and parked entries. */
  readonly name: string;
  /**
   * How many batches the store takes well at once; absent: as many as there are partitions. A
   * store that works on each transaction with threads of its own (Neo4j) does more with a few large
   * batches than with one per partition, and the batches of waiting partitions grow meanwhile.
   */
  readonly writeConcurrency?: number;
  /** Creates constraints, indexes, scripts. Idempotent. */
  init(): Promise<void>;
  /** The generation readers use, and live projectors write to. */
  activeGeneration(): Promise<number>;
  /** Makes `generation` the one readers use (atomically). */
  activateGeneration(generation: number): Promise<void>;
  /** The stored checkpoint of a partition in a generation (0: nothing applied). */
  checkpoint(generation: number, partition: number): Promise<number>;
  /** Where the model stands for each story (absent stories: version 0, not stale). */
  positions(generation: number, storyIds: readonly StoryId[]): Promise<Map<StoryId, StoryPosition>>;
  apply(batch: ProjectionBatch): Promise<void>;
  /**
   * The story as the model holds it, in the shape of the domain's Context message, with its version:
   * what readers serve, and what tests compare with the fold of the stream.
   */
  readContext(
    generation: number,
    storyId: StoryId,
  ): Promise<
    | { readonly context: Context; readonly version: StreamVersion; readonly stale: boolean }
    | undefined
  >;
  /** Flags a story whose event was parked, so readers fall back to the event stream. */
  markStale(generation: number, storyId: StoryId, reason: string): Promise<void>;
  /**
   * Replaces a story's data with its full state (story rebuilds, parked replays) and clears its stale
   * flag — unless the model already holds a newer version (a live projector got there first): a
   * replacement never takes a story back in time.
   */
  replaceStory(generation: number, state: ContextState): Promise<void>;
  /** Deletes everything of a generation (after a rebuild switched readers to a newer one). */
  dropGeneration(generation: number): Promise<void>;
  /** Generations that have data (for status and cleanup). */
  generations(): Promise<readonly number[]>;
  close(): Promise<void>;
}
