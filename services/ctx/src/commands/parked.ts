import { storyId } from "@ctx/domain";
import { createEventStore } from "@ctx/event-store";
import { listParked, type ParkedEvent, rebuildStory, removeParked } from "@ctx/projector";
import { openReadModel, type ReadModelKind } from "@ctx/projector-service";
import { table, type View } from "../cli/output.ts";
import { withCtxEnv } from "../ctx-env.ts";
import { parseProjections } from "./projections.ts";

/** A parked event as `ctx parked list` shows it; `id` is what replay and discard take. */
export interface ParkedEntry {
  readonly id: number;
  readonly projection: string;
  readonly story: string;
  readonly version: number;
  readonly eventSequence: number;
  readonly type: string;
  readonly parkedAt: string;
  readonly reason: string;
}

const entry = (p: ParkedEvent): ParkedEntry => ({
  id: p.parkedSequence,
  projection: p.projection,
  story: p.storyId,
  version: p.version,
  eventSequence: p.originalSequence,
  type: p.eventType,
  parkedAt: p.parkedAt.toISOString(),
  reason: p.reason,
});

export interface ParkedListing {
  readonly parked: readonly ParkedEntry[];
}

export const parkedListView: View<ParkedListing> = {
  text: ({ parked }) =>
    parked.length === 0
      ? ["no parked events"]
      : [
          table([
            ["id", "projection", "story", "version", "event seq", "type", "parked at", "reason"],
            ...parked.map((p) => [
              p.id,
              p.projection,
              p.story,
              p.version,
              p.eventSequence,
              p.type,
              p.parkedAt,
              p.reason,
            ]),
          ]),
        ],
};

/** `ctx parked list [--projection p]`. */
export async function parkedList(projection: string | undefined): Promise<ParkedListing> {
  return await withCtxEnv(async (env) => ({
    parked: (await listParked(env.jsm, env.parking, projection)).map(entry),
  }));
}

/** A story `ctx parked replay` rebuilt (its parked entries cleared), or one that still fails. */
export type ReplayedStory =
  | { readonly projection: ReadModelKind; readonly story: string; readonly version: number }
  | { readonly projection: ReadModelKind; readonly story: string; readonly error: string };

export interface ParkedReplay {
  readonly stories: readonly ReplayedStory[];
}

export const parkedReplayView: View<ParkedReplay> = {
  text: ({ stories }) =>
    stories.map((s) =>
      "error" in s
        ? `${s.projection}: story ${s.story} still fails: ${s.error}`
        : `${s.projection}: story ${s.story} replayed up to version ${s.version}; its parked events are cleared`,
    ),
  exitCode: ({ stories }) => (stories.some((s) => "error" in s) ? 1 : 0),
};

/**
 * `ctx parked replay [--projection p] [--story S]`: rebuilds each story with parked events from the
 * stream (with today's upcasters and model code); on success its parked entries go and its stale flag
 * is cleared; on failure they stay, with the new reason reported (exit code 1).
 */
export async function parkedReplay(options: {
  projection?: string;
  story?: string;
}): Promise<ParkedReplay> {
  const kinds = parseProjections(options.projection ?? "all");
  return await withCtxEnv(async (env) => {
    const store = createEventStore(env.nc, { names: env.names });
    const replayed: ReplayedStory[] = [];
    for (const kind of kinds) {
      const parked = (await listParked(env.jsm, env.parking, kind)).filter(
        (p) => options.story === undefined || p.storyId === options.story,
      );
      const stories = [...new Set(parked.map((p) => p.storyId))];
      if (stories.length === 0) continue;
      const model = openReadModel(kind, env.config);
      try {
        for (const story of stories) {
          try {
            const { version } = await rebuildStory(model.projection, store, storyId(story));
            for (const p of parked.filter((x) => x.storyId === story)) {
              await removeParked(env.jsm, env.parking, p.parkedSequence);
            }
            replayed.push({ projection: kind, story, version });
          } catch (e) {
            replayed.push({ projection: kind, story, error: (e as Error).message });
          }
        }
      } finally {
        await model.close();
      }
    }
    return { stories: replayed };
  });
}

export interface ParkedDiscard {
  readonly discarded: readonly ParkedEntry[];
}

export const parkedDiscardView: View<ParkedDiscard> = {
  text: ({ discarded }) => [
    ...discarded.map(
      (p) => `discarded ${p.id} (${p.projection}, story ${p.story}, version ${p.version})`,
    ),
    ...(discarded.length > 0
      ? ["their stories stay marked stale until `ctx projections rebuild <projection> --story S`"]
      : []),
  ],
};

/** `ctx parked discard <id...> | --all`: forgets parked events; their stories stay stale until rebuilt. */
export async function parkedDiscard(
  ids: readonly number[],
  options: { all?: boolean; projection?: string },
): Promise<ParkedDiscard> {
  return await withCtxEnv(async (env) => {
    const parked = await listParked(env.jsm, env.parking, options.projection);
    const chosen = options.all ? parked : parked.filter((p) => ids.includes(p.parkedSequence));
    const unknown = ids.filter((id) => !parked.some((p) => p.parkedSequence === id));
    if (unknown.length > 0) throw new Error(`no parked event with id ${unknown.join(", ")}`);
    for (const p of chosen) await removeParked(env.jsm, env.parking, p.parkedSequence);
    return { discarded: chosen.map(entry) };
  });
}
