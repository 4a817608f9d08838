import type { EventStore, RecordedEvent } from "@ctx/event-store";
import { verifyChain } from "@ctx/event-store";
import type { LedgerEntry } from "./command-load.ts";

/** What the stream holds, read in full, and how it compares with the client's ledger. */
export interface StreamAudit {
  /** Events in the stream. */
  readonly events: number;
  /** Each story's events in version order. */
  readonly stories: ReadonlyMap<string, readonly RecordedEvent[]>;
  /** Everything that breaks a promise; empty when the stream is what the ledger says. */
  readonly problems: readonly string[];
}

const MAX_PROBLEMS = 20;

/**
 * Reads the whole stream and checks it against the ledger of acknowledged commands:
 * - every acknowledged command is in the stream exactly once: its events (one, or an atomic
 *   batch's), each of its event indexes once, in its story, ending at the version the service
 *   returned;
 * - nothing else is: every event belongs to an acknowledged command (the client never gives up
 *   on a command, so an event no ledger entry owns was stored twice or by nobody);
 * - each story's versions are 1, 2, 3 … without gaps or repeats, and its hash chain verifies.
 */
export async function auditStream(
  store: EventStore,
  ledger: readonly LedgerEntry[],
): Promise<StreamAudit> {
  const problems: string[] = [];
  const problem = (text: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(text);
  };
  const stories = new Map<string, RecordedEvent[]>();
  const byCommand = new Map<string, RecordedEvent[]>();
  let events = 0;
  for await (const event of store.readAll()) {
    events += 1;
    let story = stories.get(event.storyId);
    if (story === undefined) {
      story = [];
      stories.set(event.storyId, story);
    }
    story.push(event);
    const commandId = event.envelope.commandId;
    let command = byCommand.get(commandId);
    if (command === undefined) {
      command = [];
      byCommand.set(commandId, command);
    }
    command.push(event);
  }

  for (const [id, history] of stories) {
    history.forEach((event, i) => {
      if (event.version !== i + 1) {
        problem(`story ${id}: stream order holds version ${event.version} at place ${i + 1}`);
      }
    });
    const chain = verifyChain(history);
    if (!chain.intact)
      problem(`story ${id}: hash chain breaks at ${chain.version}: ${chain.reason}`);
  }

  const acknowledged = new Set<string>();
  for (const entry of ledger) {
    if (acknowledged.has(entry.commandId)) {
      problem(`command ${entry.commandId} acknowledged twice by the client's ledger`);
    }
    acknowledged.add(entry.commandId);
    const stored = byCommand.get(entry.commandId) ?? [];
    const indexes = stored.map((e) => e.envelope.commandEventIndex).sort((a, b) => a - b);
    const expected = Array.from({ length: entry.events }, (_, i) => i);
    if (indexes.join(",") !== expected.join(",")) {
      problem(
        `command ${entry.commandId} (${entry.events} events, acknowledged at version ${entry.version}): the stream holds event indexes [${indexes.join(",")}]`,
      );
      continue;
    }
    const last = stored[stored.length - 1] as RecordedEvent;
    if (stored.some((e) => e.storyId !== entry.storyId)) {
      problem(`command ${entry.commandId} has events outside story ${entry.storyId}`);
    }
    if (last.version !== entry.version) {
      problem(
        `command ${entry.commandId}: acknowledged at version ${entry.version}, stored ending at ${last.version}`,
      );
    }
  }
  for (const [commandId, stored] of byCommand) {
    if (!acknowledged.has(commandId)) {
      problem(
        `${stored.length} event(s) of command ${commandId} (story ${stored[0]?.storyId}) that the service never acknowledged`,
      );
    }
  }
  return { events, stories, problems };
}
