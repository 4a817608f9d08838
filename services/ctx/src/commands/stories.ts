import { storyId } from "@ctx/domain";
import { createEventStore, type MessageVerdict } from "@ctx/event-store";
import { listParked, removeParked } from "@ctx/projector";
import { table, type View } from "../cli/output.ts";
import { ctxSigningKey, withCtxEnv } from "../ctx-env.ts";
import { operatorName } from "../operations-log.ts";

/** A stored message of a story as readers take it (`ctx stories check`). */
export interface CheckedMessage {
  readonly sequence: number;
  /** 0: the message holds no version of the story. */
  readonly version: number;
  readonly type: string;
  readonly status: MessageVerdict["status"];
  readonly problem?: string;
}

export interface StoryCheck {
  readonly story: string;
  readonly messages: readonly CheckedMessage[];
  /** The stream sequences no reader can read (exit code 1; `ctx stories repair` sets them aside). */
  readonly unreadable: readonly number[];
}

const describe = (m: CheckedMessage) =>
  m.status === "event"
    ? "event"
    : m.status === "set-aside"
      ? `SET ASIDE${m.version === 0 ? " (no version)" : ""}: ${m.problem ?? ""}`
      : `UNREADABLE: ${m.problem ?? ""}`;

export const storyCheckView: View<StoryCheck> = {
  text: ({ story, messages, unreadable }) => [
    table([
      ["stream seq", "version", "type", "read as"],
      ...messages.map((m) => [m.sequence, m.version || "-", m.type, describe(m)]),
    ]),
    ...(unreadable.length === 0
      ? [`${story}: ${messages.length} messages, every one readable or set aside`]
      : [
          `${story}: ${unreadable.length} message(s) no reader can read; the story is blocked until they are set aside:`,
          `  ctx stories repair --story ${story} ${unreadable.map((s) => `--sequence ${s}`).join(" ")} --reason "…"`,
        ]),
  ],
  exitCode: ({ unreadable }) => (unreadable.length > 0 ? 1 : 0),
};

/**
 * `ctx stories check --story S`: every stored message of a story, in stream order, as readers take
 * it: an event, a message set aside, or one no reader can read and why. Exits 1 when the story
 * holds a message no reader can read (what `ctx stories repair` is for).
 */
export async function storiesCheck(options: { story: string }): Promise<StoryCheck> {
  return await withCtxEnv(async ({ nc, names }) => {
    const store = createEventStore(nc, { names });
    const verdicts = await store.examine(storyId(options.story));
    return {
      story: options.story,
      messages: verdicts.map((m) => ({
        sequence: m.sequence,
        version: m.version,
        type: m.eventType,
        status: m.status,
        ...(m.problem === undefined ? {} : { problem: m.problem }),
      })),
      unreadable: verdicts.filter((m) => m.status === "unreadable").map((m) => m.sequence),
    };
  });
}

export interface StoryRepair {
  readonly story: string;
  readonly setAside: readonly { sequence: number; version: number; problem: string }[];
  /** The EventsSetAside event that records the repair. */
  readonly recorded: { readonly version: number; readonly sequence: number };
  readonly clearedParked: readonly { id: number; projection: string; eventSequence: number }[];
}

export const storyRepairView: View<StoryRepair> = {
  text: ({ story, setAside, recorded, clearedParked }) => [
    ...setAside.map(
      (m) =>
        `set aside stream message ${m.sequence} (${m.version === 0 ? "held no version" : `version ${m.version}`}): ${m.problem}`,
    ),
    `${story}: recorded as version ${recorded.version} (EventsSetAside, stream message ${recorded.sequence}); reads and commands work again`,
    ...clearedParked.map(
      (p) => `cleared parked entry ${p.id} (${p.projection}, stream message ${p.eventSequence})`,
    ),
  ],
};

/**
 * `ctx stories repair --story S --sequence N [--sequence M …] --reason "…" [--operator name]`:
 * sets aside the story's messages no reader can read, by appending one EventsSetAside event to the
 * story (the stream records who, why, which messages and the SHA-256 of their bytes), so that
 * reads and commands work again. Projectors rebuild the story when the event reaches them; the
 * parked entries of those messages are cleared, the stream now says what became of them.
 */
export async function storiesRepair(options: {
  story: string;
  sequence: readonly number[];
  reason: string;
  operator?: string;
}): Promise<StoryRepair> {
  const sequences = options.sequence;
  return await withCtxEnv(async ({ nc, jsm, names, parking, config }) => {
    // Signed like the command service's events when ctx is given its key (docs/AUDIT.md).
    const signingKey = ctxSigningKey(config);
    const store = createEventStore(nc, {
      names,
      envelopeVersion: config.EVENT_ENVELOPE_VERSION,
      ...(signingKey ? { signingKey } : {}),
    });
    const id = storyId(options.story);
    const { event, added } = await store.setAside(id, {
      sequences: [...sequences],
      reason: options.reason,
      operator: operatorName(options.operator),
    });
    const parked = (await listParked(jsm, parking)).filter(
      (p) => p.storyId === options.story && sequences.includes(p.originalSequence),
    );
    for (const p of parked) await removeParked(jsm, parking, p.parkedSequence);
    return {
      story: options.story,
      setAside: added.map((m) => ({
        sequence: m.sequence,
        version: m.version,
        problem: m.problem,
      })),
      recorded: { version: event.version, sequence: event.sequence },
      clearedParked: parked.map((p) => ({
        id: p.parkedSequence,
        projection: p.projection,
        eventSequence: p.originalSequence,
      })),
    };
  });
}
