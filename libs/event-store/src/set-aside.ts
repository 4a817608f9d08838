import { create, fromBinary } from "@bufbuild/protobuf";
import { ContextEventType } from "@ctx/domain";
import {
  ContextEventFrameSchema,
  type SetAsideMessage,
  SetAsideMessageSchema,
  StoredContextEventFrameSchema,
} from "@ctx/proto";
import {
  type EventUpcaster,
  isEnvelopeV2,
  type MessageOrigin,
  originStory,
  type RecordedEvent,
} from "./codec.ts";
import {
  EventMismatchError,
  type EventReadError,
  isEventReadError,
  SetAsideRefusedError,
} from "./errors.ts";
import { equalBytes } from "./hash-chain.ts";
import { sha256 } from "./sha256.ts";

/**
 * The messages of a story an operator set aside, by stream sequence: the `set_aside` list of the
 * story's last EventsSetAside event (each one lists every entry so far).
 */
export type SetAsideIndex = ReadonlyMap<number, SetAsideMessage>;

export const noneSetAside: SetAsideIndex = new Map();

/** The index of an EventsSetAside event's entries. */
export function setAsideIndexOf(event: RecordedEvent | undefined): SetAsideIndex {
  if (event?.data.case !== "eventsSetAside") return noneSetAside;
  return new Map(event.data.value.setAside.map((e) => [Number(e.sequence), e]));
}

/** The entry that sets this exact message aside, if any: same sequence, same bytes. */
export function setAsideEntry(
  index: SetAsideIndex,
  sequence: number,
  bytes: Uint8Array,
): SetAsideMessage | undefined {
  const entry = index.get(sequence);
  return entry !== undefined && equalBytes(sha256(bytes), entry.sha256) ? entry : undefined;
}

/** A stored message of a story as a reader gets it from the stream. */
export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly time: Date;
  /** Its Ctx-Signature header, when it has one (reads for audits fill it in). */
  readonly signature?: string;
}

/** What one stored message of a story is, for `ctx stories check` and set-aside requests. */
export interface MessageVerdict {
  readonly sequence: number;
  /** The story version it holds (0: none). */
  readonly version: number;
  /** The event type its subject names. */
  readonly eventType: string;
  readonly status: "event" | "set-aside" | "unreadable";
  /** Why it cannot be read (unreadable, and set-aside: the problem recorded by the repair). */
  readonly problem?: string;
}

/** What a set-aside request comes to: the entries to record and where the story's chain ends. */
export interface SetAsidePlan {
  /** Every entry of the story, the earlier ones and the new ones, by sequence. */
  readonly entries: readonly SetAsideMessage[];
  readonly added: readonly SetAsideMessage[];
  /** The story's last version and the hash its next event chains onto, once these are set aside. */
  readonly version: number;
  readonly hash: Uint8Array;
  /** The stream sequence of the story's last message (the next append's expectation). */
  readonly lastSequence: number;
  readonly verdicts: readonly MessageVerdict[];
}

const EMPTY = new Uint8Array(0);

/** The event type a subject names (its last token). */
const subjectType = (subject: string) => subject.slice(subject.lastIndexOf(".") + 1);

/**
 * Walks a story's stored messages in stream order the way every reader does (each decoded and
 * upcast, checked against its subject and against the version before it; a message the story's
 * earlier EventsSetAside lists is passed over as readers pass over it) and sets aside the
 * messages `requested` names.
 *
 * A requested message gets the version it would have held — and the chain goes on from its hash —
 * only when its envelope decodes, names the story and the event type of its subject, and follows
 * the version before it: a link of the story's chain whose content cannot be read (a schema no
 * upcaster reads, a payload that does not decode). Anything else (garbage, another story's envelope,
 * a repeated or skipped version) was never one of the story's events: it holds no version, and
 * readers pass over it as if it were not there.
 *
 * @throws SetAsideRefusedError when a requested message is readable, not the story's, or set aside
 * already, or when the story holds another unreadable message the request leaves out (the story
 * would still be blocked after it).
 */
export function planSetAside(
  story: string,
  messages: readonly StoredMessage[],
  earlier: SetAsideIndex,
  requested: readonly number[],
  upcaster: EventUpcaster,
): SetAsidePlan {
  const wanted = new Set(requested);
  const found = new Set(messages.map((m) => m.seq));
  const missing = [...wanted].filter((s) => !found.has(s));
  if (missing.length > 0) {
    throw new SetAsideRefusedError(
      `story ${story} has no stored message at sequence ${missing.join(", ")}`,
    );
  }
  const added: SetAsideMessage[] = [];
  const left: string[] = [];
  const verdicts: MessageVerdict[] = [];
  let version = 0;
  let hash: Uint8Array = EMPTY;
  for (const msg of messages) {
    const eventType = subjectType(msg.subject);
    const read = readMessage(msg, version, hash, upcaster);
    if (!isEventReadError(read)) {
      if (wanted.has(msg.seq)) {
        throw new SetAsideRefusedError(
          `stream message ${msg.seq} is version ${read.version} of story ${story}, and readable: only messages no reader can read are set aside`,
        );
      }
      version = read.version;
      hash = read.envelope.hash;
      verdicts.push({ sequence: msg.seq, version, eventType, status: "event" });
      continue;
    }
    const before = setAsideEntry(earlier, msg.seq, msg.data);
    if (before !== undefined) {
      if (wanted.has(msg.seq)) {
        throw new SetAsideRefusedError(
          `stream message ${msg.seq} of story ${story} is set aside already`,
        );
      }
      ({ version, hash } = passOver(msg, before, version, hash));
      verdicts.push({
        sequence: msg.seq,
        version: before.version,
        eventType,
        status: "set-aside",
        problem: before.problem,
      });
      continue;
    }
    const link = chainLink(msg, story, version);
    if (!wanted.has(msg.seq)) {
      // Walked on as if it were set aside, so that the messages after it are judged on their own.
      left.push(`${msg.seq} (${read.message})`);
      verdicts.push({
        sequence: msg.seq,
        version: link === undefined ? 0 : version + 1,
        eventType,
        status: "unreadable",
        problem: read.message,
      });
      if (link !== undefined) {
        version += 1;
        hash = link;
      }
      continue;
    }
    const entry = create(SetAsideMessageSchema, {
      sequence: BigInt(msg.seq),
      sha256: sha256(msg.data),
      version: link === undefined ? 0 : version + 1,
      problem: read.message,
    });
    added.push(entry);
    if (link !== undefined) {
      version += 1;
      hash = link;
    }
    verdicts.push({
      sequence: msg.seq,
      version: entry.version,
      eventType,
      status: "set-aside",
      problem: read.message,
    });
  }
  if (left.length > 0 && wanted.size > 0) {
    throw new SetAsideRefusedError(
      `story ${story} holds more messages no reader can read; set them aside in the same repair: ${left.join("; ")}`,
    );
  }
  const entries = [...earlier.values(), ...added].sort((a, b) => Number(a.sequence - b.sequence));
  return {
    entries,
    added,
    version,
    hash,
    lastSequence: messages[messages.length - 1]?.seq ?? 0,
    verdicts,
  };
}

/**
 * One message as a reader reads it after the story's `version`, whose hash is `prevHash`: its
 * (first) event, or the error that says why it cannot be read (including a version that does not
 * follow).
 */
function readMessage(
  msg: StoredMessage,
  version: number,
  prevHash: Uint8Array,
  upcaster: EventUpcaster,
): RecordedEvent | EventReadError {
  try {
    const [event] = upcaster.decode(msg.data, msg.seq, msg.subject as MessageOrigin, prevHash);
    if (event === undefined) {
      throw new EventMismatchError({
        sequence: msg.seq,
        storyId: originStory(msg.subject),
        reason: "it reads as no event",
      });
    }
    checkFollows(event, version, originStory(msg.subject));
    return event;
  } catch (e) {
    if (isEventReadError(e)) return e;
    throw e;
  }
}

/**
 * Whether an event comes right after the story's `version` (the reads' continuity check).
 * @throws EventMismatchError naming the event's sequence.
 */
export function checkFollows(
  event: Pick<RecordedEvent, "sequence" | "version">,
  version: number,
  story: string,
): void {
  if (event.version === version + 1) return;
  const reason =
    event.version <= version
      ? `version ${event.version} repeats a version of the story, which is at version ${version}`
      : `version ${event.version} where version ${version + 1} was expected (a gap)`;
  throw new EventMismatchError({ sequence: event.sequence, storyId: story, reason });
}

/** Where the story stands after a set-aside message: its version counts only when it holds one. */
function passOver(
  msg: StoredMessage,
  entry: SetAsideMessage,
  version: number,
  hash: Uint8Array,
): { version: number; hash: Uint8Array } {
  if (entry.version === 0) return { version, hash };
  return { version: entry.version, hash: chainLink(msg, undefined, entry.version - 1) ?? hash };
}

/**
 * The hash of a message that is a link of the story's chain after `version`: its envelope decodes,
 * names the story (when given) and the event type of its subject, and holds the next version.
 * Undefined for anything else.
 */
function chainLink(
  msg: StoredMessage,
  story: string | undefined,
  version: number,
): Uint8Array | undefined {
  try {
    if (isEnvelopeV2(msg.data)) {
      // Its story and event type are its subject's.
      const stored = fromBinary(StoredContextEventFrameSchema, msg.data);
      return stored.envelopeVersion === 2 && stored.version === version + 1
        ? stored.hash
        : undefined;
    }
    const frame = fromBinary(ContextEventFrameSchema, msg.data);
    const sameStory = story === undefined || frame.storyId === story;
    // Its hash may not be its content's (an event changed, or forged, after it was written): the
    // chain goes on from the hash it carries all the same, as `ctx audit verify` walks it.
    return sameStory &&
      frame.eventType === subjectType(msg.subject) &&
      frame.version === version + 1
      ? frame.hash
      : undefined;
  } catch {
    return undefined;
  }
}

/** Whether an event is an operator's EventsSetAside. */
export const isSetAsideRecord = (event: Pick<RecordedEvent, "eventType">) =>
  event.eventType === ContextEventType.EventsSetAside;
