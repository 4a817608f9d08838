import { create, toBinary } from "@bufbuild/protobuf";
import {
  type Context,
  ContextSchema,
  ContextStatus,
  type Decision,
  DecisionSchema,
  type Subtask,
  SubtaskSchema,
} from "@ctx/proto";
import {
  ContextLifecycle,
  type ContextState,
  type DecisionState,
  type SubtaskState,
} from "./context-state.ts";
import { storyId } from "./story-id.ts";
import type { StreamVersion } from "./stream-version.ts";

/**
 * The proto `Context` of a state, decisions and subtasks in creation order: what the query service
 * answers and what a snapshot stores. Shares no arrays with the state, so the message may be
 * changed freely.
 */
export function toContextMessage(state: ContextState): Context {
  return create(ContextSchema, {
    storyId: state.storyId,
    title: state.title,
    description: state.description,
    status: contextStatusOf(state.lifecycle),
    decisions: Array.from(state.decisions.values(), toDecisionMessage),
    subtasks: Array.from(state.subtasks.values(), toSubtaskMessage),
  });
}

function toDecisionMessage(d: DecisionState): Decision {
  return create(DecisionSchema, {
    decisionId: d.decisionId,
    title: d.title,
    rationale: d.rationale,
    madeBy: d.madeBy,
    alternatives: [...d.alternatives],
    status: d.status,
    affectsSubtaskIds: [...d.affectsSubtaskIds],
    supersededByDecisionId: d.supersededByDecisionId,
  });
}

function toSubtaskMessage(s: SubtaskState): Subtask {
  return create(SubtaskSchema, {
    subtaskId: s.subtaskId,
    title: s.title,
    status: s.status,
    assignee: s.assignee,
    dependsOn: [...s.dependsOn],
  });
}

// The encoded message of each decision and subtask state, by identity: states are immutable and
// evolve keeps the entries an event does not touch, so a story's next state re-encodes only what
// changed. Weak: entries of states nobody holds any more go with them.
const encodedEntries = new WeakMap<DecisionState | SubtaskState, Uint8Array>();

function encodedEntry<T extends DecisionState | SubtaskState>(
  entry: T,
  encode: (entry: T) => Uint8Array,
): Uint8Array {
  let bytes = encodedEntries.get(entry);
  if (bytes === undefined) {
    bytes = encode(entry);
    encodedEntries.set(entry, bytes);
  }
  return bytes;
}

const encodeDecision = (d: DecisionState) => toBinary(DecisionSchema, toDecisionMessage(d));
const encodeSubtask = (s: SubtaskState) => toBinary(SubtaskSchema, toSubtaskMessage(s));

// Tags of the repeated message fields (wire type 2: length-delimited); one byte each.
const decisionsTag = (ContextSchema.field.decisions.number << 3) | 2;
const subtasksTag = (ContextSchema.field.subtasks.number << 3) | 2;
if (decisionsTag > 0x7f || subtasksTag > 0x7f) throw new Error("Context field numbers above 15");

/**
 * The binary `Context` of a state: the same bytes as `toBinary(ContextSchema,
 * toContextMessage(state))`, built from the encoded decisions and subtasks of earlier states where
 * they did not change (a read model re-encodes a story's whole context on every write).
 */
export function encodeContextState(state: ContextState): Uint8Array {
  const head = toBinary(
    ContextSchema,
    create(ContextSchema, {
      storyId: state.storyId,
      title: state.title,
      description: state.description,
      status: contextStatusOf(state.lifecycle),
    }),
  );
  const decisions = Array.from(state.decisions.values(), (d) => encodedEntry(d, encodeDecision));
  const subtasks = Array.from(state.subtasks.values(), (s) => encodedEntry(s, encodeSubtask));
  let size = head.length;
  for (const bytes of decisions) size += 1 + varintSize(bytes.length) + bytes.length;
  for (const bytes of subtasks) size += 1 + varintSize(bytes.length) + bytes.length;
  const out = new Uint8Array(size);
  out.set(head, 0);
  let at = head.length;
  // A repeated message field is each element's tag, length and bytes, in order: fields in number
  // order after the scalar ones, as protobuf-es writes them.
  const field = (tag: number, bytes: Uint8Array) => {
    out[at++] = tag;
    for (let n = bytes.length; ; n >>>= 7) {
      if (n < 0x80) {
        out[at++] = n;
        break;
      }
      out[at++] = (n & 0x7f) | 0x80;
    }
    out.set(bytes, at);
    at += bytes.length;
  };
  for (const bytes of decisions) field(decisionsTag, bytes);
  for (const bytes of subtasks) field(subtasksTag, bytes);
  return out;
}

function varintSize(n: number): number {
  let size = 1;
  for (let v = n >>> 7; v > 0; v >>>= 7) size += 1;
  return size;
}

/**
 * The state a `Context` message describes, for loading a snapshot: the message does not carry the
 * version and time of the last event, so the snapshot stores them beside it.
 * `fromContextMessage(toContextMessage(s), s.version, s.updatedAt)` equals `s`.
 *
 * @throws RangeError when the message has an invalid story id or a context status this code does
 *   not know (a snapshot written by newer code: rebuild from events instead).
 */
export function fromContextMessage(
  message: Context,
  version: StreamVersion,
  updatedAt: Date | undefined,
): ContextState {
  return {
    storyId: storyId(message.storyId),
    lifecycle: lifecycleOf(message.status),
    title: message.title,
    description: message.description,
    version,
    updatedAt,
    decisions: new Map(message.decisions.map((d) => [d.decisionId, decisionStateOf(d)])),
    subtasks: new Map(message.subtasks.map((s) => [s.subtaskId, subtaskStateOf(s)])),
  };
}

function decisionStateOf(d: Decision): DecisionState {
  return {
    decisionId: d.decisionId,
    title: d.title,
    rationale: d.rationale,
    madeBy: d.madeBy,
    alternatives: [...d.alternatives],
    status: d.status,
    affectsSubtaskIds: [...d.affectsSubtaskIds],
    supersededByDecisionId: d.supersededByDecisionId,
  };
}

function subtaskStateOf(s: Subtask): SubtaskState {
  return {
    subtaskId: s.subtaskId,
    title: s.title,
    status: s.status,
    assignee: s.assignee,
    dependsOn: [...s.dependsOn],
  };
}

function contextStatusOf(lifecycle: ContextLifecycle): ContextStatus {
  switch (lifecycle) {
    case ContextLifecycle.Absent:
      return ContextStatus.UNSPECIFIED;
    case ContextLifecycle.Open:
      return ContextStatus.OPEN;
    case ContextLifecycle.Archived:
      return ContextStatus.ARCHIVED;
    default: {
      const unknown: never = lifecycle;
      throw new TypeError(`unknown lifecycle ${JSON.stringify(unknown)}`);
    }
  }
}

function lifecycleOf(status: ContextStatus): ContextLifecycle {
  switch (status) {
    case ContextStatus.UNSPECIFIED:
      return ContextLifecycle.Absent;
    case ContextStatus.OPEN:
      return ContextLifecycle.Open;
    case ContextStatus.ARCHIVED:
      return ContextLifecycle.Archived;
    default: {
      const unknown: never = status;
      throw new RangeError(`unknown context status ${unknown}`);
    }
  }
}
