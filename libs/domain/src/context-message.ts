import { create, toBinary } from "@bufbuild/protobuf";
import {
  type Context,
  ContextSchema,
  ContextStatus,
  type Decision,
  DecisionSchema,
  type Subtask,
  SubtaskSchema,
  varintSize,
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

/**
 * A state's binary `Context`, and where each of its parts lies in it, so that the encoding of a
 * later state of the same story can copy what did not change.
 */
export interface EncodedContext {
  readonly state: ContextState;
  /** The same bytes as `toBinary(ContextSchema, toContextMessage(state))`. */
  readonly bytes: Uint8Array;
  /** End of the scalar fields (story id, title, description, status) in `bytes`. */
  readonly headEnd: number;
  readonly decisions: EncodedEntries<DecisionState>;
  readonly subtasks: EncodedEntries<SubtaskState>;
}

/** A repeated field's entries in map order, and their bounds in the bytes (tag and length included). */
export interface EncodedEntries<T> {
  readonly values: readonly T[];
  /** `values.length + 1` offsets: entry i spans `[offsets[i], offsets[i + 1])`. */
  readonly offsets: readonly number[];
}

// Tags of the repeated message fields (wire type 2: length-delimited); one byte each.
const decisionsTag = (ContextSchema.field.decisions.number << 3) | 2;
const subtasksTag = (ContextSchema.field.subtasks.number << 3) | 2;
if (decisionsTag > 0x7f || subtasksTag > 0x7f) throw new Error("Context field numbers above 15");

const encodeDecision = (d: DecisionState) => toBinary(DecisionSchema, toDecisionMessage(d));
const encodeSubtask = (s: SubtaskState) => toBinary(SubtaskSchema, toSubtaskMessage(s));

/**
 * The binary `Context` of a state: the same bytes as `toBinary(ContextSchema,
 * toContextMessage(state))`. A read model re-encodes a story's whole context on every write; given
 * the encoding of an earlier state of the same story, this copies the bytes of every part that is
 * still the same object (states are immutable, and evolve keeps the decisions and subtasks an event
 * does not touch) and encodes only the others.
 */
export function encodeContextState(state: ContextState, previous?: EncodedContext): EncodedContext {
  const before = previous?.state.storyId === state.storyId ? previous : undefined;
  const parts = new Parts(before?.bytes);
  if (
    before !== undefined &&
    before.state.title === state.title &&
    before.state.description === state.description &&
    before.state.lifecycle === state.lifecycle
  ) {
    parts.copy(0, before.headEnd);
  } else {
    parts.add(
      toBinary(
        ContextSchema,
        create(ContextSchema, {
          storyId: state.storyId,
          title: state.title,
          description: state.description,
          status: contextStatusOf(state.lifecycle),
        }),
      ),
    );
  }
  const headEnd = parts.size;
  // A repeated message field is each element's tag, length and bytes, in order: fields in number
  // order after the scalar ones, as protobuf-es writes them.
  const decisions = parts.entries(state.decisions, before?.decisions, decisionsTag, encodeDecision);
  const subtasks = parts.entries(state.subtasks, before?.subtasks, subtasksTag, encodeSubtask);
  return { state, bytes: parts.join(), headEnd, decisions, subtasks };
}

/** The pieces of a new encoding: ranges of the previous one, and fresh bytes. */
class Parts {
  readonly #previous: Uint8Array | undefined;
  // A range of the previous bytes as [start, end], or fresh bytes.
  readonly #pieces: ([number, number] | Uint8Array)[] = [];
  size = 0;

  constructor(previous: Uint8Array | undefined) {
    this.#previous = previous;
  }

  /** Bytes of the previous encoding; joined to the range before it when they follow on. */
  copy(start: number, end: number): void {
    const last = this.#pieces[this.#pieces.length - 1];
    if (last !== undefined && !(last instanceof Uint8Array) && last[1] === start) {
      last[1] = end;
    } else {
      this.#pieces.push([start, end]);
    }
    this.size += end - start;
  }

  add(bytes: Uint8Array): void {
    this.#pieces.push(bytes);
    this.size += bytes.length;
  }

  /**
   * A repeated field: each entry copied when the previous encoding holds it at the same place,
   * else encoded. Unchanged entries in a row become one range.
   */
  entries<T>(
    map: ReadonlyMap<string, T>,
    previous: EncodedEntries<T> | undefined,
    tag: number,
    encode: (entry: T) => Uint8Array,
  ): EncodedEntries<T> {
    const values: T[] = [];
    const offsets: number[] = [this.size];
    let i = 0;
    for (const value of map.values()) {
      if (previous !== undefined && previous.values[i] === value) {
        this.copy(previous.offsets[i] as number, previous.offsets[i + 1] as number);
      } else {
        this.add(entryBytes(tag, encode(value)));
      }
      values.push(value);
      offsets.push(this.size);
      i += 1;
    }
    return { values, offsets };
  }

  join(): Uint8Array {
    const out = new Uint8Array(this.size);
    let at = 0;
    for (const piece of this.#pieces) {
      if (piece instanceof Uint8Array) {
        out.set(piece, at);
        at += piece.length;
      } else {
        out.set((this.#previous as Uint8Array).subarray(piece[0], piece[1]), at);
        at += piece[1] - piece[0];
      }
    }
    return out;
  }
}

/** One element of a repeated message field: tag, length, message. */
function entryBytes(tag: number, message: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + varintSize(message.length) + message.length);
  let at = 0;
  out[at++] = tag;
  for (let n = message.length; ; n >>>= 7) {
    if (n < 0x80) {
      out[at++] = n;
      break;
    }
    out[at++] = (n & 0x7f) | 0x80;
  }
  out.set(message, at);
  return out;
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

/** The proto status of a lifecycle. */
export function contextStatusOf(lifecycle: ContextLifecycle): ContextStatus {
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
