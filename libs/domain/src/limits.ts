import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import {
  ContextEventSchema,
  ContextSchema,
  DecisionSchema,
  type PlainFieldKind,
  plainFieldKind,
  SubtaskSchema,
  varintSize,
} from "@ctx/proto";
import type { ContextEventData, DomainEvent } from "./context-event.ts";
import { contextStatusOf } from "./context-message.ts";
import type { ContextState, DecisionState, SubtaskState } from "./context-state.ts";

/**
 * What one command may carry and what one story may hold. A story lives in one message in more
 * than one place: its snapshot is one NATS message (at most `max_payload`, 1 MiB by default), the
 * Valkey read model keeps it in one hash field, and GetContext answers it in one response. Without
 * a bound, one story can grow past all of them and then can no longer be snapshotted or answered.
 */
export interface StoryLimits {
  /** Changes one command may carry (ApplyChanges' `changes`); each gives at most one event. */
  readonly changesPerCommand: number;
  /** Bytes of one event's encoded payload (the envelope around it adds a few hundred). */
  readonly eventBytes: number;
  /** Decisions one story may hold, active and superseded. */
  readonly decisions: number;
  /** Subtasks one story may hold. */
  readonly subtasks: number;
  /** Subtask dependencies one story may hold, over all its subtasks. */
  readonly dependencies: number;
  /**
   * Bytes of the story's encoded `Context`: what its snapshot, its Valkey entry and a GetContext
   * answer carry (each adds a few dozen bytes around it).
   */
  readonly contextBytes: number;
}

/**
 * The default limits. `contextBytes` leaves 64 KiB of NATS's default `max_payload` (1 MiB) for what
 * a snapshot adds around the context (its version, time and sequence, and the publish's headers:
 * less than 1 KiB), so the largest story the limits allow can always be snapshotted; its GetContext
 * answer is far below the RPC response limit (4 MiB). `eventBytes` takes a decision with a
 * 10,000-character rationale (up to 40 KB in UTF-8) and a few alternatives; a story reaches
 * `contextBytes` after about 15 of the largest events. The counts bound the graph the dependency
 * checks walk and the read models hold; 100 changes per command is also the proto's bound.
 */
export const defaultStoryLimits: StoryLimits = Object.freeze({
  changesPerCommand: 100,
  eventBytes: 64 * 1024,
  decisions: 1_000,
  subtasks: 1_000,
  dependencies: 5_000,
  contextBytes: 960 * 1024,
});

/** The measures of a story that its limits bound and its state does not keep: see `measureStory`. */
export interface StoryMeasure {
  /** Bytes of the story's encoded `Context`: `toBinary(ContextSchema, toContextMessage(state))`. */
  readonly bytes: number;
  /** Subtask dependencies, over all the story's subtasks. */
  readonly dependencies: number;
}

/** Measures a state from scratch: time linear in its size. */
export function measureStory(state: ContextState): StoryMeasure {
  let bytes = headSize(state);
  let dependencies = 0;
  for (const decision of state.decisions.values()) bytes += decisionEntrySize(decision);
  for (const subtask of state.subtasks.values()) {
    bytes += subtaskEntrySize(subtask);
    dependencies += subtask.dependsOn.length;
  }
  return { bytes, dependencies };
}

/**
 * The measure of `after`, the state `before` (measured `measure`) evolved by the events whose
 * payloads are `events`, in time proportional to what the events touched, not to the story: states
 * are immutable and evolve keeps every entry an event does not touch, so only the entries the
 * events name are measured again.
 */
export function measureChange(
  before: ContextState,
  after: ContextState,
  events: readonly DomainEvent["data"][],
  measure: StoryMeasure,
): StoryMeasure {
  let bytes = measure.bytes;
  let dependencies = measure.dependencies;
  if (
    before.title !== after.title ||
    before.description !== after.description ||
    before.lifecycle !== after.lifecycle ||
    before.storyId !== after.storyId
  ) {
    bytes += headSize(after) - headSize(before);
  }
  // An entry touched twice is measured once: a set only when there can be two.
  const seen = events.length > 1 ? new Set<string>() : undefined;
  for (const data of events) {
    const touched = touchedEntry(data);
    if (touched === undefined) continue;
    const [kind, id] = touched;
    if (seen !== undefined) {
      const key = `${kind}:${id}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    if (kind === "decision") {
      const was = before.decisions.get(id);
      const is = after.decisions.get(id);
      if (was !== is) bytes += decisionEntrySize(is) - decisionEntrySize(was);
    } else {
      const was = before.subtasks.get(id);
      const is = after.subtasks.get(id);
      if (was !== is) {
        bytes += subtaskEntrySize(is) - subtaskEntrySize(was);
        dependencies += (is?.dependsOn.length ?? 0) - (was?.dependsOn.length ?? 0);
      }
    }
  }
  return { bytes, dependencies };
}

/** Bytes of an event's encoded payload: `toBinary` of the payload message, without building it. */
export function eventPayloadSize(data: ContextEventData): number {
  const size = payloadSizes.get(data.case);
  return size === undefined ? 0 : size(data.value);
}

function touchedEntry(
  data: DomainEvent["data"],
): readonly ["decision" | "subtask", string] | undefined {
  switch (data.case) {
    case "decisionAdded":
    case "decisionSuperseded":
      return ["decision", data.value.decisionId];
    case "subtaskAdded":
    case "subtaskUpdated":
    case "subtaskDependencyAdded":
      return ["subtask", data.value.subtaskId];
    case "contextCreated":
    case "contextArchived":
    case "eventsSetAside":
    case undefined:
      return undefined;
    default:
      data satisfies never;
      return undefined;
  }
}

// --- sizes of messages, field by field as protobuf-es writes them ---------------------------------

type Sizer = (value: object) => number;

/** A field `planned` sizes: a string, a list of strings, or an enum, with implicit presence. */
interface PlannedField {
  readonly kind: PlainFieldKind;
  readonly localName: string;
  /** Bytes of the field's tag. */
  readonly tagSize: number;
}

/**
 * The size of a message's encoding, from a plan made once from its descriptor: the same number as
 * `toBinary(schema, create(schema, value)).length`. A message with other kinds of fields (a later
 * schema change) is sized by encoding it, slower but still exact; a unit spec compares the two.
 */
function sizerOf(schema: DescMessage, skip: readonly string[] = []): Sizer {
  const plan: PlannedField[] = [];
  for (const field of schema.fields) {
    if (skip.includes(field.localName)) continue;
    const kind = plainFieldKind(field);
    if (kind === undefined) {
      return (value) => toBinary(schema, create(schema, value as never)).length;
    }
    const wireType = kind === "enum" ? 0 : 2;
    plan.push({
      kind,
      localName: field.localName,
      tagSize: varintSize((field.number << 3) | wireType),
    });
  }
  return (value) => {
    const fields = value as Readonly<Record<string, unknown>>;
    let size = 0;
    for (const field of plan) {
      const v = fields[field.localName];
      if (field.kind === "string") {
        const length = utf8Length(v as string);
        if (length > 0) size += field.tagSize + varintSize(length) + length;
      } else if (field.kind === "enum") {
        // A negative enum value is a ten-byte varint (int32 sign-extended).
        if (v !== 0) size += field.tagSize + ((v as number) < 0 ? 10 : varintSize(v as number));
      } else {
        // List items are written even when empty.
        for (const item of v as readonly string[]) {
          const length = utf8Length(item);
          size += field.tagSize + varintSize(length) + length;
        }
      }
    }
    return size;
  };
}

// A DecisionState has the fields of a Decision message and a SubtaskState those of a Subtask,
// under the same names: one plan sizes both.
const decisionSize = sizerOf(DecisionSchema);
const subtaskSize = sizerOf(SubtaskSchema);
// The context's own fields; its decisions and subtasks are added entry by entry.
const contextHeadSize = sizerOf(ContextSchema, ["decisions", "subtasks"]);
const decisionsTagSize = varintSize((ContextSchema.field.decisions.number << 3) | 2);
const subtasksTagSize = varintSize((ContextSchema.field.subtasks.number << 3) | 2);

const payloadSizes = new Map<ContextEventData["case"], Sizer>();
for (const field of ContextEventSchema.fields) {
  if (field.oneof?.name === "payload" && field.message !== undefined) {
    payloadSizes.set(field.localName as ContextEventData["case"], sizerOf(field.message));
  }
}

function headSize(state: ContextState): number {
  return contextHeadSize({
    storyId: state.storyId,
    title: state.title,
    description: state.description,
    status: contextStatusOf(state.lifecycle),
  });
}

// An entry of the context's repeated decisions or subtasks: tag, length, message; 0 for none.
const decisionEntrySize = (d: DecisionState | undefined) =>
  d === undefined ? 0 : entrySize(decisionsTagSize, decisionSize(d));
const subtaskEntrySize = (s: SubtaskState | undefined) =>
  s === undefined ? 0 : entrySize(subtasksTagSize, subtaskSize(s));

function entrySize(tagSize: number, length: number): number {
  return tagSize + varintSize(length) + length;
}

/**
 * Bytes of a string in UTF-8, as TextEncoder (and so protobuf-es) writes it: a lone surrogate
 * becomes U+FFFD, three bytes.
 */
export function utf8Length(s: string): number {
  let length = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      length += 1;
    } else if (
      c >= 0xd800 &&
      c <= 0xdbff &&
      i + 1 < s.length &&
      (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00
    ) {
      // A surrogate pair: two UTF-16 units, four bytes.
      length += 2;
      i += 1;
    } else {
      length += 2;
    }
  }
  return length;
}
