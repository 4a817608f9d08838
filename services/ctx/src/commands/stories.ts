import { userInfo } from "node:os";
import { storyId } from "@ctx/domain";
import { createEventStore, type MessageVerdict } from "@ctx/event-store";
import { listParked, removeParked } from "@ctx/projector";
import { table, withCtxEnv } from "../ctx-env.ts";

const describe = (m: MessageVerdict) =>
  m.status === "event"
    ? "event"
    : m.status === "set-aside"
      ? `SET ASIDE${m.version === 0 ? " (no version)" : ""}: ${m.problem ?? ""}`
      : `UNREADABLE: ${m.problem ?? ""}`;

/**
 * `ctx stories check --story S`: every stored message of a story, in stream order, as readers take
 * it: an event, a message set aside, or one no reader can read and why. Exits 1 when the story
 * holds a message no reader can read (what `ctx stories repair` is for).
 */
export async function storiesCheck(
  options: { story: string },
  print: (line: string) => void,
): Promise<void> {
  await withCtxEnv(async ({ nc, names }) => {
    const store = createEventStore(nc, { names });
    const verdicts = await store.examine(storyId(options.story));
    print(
      table([
        ["stream seq", "version", "type", "read as"],
        ...verdicts.map((m) => [m.sequence, m.version || "-", m.eventType, describe(m)]),
      ]),
    );
    const unreadable = verdicts.filter((m) => m.status === "unreadable");
    if (unreadable.length === 0) {
      print(`${options.story}: ${verdicts.length} messages, every one readable or set aside`);
      return;
    }
    print(
      `${options.story}: ${unreadable.length} message(s) no reader can read; the story is blocked until they are set aside:`,
    );
    print(
      `  ctx stories repair --story ${options.story} ${unreadable.map((m) => `--sequence ${m.sequence}`).join(" ")} --reason "…"`,
    );
    process.exitCode = 1;
  });
}

/**
 * `ctx stories repair --story S --sequence N [--sequence M …] --reason "…" [--operator name]`:
 * sets aside the story's messages no reader can read, by appending one EventsSetAside event to the
 * story (the stream records who, why, which messages and the SHA-256 of their bytes), so that
 * reads and commands work again. Projectors rebuild the story when the event reaches them; the
 * parked entries of those messages are cleared, the stream now says what became of them.
 */
export async function storiesRepair(
  options: { story: string; sequence: string[]; reason: string; operator?: string },
  print: (line: string) => void,
): Promise<void> {
  const sequences = options.sequence.map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 1) {
      throw new RangeError(`--sequence ${s}: expected a stream sequence (a positive integer)`);
    }
    return n;
  });
  await withCtxEnv(async ({ nc, jsm, names, parking }) => {
    const store = createEventStore(nc, { names });
    const id = storyId(options.story);
    const { event, added } = await store.setAside(id, {
      sequences,
      reason: options.reason,
      operator: options.operator ?? operatorName(),
    });
    for (const m of added) {
      const held = m.version === 0 ? "held no version" : `version ${m.version}`;
      print(`set aside stream message ${m.sequence} (${held}): ${m.problem}`);
    }
    print(
      `${options.story}: recorded as version ${event.version} (EventsSetAside, stream message ${event.sequence}); reads and commands work again`,
    );
    const parked = (await listParked(jsm, parking)).filter(
      (p) => p.storyId === options.story && sequences.includes(p.originalSequence),
    );
    for (const p of parked) {
      await removeParked(jsm, parking, p.parkedSequence);
      print(
        `cleared parked entry ${p.parkedSequence} (${p.projection}, stream message ${p.originalSequence})`,
      );
    }
  });
}

function operatorName(): string {
  try {
    return userInfo().username;
  } catch {
    return "unknown";
  }
}
