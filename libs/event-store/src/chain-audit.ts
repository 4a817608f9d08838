import { checkEventSignature } from "./event-signing.ts";
import { type EventStreamNames, parseStoredSubject } from "./event-stream.ts";
import { equalBytes } from "./hash-chain.ts";
import { sha256 } from "./sha256.ts";
import { isEnvelopeV2, storedEventHash } from "./stored-hash.ts";

/**
 * What a break of a story's hash chain is:
 * - `altered`: an event's content is not what its hash says (changed after it was written), or an
 *   event links to a predecessor whose stored hash is not the one it was written after (the
 *   predecessor was changed and hashed again);
 * - `missing`: versions are skipped (events removed from the stream);
 * - `reordered`: an event comes after a later version of its story (moved, or stored again);
 * - `foreign-story`: the envelope stored on this story's subject is another story's;
 * - `unreadable`: the stored bytes are not an envelope at all.
 * A message no reader reads (reordered, foreign-story, unreadable, and an event whose content does
 * not hash to its stored hash) is no break when an operator set it aside: a later EventsSetAside of
 * the story lists its sequence and the SHA-256 of its bytes, so the stream records what became of
 * it. A link whose predecessor was changed and hashed again stays a break.
 */
export type ChainBreakKind =
  | "altered"
  | "missing"
  | "reordered"
  | "foreign-story"
  | "unreadable"
  // An event's Ctx-Signature is not a valid HMAC of its hash by a key given (`signature`), or an
  // event has none after signed events of its story (`unsigned`): see "Signed events", AUDIT.md.
  | "signature"
  | "unsigned"
  // Found against the signed checkpoints (see CheckpointAuditor), not within a story's chain.
  | "checkpoint"
  | "checkpoint-signature";

export interface ChainBreak {
  readonly kind: ChainBreakKind;
  /** The stream sequence of the message where the break shows. */
  readonly sequence: number;
  /** The story whose subject the message is stored on. */
  readonly storyId: string;
  /** The version the message holds (0 when it holds none). */
  readonly version: number;
  /** What the chain says should be there, and what is (hex hashes, versions or story ids). */
  readonly expected?: string;
  readonly actual?: string;
  readonly detail: string;
}

/** A stored message, as the stream holds it. */
export interface AuditedMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** Its Ctx-Signature header, if any. */
  readonly signature?: string;
}

/** Where a story's chain stands after the messages seen so far. */
interface StoryChain {
  version: number;
  hash: Uint8Array;
  sequence: number;
  events: number;
  /** Whether one of its events so far was signed: every later one must be. */
  signed: boolean;
  /** Message-level problems no EventsSetAside has vouched for yet, by sequence. */
  readonly pending: Map<number, { readonly digest: Uint8Array; readonly issue: ChainBreak }>;
}

const EMPTY = new Uint8Array(0);
const SET_ASIDE_TYPE = "EventsSetAside";
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/**
 * Recomputes the hash chains of stories from their stored messages, fed in stream order (one
 * story's or the whole stream's), and reports every break (see ChainBreakKind). Nothing is taken
 * from the store's readers: each hash is recomputed from the stored bytes themselves (see
 * storedEventHash), so what is verified is what the stream holds.
 *
 * Memory: a few dozen bytes per story seen, plus the breaks.
 */
export class ChainAuditor {
  readonly #names: EventStreamNames;
  readonly #stories = new Map<string, StoryChain>();
  readonly #breaks: ChainBreak[] = [];
  readonly #eventKeys: ReadonlyMap<string, Uint8Array> | undefined;
  #messages = 0;
  #signed = 0;
  #unsigned = 0;

  /** With `eventKeys`, each event's signature is checked against them (see "Signed events"). */
  constructor(
    names: EventStreamNames,
    options: { eventKeys?: ReadonlyMap<string, Uint8Array> } = {},
  ) {
    this.#names = names;
    this.#eventKeys = options.eventKeys;
  }

  /** Events with a Ctx-Signature header, and without, among the links of the chains. */
  get signatures(): { readonly signed: number; readonly unsigned: number } {
    return { signed: this.#signed, unsigned: this.#unsigned };
  }

  /** The breaks found so far (message-level ones only once no later repair can vouch for them). */
  get breaks(): readonly ChainBreak[] {
    return this.#breaks;
  }

  get messages(): number {
    return this.#messages;
  }

  get stories(): number {
    return this.#stories.size;
  }

  /** Checks the next stored message (stream order). */
  add(message: AuditedMessage): void {
    this.#messages += 1;
    const { storyId } = parseStoredSubject(this.#names, message.subject);
    if (storyId === "" || !message.subject.startsWith(`${this.#names.subjectPrefix}.`)) {
      // Not an event subject of this stream's layout: nothing a chain can hold.
      this.#breaks.push({
        kind: "unreadable",
        sequence: message.seq,
        storyId: "",
        version: 0,
        detail: `stored on ${message.subject}, which is not an event subject of the stream`,
      });
      return;
    }
    const chain = this.#chain(storyId);
    const envelope = chainFields(message.data);
    if (envelope === undefined) {
      this.#pend(chain, message, {
        kind: "unreadable",
        sequence: message.seq,
        storyId,
        version: 0,
        detail: "not an event envelope: malformed protobuf wire bytes",
      });
      return;
    }
    if (envelope.storyId !== undefined && envelope.storyId !== storyId) {
      this.#pend(chain, message, {
        kind: "foreign-story",
        sequence: message.seq,
        storyId,
        version: envelope.version,
        expected: storyId,
        actual: envelope.storyId,
        detail: `the envelope stored on story ${storyId} is story ${JSON.stringify(envelope.storyId)}'s version ${envelope.version}`,
      });
      return;
    }
    const at = { sequence: message.seq, storyId, version: envelope.version };
    const expectedVersion = chain.version + 1;
    if (envelope.version < expectedVersion) {
      this.#pend(chain, message, {
        kind: "reordered",
        ...at,
        expected: String(expectedVersion),
        actual: String(envelope.version),
        detail: `version ${envelope.version} comes after version ${chain.version} (stream message ${chain.sequence})`,
      });
      return;
    }
    if (envelope.prevHash === undefined && envelope.version > expectedVersion) {
      // Envelope version 2 keeps no previous hash: after a gap there is nothing to hash it with.
      this.#breaks.push(missingBreak(at, expectedVersion));
      this.#advance(chain, message, envelope.hash, at, envelope.setAside);
      return;
    }
    // Version 2 is hashed with the hash of the version before it as the stream holds it: a change
    // to it, hashed again, shows here as this event not hashing to its stored hash.
    const prevHash = envelope.prevHash ?? chain.hash;
    const recomputed = storedEventHash(message.data, prevHash, storyId);
    if (recomputed === undefined || !equalBytes(recomputed, envelope.hash)) {
      // No reader reads it (they check the same hash): an operator may have set it aside.
      this.#pend(chain, message, {
        kind: "altered",
        ...at,
        expected: recomputed === undefined ? "" : hex(recomputed),
        actual: hex(envelope.hash),
        detail:
          envelope.prevHash === undefined
            ? `the event's content, after version ${chain.version}'s hash, does not hash to the hash stored with it: it was changed, written by someone other than the event store, or version ${chain.version} (stream message ${chain.sequence}) was changed and hashed again`
            : "the event's content does not hash to the hash stored with it: it was changed, or written by someone other than the event store",
      });
    } else if (envelope.version > expectedVersion) {
      this.#breaks.push(missingBreak(at, expectedVersion));
    } else if (envelope.prevHash !== undefined && !equalBytes(envelope.prevHash, chain.hash)) {
      this.#breaks.push({
        kind: "altered",
        ...at,
        expected: hex(chain.hash),
        actual: hex(envelope.prevHash),
        detail: `written after a version ${chain.version} whose hash was ${hex(envelope.prevHash)}; the stored version ${chain.version} (stream message ${chain.sequence}) hashes to another: it was changed and hashed again`,
      });
    }
    this.#advance(chain, message, envelope.hash, at, envelope.setAside);
  }

  /**
   * Whatever the event is, the chain goes on from it: one change is one break, not every event
   * after it.
   */
  #advance(
    chain: StoryChain,
    message: AuditedMessage,
    hash: Uint8Array,
    at: { sequence: number; storyId: string; version: number },
    setAside: ChainFields["setAside"],
  ): void {
    chain.version = at.version;
    chain.hash = hash;
    chain.sequence = message.seq;
    chain.events += 1;
    this.#checkSignature(chain, message, hash, at);
    for (const entry of setAside) {
      const held = chain.pending.get(entry.sequence);
      if (held !== undefined && equalBytes(held.digest, entry.sha256)) {
        chain.pending.delete(entry.sequence);
      }
    }
  }

  /**
   * The verdict once every message was added: the breaks, with the message-level problems no
   * EventsSetAside vouched for, in stream order.
   */
  finish(): readonly ChainBreak[] {
    for (const chain of this.#stories.values()) {
      for (const { issue } of chain.pending.values()) this.#breaks.push(issue);
      chain.pending.clear();
    }
    this.#breaks.sort((a, b) => a.sequence - b.sequence);
    return this.#breaks;
  }

  /**
   * A signed event's signature must be a given key's HMAC of its hash (checked with keys only); an
   * unsigned event after a signed one of its story is a break with or without keys: whoever can
   * write the stream but not sign could otherwise add events unseen.
   */
  #checkSignature(
    chain: StoryChain,
    message: AuditedMessage,
    hash: Uint8Array,
    at: { readonly sequence: number; readonly storyId: string; readonly version: number },
  ): void {
    if (message.signature === undefined) {
      this.#unsigned += 1;
      // A repair (EventsSetAside) is appended by ctx, which holds the key only when given it; no
      // reader takes state from one (it only vouches for messages no reader reads).
      if (chain.signed && !message.subject.endsWith(`.${SET_ASIDE_TYPE}`)) {
        this.#breaks.push({
          kind: "unsigned",
          ...at,
          detail:
            "no signature, after signed events of the story: not appended by a holder of the signing key (or signing was turned off)",
        });
      }
      return;
    }
    this.#signed += 1;
    chain.signed = true;
    if (this.#eventKeys === undefined) return;
    const { verdict, keyId } = checkEventSignature(message.signature, hash, this.#eventKeys);
    if (verdict === "valid") return;
    this.#breaks.push({
      kind: "signature",
      ...at,
      actual: keyId,
      detail:
        verdict === "unknown-key"
          ? `signed with key ${JSON.stringify(keyId)}, which is not among the keys given`
          : `its signature is not key ${JSON.stringify(keyId)}'s HMAC of its hash: not signed by a holder of the key`,
    });
  }

  #chain(storyId: string): StoryChain {
    let chain = this.#stories.get(storyId);
    if (chain === undefined) {
      chain = {
        version: 0,
        hash: EMPTY,
        sequence: 0,
        events: 0,
        signed: false,
        pending: new Map(),
      };
      this.#stories.set(storyId, chain);
    }
    return chain;
  }

  /** A message-level problem: a break unless a later EventsSetAside of the story vouches for it. */
  #pend(chain: StoryChain, message: AuditedMessage, issue: ChainBreak): void {
    chain.pending.set(message.seq, { digest: sha256(message.data), issue });
  }
}

function missingBreak(
  at: { sequence: number; storyId: string; version: number },
  expectedVersion: number,
): ChainBreak {
  return {
    kind: "missing",
    ...at,
    expected: String(expectedVersion),
    actual: String(at.version),
    detail:
      at.version === expectedVersion + 1
        ? `version ${expectedVersion} is not in the stream`
        : `versions ${expectedVersion}–${at.version - 1} are not in the stream`,
  };
}

/** What the chain needs of a stored envelope, read straight from its wire bytes in one pass. */
export interface ChainFields {
  /** Undefined for a version 2 envelope: its story is its subject's. */
  readonly storyId: string | undefined;
  readonly version: number;
  /** Undefined for a version 2 envelope: the previous event's hash, as the stream holds it. */
  readonly prevHash: Uint8Array | undefined;
  readonly hash: Uint8Array;
  /** An EventsSetAside's entries: the sequences and SHA-256 digests it vouches for. */
  readonly setAside: readonly { readonly sequence: number; readonly sha256: Uint8Array }[];
}

const STORY_ID = 2;
const PREV_HASH = 11;
/** Where the version and the hash are: in a ContextEvent (version 1), a StoredContextEvent (2). */
const V1_FIELDS = { version: 3, hash: 12 } as const;
const V2_FIELDS = { version: 2, hash: 15 } as const;
const EVENTS_SET_ASIDE = 27;
const SET_ASIDE_ENTRY = 3;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The chain's fields of a stored envelope (docs/AUDIT.md's table); undefined when the bytes are not
 * a well-formed protobuf message, or one of those fields has another wire type or is not UTF-8.
 * Nothing else of the envelope is decoded: the payload is only walked when it is an EventsSetAside.
 */
export function chainFields(bytes: Uint8Array): ChainFields | undefined {
  // Version 2 (StoredContextEvent, first byte 0x08): version is field 2, the hash field 15.
  const v2 = isEnvelopeV2(bytes);
  const layout = v2 ? V2_FIELDS : V1_FIELDS;
  let storyId: string | undefined = v2 ? undefined : "";
  let version = 0;
  let prevHash: Uint8Array | undefined = v2 ? undefined : EMPTY;
  let hash: Uint8Array = EMPTY;
  let envelopeVersion = 0;
  const setAside: { sequence: number; sha256: Uint8Array }[] = [];
  const wellFormed = forEachField(bytes, (number, wire, value) => {
    if (v2 && number === 1) {
      if (wire !== 0) return false;
      envelopeVersion = value as number;
    } else if (number === layout.hash) {
      if (wire !== 2) return false;
      hash = value as Uint8Array;
    } else if (!v2 && number === STORY_ID) {
      if (wire !== 2) return false;
      try {
        storyId = utf8.decode(value as Uint8Array);
      } catch {
        return false;
      }
    } else if (number === layout.version) {
      if (wire !== 0) return false;
      version = value as number;
    } else if (!v2 && number === PREV_HASH) {
      if (wire !== 2) return false;
      prevHash = value as Uint8Array;
    } else if (number === EVENTS_SET_ASIDE) {
      if (wire !== 2) return false;
      return forEachField(value as Uint8Array, (n, w, entry) => {
        if (n !== SET_ASIDE_ENTRY) return true;
        if (w !== 2) return false;
        let sequence = 0;
        let digest: Uint8Array = EMPTY;
        const ok = forEachField(entry as Uint8Array, (n2, w2, v2) => {
          if (n2 === 1 && w2 === 0) sequence = v2 as number;
          else if (n2 === 2 && w2 === 2) digest = v2 as Uint8Array;
          return true;
        });
        setAside.push({ sequence, sha256: digest });
        return ok;
      });
    }
    return true;
  });
  if (!wellFormed || (v2 && envelopeVersion !== 2)) return undefined;
  return { storyId, version, prevHash, hash, setAside };
}

/**
 * Calls `visit` with every field of a protobuf message, in wire order: its number, wire type,
 * value (a varint's number; a length-delimited field's bytes; undefined for fixed widths) and where
 * the whole field (tag included) starts and ends. False when the bytes are malformed (or `visit`
 * said so); groups (wire types 3 and 4) count as malformed: no envelope has them.
 */
function forEachField(
  bytes: Uint8Array,
  visit: (
    number: number,
    wireType: number,
    value: number | Uint8Array | undefined,
    start: number,
    end: number,
  ) => boolean,
): boolean {
  let at = 0;
  while (at < bytes.length) {
    const start = at;
    const tag = varint(bytes, at);
    if (tag === undefined) return false;
    at = tag.next;
    const wireType = tag.value % 8;
    const number = Math.floor(tag.value / 8);
    if (number === 0) return false;
    let value: number | Uint8Array | undefined;
    if (wireType === 0) {
      const read = varint(bytes, at);
      if (read === undefined) return false;
      value = read.value;
      at = read.next;
    } else if (wireType === 1) {
      at += 8;
    } else if (wireType === 5) {
      at += 4;
    } else if (wireType === 2) {
      const length = varint(bytes, at);
      if (length === undefined) return false;
      at = length.next + length.value;
      if (at <= bytes.length) value = bytes.subarray(length.next, at);
    } else {
      return false;
    }
    if (at > bytes.length) return false;
    if (!visit(number, wireType, value, start, at)) return false;
  }
  return true;
}

/** A base-128 varint at `at` (up to 2^53); undefined when cut short or too long. */
function varint(bytes: Uint8Array, at: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = at; i < bytes.length && i < at + 10; i++) {
    const byte = bytes[i] as number;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return value > Number.MAX_SAFE_INTEGER ? undefined : { value, next: i + 1 };
    scale *= 128;
  }
  return undefined;
}
