import type { Command } from "@ctx/domain";
import {
  type AddDecisionChange,
  type AddSubtaskChange,
  type AddSubtaskDependencyChange,
  type ArchiveContextChange,
  type Change,
  type CreateContextChange,
  SubtaskStatus,
  type SupersedeDecisionChange,
  type UpdateSubtaskChange,
} from "@ctx/proto";
import { InvalidRequestError } from "../errors.ts";

// Requests and changes share field names, so one mapping per command serves both RPC shapes.
type Fields<T> = Omit<T, "$typeName" | "$unknown">;

export const createContext = (m: Fields<CreateContextChange>): Command => ({
  type: "CreateContext",
  title: m.title,
  description: m.description,
});

export const addDecision = (m: Fields<AddDecisionChange>): Command => ({
  type: "AddDecision",
  decisionId: m.decisionId,
  title: m.title,
  rationale: m.rationale,
  madeBy: m.madeBy,
  alternatives: m.alternatives,
  affectsSubtaskIds: m.affectsSubtaskIds,
});

export const supersedeDecision = (m: Fields<SupersedeDecisionChange>): Command => ({
  type: "SupersedeDecision",
  decisionId: m.decisionId,
  supersededByDecisionId: m.supersededByDecisionId,
});

export const addSubtask = (m: Fields<AddSubtaskChange>): Command => ({
  type: "AddSubtask",
  subtaskId: m.subtaskId,
  title: m.title,
  dependsOn: m.dependsOn,
});

export const updateSubtask = (m: Fields<UpdateSubtaskChange>): Command => ({
  type: "UpdateSubtask",
  subtaskId: m.subtaskId,
  ...(m.status !== SubtaskStatus.UNSPECIFIED ? { status: m.status } : {}),
  ...(m.assignee !== undefined ? { assignee: m.assignee } : {}),
});

export const addSubtaskDependency = (m: Fields<AddSubtaskDependencyChange>): Command => ({
  type: "AddSubtaskDependency",
  subtaskId: m.subtaskId,
  dependsOnSubtaskId: m.dependsOnSubtaskId,
});

export const archiveContext = (m: Fields<ArchiveContextChange>): Command => ({
  type: "ArchiveContext",
  reason: m.reason,
});

/** One change of ApplyChanges as a domain command (validation guarantees the oneof is set). */
export function changeToCommand(change: Change): Command {
  const c = change.change;
  switch (c.case) {
    case "createContext":
      return createContext(c.value);
    case "addDecision":
      return addDecision(c.value);
    case "supersedeDecision":
      return supersedeDecision(c.value);
    case "addSubtask":
      return addSubtask(c.value);
    case "updateSubtask":
      return updateSubtask(c.value);
    case "addSubtaskDependency":
      return addSubtaskDependency(c.value);
    case "archiveContext":
      return archiveContext(c.value);
    case undefined:
      throw new InvalidRequestError("a change without a command (validation should refuse it)");
    default: {
      const exhaustive: never = c;
      throw new InvalidRequestError(`unknown change ${String(exhaustive)}`);
    }
  }
}
