import type { DescMessage } from "@bufbuild/protobuf";
import { ContextEventType, currentSchemaVersion } from "@ctx/domain";
import {
  type DecisionAdded,
  DecisionAddedSchema,
  legacyV1,
  SubtaskStatus,
  type SubtaskUpdated,
  SubtaskUpdatedSchema,
} from "@ctx/proto";
import { createUpcasterRegistry, transform, type UpcasterRegistry } from "@ctx/upcasting";

/**
 * DecisionAdded v1 → v2: the single free-text `alternative` becomes the one entry of
 * `alternatives` (none when it was empty); v1 recorded no author, so `made_by` stays empty.
 */
export const decisionAddedV1 = transform<legacyV1.DecisionAdded, DecisionAdded>(
  ContextEventType.DecisionAdded,
  1,
  // Every field set, so the literal is a complete message (cheaper than create() on a replay).
  (v1): DecisionAdded => ({
    $typeName: DecisionAddedSchema.typeName,
    decisionId: v1.decisionId,
    title: v1.title,
    rationale: v1.rationale,
    madeBy: "",
    alternatives: v1.alternative.trim() === "" ? [] : [v1.alternative],
    affectsSubtaskIds: v1.affectsSubtaskIds,
  }),
  "alternative → alternatives, no made_by",
);

// The words v1 clients wrote for each status (compared trimmed, case-insensitive, with spaces,
// hyphens and underscores alike). A word not listed is refused rather than guessed: the event is
// parked and its story marked stale until the table learns it.
const v1Statuses: Readonly<Record<string, SubtaskStatus>> = {
  todo: SubtaskStatus.TODO,
  "to do": SubtaskStatus.TODO,
  open: SubtaskStatus.TODO,
  new: SubtaskStatus.TODO,
  "not started": SubtaskStatus.TODO,
  "in progress": SubtaskStatus.IN_PROGRESS,
  doing: SubtaskStatus.IN_PROGRESS,
  started: SubtaskStatus.IN_PROGRESS,
  wip: SubtaskStatus.IN_PROGRESS,
  blocked: SubtaskStatus.BLOCKED,
  waiting: SubtaskStatus.BLOCKED,
  "on hold": SubtaskStatus.BLOCKED,
  done: SubtaskStatus.DONE,
  complete: SubtaskStatus.DONE,
  completed: SubtaskStatus.DONE,
  closed: SubtaskStatus.DONE,
  finished: SubtaskStatus.DONE,
};

/** The v2 status of a v1 free-text status. @throws Error for a word the table does not know. */
export function subtaskStatusOfV1(text: string): SubtaskStatus {
  const word = text
    .trim()
    .toLowerCase()
    .replace(/[\s_-]+/g, " ");
  const status = Object.hasOwn(v1Statuses, word) ? v1Statuses[word] : undefined;
  if (status === undefined) throw new Error(`unknown v1 subtask status "${text}"`);
  return status;
}

/**
 * SubtaskUpdated v1 → v2: the free-text status becomes the enum; v1 had no assignees, so the
 * assignee after the change is none.
 */
export const subtaskUpdatedV1 = transform<legacyV1.SubtaskUpdated, SubtaskUpdated>(
  ContextEventType.SubtaskUpdated,
  1,
  (v1): SubtaskUpdated => ({
    $typeName: SubtaskUpdatedSchema.typeName,
    subtaskId: v1.subtaskId,
    status: subtaskStatusOfV1(v1.status),
    assignee: "",
  }),
  "free-text status → SubtaskStatus, no assignee",
);

/** Every upcaster the product ships, checked as a whole when this module loads. */
export const contextUpcasters: UpcasterRegistry = createUpcasterRegistry({
  current: currentSchemaVersion,
  upcasters: [decisionAddedV1, subtaskUpdatedV1],
});

/**
 * The message each old (type, schema version) was written with, to decode its payload bytes; the
 * current versions decode with the messages of context.v1 as part of the envelope.
 */
export const legacyPayloadSchemas: Readonly<Record<string, Readonly<Record<number, DescMessage>>>> =
  {
    [ContextEventType.DecisionAdded]: { 1: legacyV1.DecisionAddedSchema },
    [ContextEventType.SubtaskUpdated]: { 1: legacyV1.SubtaskUpdatedSchema },
  };
