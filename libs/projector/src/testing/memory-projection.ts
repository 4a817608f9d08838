import {
  type ContextState,
  evolve,
  initialState,
  type StoryId,
  type StreamVersion,
  streamVersion,
  toContextMessage,
} from "@ctx/domain";
import type { Context } from "@ctx/proto";
import { StoreUnavailableError, VersionConflictError } from "../errors.ts";
import type { Projection, ProjectionBatch, StoryPosition } from "../projection.ts";

interface Generation {
  stories: Map<StoryId, { state: ContextState; stale: boolean }>;
  checkpoints: Map<number, number>;
}

/**
 * A Projection held in memory, for tests of the runtime (it passes the same contract as the real
 * read models). `down` simulates an outage; `poison` makes the model refuse events of a given id.
 */
export class MemoryProjection implements Projection {
  readonly name: string;
  readonly generationsData = new Map<number, Generation>();
  active = 1;
  down = false;
  readonly poison = new Set<string>();
  /** Calls of init, failed ones included. */
  initCalls = 0;
  /** Every apply call's story versions, in order, to check ordering in tests. */
  readonly applied: { storyId: StoryId; version: number }[] = [];

  constructor(name = "memory") {
    this.name = name;
  }

  #gen(g: number): Generation {
    let gen = this.generationsData.get(g);
    if (!gen) {
      gen = { stories: new Map(), checkpoints: new Map() };
      this.generationsData.set(g, gen);
    }
    return gen;
  }

  #check(): void {
    if (this.down) throw new StoreUnavailableError("memory projection is down");
  }

  async init(): Promise<void> {
    this.initCalls += 1;
    this.#check();
  }

  async activeGeneration(): Promise<number> {
    this.#check();
    return this.active;
  }

  async activateGeneration(generation: number): Promise<void> {
    this.active = generation;
  }

  async checkpoint(generation: number, partition: number): Promise<number> {
    this.#check();
    return this.generationsData.get(generation)?.checkpoints.get(partition) ?? 0;
  }

  async positions(
    generation: number,
    storyIds: readonly StoryId[],
  ): Promise<Map<StoryId, StoryPosition>> {
    this.#check();
    const gen = this.generationsData.get(generation);
    return new Map(
      storyIds.map((id) => {
        const s = gen?.stories.get(id);
        return [id, { version: s?.state.version ?? streamVersion(0), stale: s?.stale ?? false }];
      }),
    );
  }

  async apply(batch: ProjectionBatch): Promise<void> {
    this.#check();
    const gen = this.#gen(batch.generation);
    for (const story of batch.stories) {
      const current = gen.stories.get(story.storyId);
      const version = current?.state.version ?? 0;
      if (version !== story.expectedVersion) {
        throw new VersionConflictError(
          story.storyId,
          `holds ${version}, not ${story.expectedVersion}`,
        );
      }
      let state = current?.state ?? initialState(story.storyId);
      for (const event of story.events) {
        if (this.poison.has(event.eventId)) throw new Error(`cannot apply event ${event.eventId}`);
        state = evolve(state, event);
      }
      gen.stories.set(story.storyId, { state, stale: current?.stale ?? false });
      for (const event of story.events)
        this.applied.push({ storyId: story.storyId, version: event.version });
    }
    const cp = gen.checkpoints.get(batch.partition) ?? 0;
    gen.checkpoints.set(batch.partition, Math.max(cp, batch.checkpoint));
  }

  async readContext(
    generation: number,
    storyId: StoryId,
  ): Promise<{ context: Context; version: StreamVersion; stale: boolean } | undefined> {
    this.#check();
    const s = this.generationsData.get(generation)?.stories.get(storyId);
    return s
      ? { context: toContextMessage(s.state), version: s.state.version, stale: s.stale }
      : undefined;
  }

  async markStale(generation: number, storyId: StoryId): Promise<void> {
    this.#check();
    const gen = this.#gen(generation);
    const s = gen.stories.get(storyId);
    gen.stories.set(storyId, { state: s?.state ?? initialState(storyId), stale: true });
  }

  async replaceStory(generation: number, state: ContextState): Promise<void> {
    this.#check();
    const held = this.#gen(generation).stories.get(state.storyId);
    if (held && held.state.version > state.version) return;
    this.#gen(generation).stories.set(state.storyId, { state, stale: false });
  }

  async dropGeneration(generation: number): Promise<void> {
    this.generationsData.delete(generation);
  }

  async generations(): Promise<readonly number[]> {
    return [...this.generationsData.keys()].sort((a, b) => a - b);
  }

  async close(): Promise<void> {}
}
