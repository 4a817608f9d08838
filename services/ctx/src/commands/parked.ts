import { storyId } from "@ctx/domain";
import { createEventStore } from "@ctx/event-store";
import { listParked, rebuildStory, removeParked } from "@ctx/projector";
import { openReadModel, type ReadModelKind } from "@ctx/projector-service";
import { table, withCtxEnv } from "../ctx-env.ts";
import { parseProjections } from "./projections.ts";

/** `ctx parked list [--projection p]`. */
export async function parkedList(
  projection: string | undefined,
  print: (line: string) => void,
): Promise<void> {
  await withCtxEnv(async (env) => {
    const parked = await listParked(env.jsm, env.parking, projection);
    if (parked.length === 0) {
      print("no parked events");
      return;
    }
    print(
      table([
        ["id", "projection", "story", "version", "event seq", "type", "parked at", "reason"],
        ...parked.map((p) => [
          p.parkedSequence,
          p.projection,
          p.storyId,
          p.version,
          p.originalSequence,
          p.eventType,
          p.parkedAt.toISOString(),
          p.reason,
        ]),
      ]),
    );
  });
}

/**
 * `ctx parked replay [--projection p] [--story S]`: rebuilds each story with parked events from the
 * stream (with today's upcasters and model code); on success its parked entries go and its stale flag
 * is cleared; on failure they stay, with the new reason printed.
 */
export async function parkedReplay(
  options: { projection?: string; story?: string },
  print: (line: string) => void,
): Promise<void> {
  const kinds = parseProjections(options.projection ?? "all");
  await withCtxEnv(async (env) => {
    const store = createEventStore(env.nc, { names: env.names });
    let failed = 0;
    for (const kind of kinds) {
      const parked = (await listParked(env.jsm, env.parking, kind)).filter(
        (p) => options.story === undefined || p.storyId === options.story,
      );
      const stories = [...new Set(parked.map((p) => p.storyId))];
      if (stories.length === 0) continue;
      const model = openReadModel(kind as ReadModelKind, env.config);
      try {
        for (const story of stories) {
          try {
            const { version } = await rebuildStory(model.projection, store, storyId(story));
            for (const p of parked.filter((x) => x.storyId === story)) {
              await removeParked(env.jsm, env.parking, p.parkedSequence);
            }
            print(
              `${kind}: story ${story} replayed up to version ${version}; its parked events are cleared`,
            );
          } catch (e) {
            failed += 1;
            print(`${kind}: story ${story} still fails: ${(e as Error).message}`);
          }
        }
      } finally {
        await model.close();
      }
    }
    if (failed > 0) process.exitCode = 1;
  });
}

/** `ctx parked discard <id...> | --all`: forgets parked events; their stories stay stale until rebuilt. */
export async function parkedDiscard(
  ids: readonly string[],
  options: { all?: boolean; projection?: string },
  print: (line: string) => void,
): Promise<void> {
  await withCtxEnv(async (env) => {
    const parked = await listParked(env.jsm, env.parking, options.projection);
    const chosen = options.all
      ? parked
      : parked.filter((p) => ids.includes(String(p.parkedSequence)));
    const unknown = ids.filter((id) => !parked.some((p) => String(p.parkedSequence) === id));
    if (unknown.length > 0) throw new Error(`no parked event with id ${unknown.join(", ")}`);
    for (const p of chosen) {
      await removeParked(env.jsm, env.parking, p.parkedSequence);
      print(
        `discarded ${p.parkedSequence} (${p.projection}, story ${p.storyId}, version ${p.version})`,
      );
    }
    if (chosen.length > 0) {
      print(
        "their stories stay marked stale until `ctx projections rebuild <projection> --story S`",
      );
    }
  });
}
