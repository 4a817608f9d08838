import {
  type Command,
  type ContextEventData,
  type ContextState,
  decide,
  evolveAll,
  initialState,
  isDomainError,
  storyId,
  streamVersion,
} from "@ctx/domain";
import { SubtaskStatus } from "@ctx/proto";
import fc from "fast-check";

const subtaskPool = ["a", "b", "c", "d", "e", "f"];
const decisionPool = ["d1", "d2", "d3", "d4"];
const statuses = [
  SubtaskStatus.TODO,
  SubtaskStatus.IN_PROGRESS,
  SubtaskStatus.BLOCKED,
  SubtaskStatus.DONE,
] as const;
const titles = ["", "x", "Ünïcode ✓", "a longer piece of text"];

/** The ids whose bit is set in `bits`, at most three. */
const someOf = (ids: readonly string[], bits: number) =>
  ids.filter((_, i) => (bits >> i) & 1).slice(0, 3);

/** Every command worth trying on a state; `n` varies titles, assignees and referenced ids. */
function candidates(state: ContextState, n: number): Command[] {
  const subtasks = [...state.subtasks.keys()];
  const decisions = [...state.decisions.keys()];
  const title = titles[n % titles.length] ?? "";
  const out: Command[] = [];
  const newSubtask = subtaskPool.find((id) => !state.subtasks.has(id));
  if (newSubtask !== undefined) {
    out.push({ type: "AddSubtask", subtaskId: newSubtask, title, dependsOn: someOf(subtasks, n) });
  }
  const newDecision = decisionPool.find((id) => !state.decisions.has(id));
  if (newDecision !== undefined) {
    out.push({
      type: "AddDecision",
      decisionId: newDecision,
      title,
      rationale: "because",
      madeBy: n % 2 === 0 ? "ada" : "bo",
      alternatives: n % 3 === 0 ? [] : ["other"],
      affectsSubtaskIds: someOf(subtasks, n >> 4),
    });
  }
  for (const subtaskId of subtasks) {
    for (const status of statuses) out.push({ type: "UpdateSubtask", subtaskId, status });
    out.push({ type: "UpdateSubtask", subtaskId, assignee: n % 2 === 0 ? "ada" : "" });
    for (const other of subtasks) {
      out.push({ type: "AddSubtaskDependency", subtaskId, dependsOnSubtaskId: other });
    }
  }
  for (const decisionId of decisions) {
    for (const by of decisions) {
      out.push({ type: "SupersedeDecision", decisionId, supersededByDecisionId: by });
    }
  }
  return out;
}

/** The events of a command the state accepts, or undefined when it refuses it or it changes nothing. */
function accepted(command: Command, state: ContextState): readonly ContextEventData[] | undefined {
  try {
    const data = decide(command, state);
    return data.length > 0 ? data : undefined;
  } catch (e) {
    if (isDomainError(e)) return undefined;
    throw e;
  }
}

function evolveWith(state: ContextState, data: readonly ContextEventData[]): ContextState {
  return evolveAll(
    state,
    data.map((d, i) => ({
      version: streamVersion(state.version + 1 + i),
      occurredAt: new Date(0),
      data: d,
    })),
  );
}

export interface HistoryOptions {
  /** Events after the creation (default 1 to 40). */
  readonly minEvents?: number;
  readonly maxEvents?: number;
}

/**
 * Valid story histories, as the command service would append them: each element is one append (one
 * to three events stored atomically together). The first creates the story; every other event is
 * one a state-aware pick among the commands `decide` accepts at that point (so histories are as long
 * as asked, and reach deep states: dependency chains, supersessions, every subtask status); about a
 * third of the histories end archived.
 */
export function storyHistories(
  options: HistoryOptions = {},
): fc.Arbitrary<readonly (readonly ContextEventData[])[]> {
  return fc
    .record({
      picks: fc.array(fc.nat(), {
        minLength: options.minEvents ?? 1,
        maxLength: options.maxEvents ?? 40,
        size: "max",
      }),
      groupSizes: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 8 }),
      archive: fc.boolean(),
      title: fc.constantFrom(...titles),
    })
    .map(({ picks, groupSizes, archive, title }) => {
      let state = initialState(storyId("generated"));
      const all: ContextEventData[] = [];
      const take = (command: Command) => {
        const data = accepted(command, state);
        if (data === undefined) return false;
        all.push(...data);
        state = evolveWith(state, data);
        return true;
      };
      take({ type: "CreateContext", title, description: "generated" });
      for (const n of picks) {
        const options = candidates(state, n).filter((c) => accepted(c, state) !== undefined);
        const choice = options[n % Math.max(1, options.length)];
        if (choice !== undefined) take(choice);
      }
      if (archive) take({ type: "ArchiveContext", reason: "done" });
      // Cut the history into appends of one to three events.
      const appends: ContextEventData[][] = [];
      for (let at = 0, g = 0; at < all.length; g++) {
        const size = groupSizes[g % groupSizes.length] ?? 1;
        appends.push(all.slice(at, at + size));
        at += size;
      }
      return appends;
    });
}
