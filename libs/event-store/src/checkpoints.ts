import { createHmac, timingSafeEqual } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type AuditCheckpoint, AuditCheckpointSchema } from "@ctx/proto";
import {
  DiscardPolicy,
  type JetStreamManager,
  jetstream,
  RetentionPolicy,
  StorageType,
  type StoredMsg,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { ChainBreak } from "./chain-audit.ts";
import { collectDirectBatch } from "./direct-batch.ts";
import type { SigningKey } from "./event-signing.ts";
import { type EventStreamNames, streamInfoIfAny } from "./event-stream.ts";
import { equalBytes } from "./hash-chain.ts";
import type { StoredMessage } from "./set-aside.ts";
import { sha256 } from "./sha256.ts";

/** Where the signed checkpoints of an event stream are kept. */
export interface CheckpointNames {
  readonly stream: string;
  readonly subject: string;
}

/** The checkpoint stream of an event stream: `<stream>_CHECKPOINTS`, subject `<prefix>_checkpoints`. */
export function checkpointNames(events: EventStreamNames): CheckpointNames {
  return { stream: `${events.stream}_CHECKPOINTS`, subject: `${events.subjectPrefix}_checkpoints` };
}

/** A key that signs checkpoints (HMAC-SHA256): its id, recorded in each checkpoint, and secret. */
export type CheckpointKey = SigningKey;

/** Where a stream hash stands: after `messages` messages, the last at `sequence` (0: none). */
export interface StreamHashState {
  readonly sequence: number;
  readonly messages: number;
  readonly hash: Uint8Array;
}

export const emptyStreamHash: StreamHashState = {
  sequence: 0,
  messages: 0,
  hash: new Uint8Array(0),
};

const u64 = (n: number) => {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n));
  return bytes;
};
const u32 = (n: number) => {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, n);
  return bytes;
};
const utf8 = new TextEncoder();

/**
 * The stream hash (docs/AUDIT.md): for each message of the event stream in sequence order,
 * hash = SHA-256(previous hash ‖ sequence as 8 bytes big-endian ‖ subject length as 4 bytes
 * big-endian ‖ subject (UTF-8) ‖ the stored bytes), from an empty previous hash. It commits to
 * every message, its position and its subject: a stream rewritten in any way hashes differently.
 */
export class StreamHasher {
  #state: StreamHashState;

  constructor(from: StreamHashState = emptyStreamHash) {
    this.#state = from;
  }

  get state(): StreamHashState {
    return this.#state;
  }

  add(message: Pick<StoredMessage, "seq" | "subject" | "data">): void {
    const subject = utf8.encode(message.subject);
    this.#state = {
      sequence: message.seq,
      messages: this.#state.messages + 1,
      hash: sha256(this.#state.hash, u64(message.seq), u32(subject.length), subject, message.data),
    };
  }
}

/** A checkpoint of `state`, signed with `key`. */
export function signCheckpoint(
  stream: string,
  state: StreamHashState,
  key: CheckpointKey,
  signedAt: Date = new Date(),
): AuditCheckpoint {
  const checkpoint = create(AuditCheckpointSchema, {
    stream,
    lastSequence: BigInt(state.sequence),
    messages: BigInt(state.messages),
    streamHash: state.hash,
    signedAt: timestampFromDate(signedAt),
    keyId: key.id,
  });
  checkpoint.signature = mac(key, checkpoint);
  return checkpoint;
}

/** Whether a checkpoint's signature is one of `keys`' (by its key id). */
export function checkpointSignature(
  checkpoint: AuditCheckpoint,
  keys: ReadonlyMap<string, Uint8Array>,
): "valid" | "invalid" | "unknown-key" {
  const secret = keys.get(checkpoint.keyId);
  if (secret === undefined) return "unknown-key";
  const expected = mac({ id: checkpoint.keyId, secret }, checkpoint);
  const actual = checkpoint.signature;
  return actual.length === expected.length && timingSafeEqual(actual, expected)
    ? "valid"
    : "invalid";
}

/** HMAC-SHA256 over the checkpoint encoded without its signature. */
function mac(key: CheckpointKey, checkpoint: AuditCheckpoint): Uint8Array {
  const unsigned = toBinary(AuditCheckpointSchema, { ...checkpoint, signature: new Uint8Array(0) });
  return new Uint8Array(createHmac("sha256", key.secret).update(unsigned).digest());
}

/** The state a checkpoint records. */
export function checkpointState(checkpoint: AuditCheckpoint): StreamHashState {
  return {
    sequence: Number(checkpoint.lastSequence),
    messages: Number(checkpoint.messages),
    hash: checkpoint.streamHash,
  };
}

/** Whether a hasher's state is the one a checkpoint records. */
export function matchesCheckpoint(state: StreamHashState, checkpoint: AuditCheckpoint): boolean {
  return (
    state.sequence === Number(checkpoint.lastSequence) &&
    state.messages === Number(checkpoint.messages) &&
    equalBytes(state.hash, checkpoint.streamHash)
  );
}

/** Creates the checkpoint stream when it does not exist (see ensureRecordStream). */
export function ensureCheckpointStream(
  jsm: JetStreamManager,
  names: CheckpointNames,
  replicas = 1,
): Promise<void> {
  return ensureRecordStream(
    jsm,
    names,
    "Signed checkpoints of the event stream (ctx audit checkpoint)",
    replicas,
  );
}

/**
 * Creates a stream of records beside the event stream (checkpoints, the operations log) when it
 * does not exist: one subject, file storage, kept forever, deletes and purges refused (as the event
 * stream's), direct gets on. Another process creating it meanwhile is no error.
 */
export async function ensureRecordStream(
  jsm: JetStreamManager,
  names: { readonly stream: string; readonly subject: string },
  description: string,
  replicas: number,
): Promise<void> {
  if (await streamInfoIfAny(jsm, names.stream)) return;
  await jsm.streams
    .add({
      name: names.stream,
      description,
      subjects: [names.subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.New,
      num_replicas: replicas,
      deny_delete: true,
      deny_purge: true,
      allow_direct: true,
    })
    .catch((e: unknown) => {
      if (!(e instanceof Error && /already in use/i.test(e.message))) throw e;
    });
}

/** A stored checkpoint and its stream sequence in the checkpoint stream. */
export interface StoredCheckpoint {
  readonly seq: number;
  readonly checkpoint: AuditCheckpoint | undefined;
}

/** The last checkpoint, or undefined when there is none (or no checkpoint stream). */
export async function lastCheckpoint(
  jsm: JetStreamManager,
  names: CheckpointNames,
): Promise<StoredCheckpoint | undefined> {
  // An outage is an error, never "no checkpoint": the signer would start the chain again.
  if ((await streamInfoIfAny(jsm, names.stream)) === undefined) return undefined;
  const msg = await jsm.streams.getMessage(names.stream, { last_by_subj: names.subject });
  if (!msg) return undefined;
  return { seq: msg.seq, checkpoint: parseCheckpoint(msg.data) };
}

/** Every checkpoint, in the order they were written (none without a checkpoint stream). */
export async function readCheckpoints(
  nc: NatsConnection,
  jsm: JetStreamManager,
  names: CheckpointNames,
): Promise<StoredCheckpoint[]> {
  // An outage is an error, never "no checkpoints": a verification would pass without them.
  const info = await streamInfoIfAny(jsm, names.stream);
  if (info === undefined || info.state.messages === 0) return [];
  const consumer = await jetstream(nc).consumers.get(names.stream, {
    filter_subjects: [names.subject],
  });
  const out: StoredCheckpoint[] = [];
  const messages = await consumer.consume({ max_messages: 256 });
  try {
    for await (const msg of messages) {
      out.push({ seq: msg.seq, checkpoint: parseCheckpoint(msg.data) });
      if (msg.seq >= info.state.last_seq || msg.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  return out;
}

/**
 * A page of the checkpoint stream as stored: the messages after `afterSequence`, at most `limit`
 * (none when no checkpoint stream exists: no checkpoint was ever signed). Direct gets, which any
 * replica answers and a reader with read rights on the stream may ask.
 */
export async function checkpointMessages(
  jsm: JetStreamManager,
  names: CheckpointNames,
  options: { readonly afterSequence?: number; readonly limit: number },
  timeoutMs = 5_000,
): Promise<StoredMsg[]> {
  const after = options.afterSequence ?? 0;
  const info = await streamInfoIfAny(jsm, names.stream);
  if (info === undefined || info.state.messages === 0 || after >= info.state.last_seq) return [];
  const request = { seq: after + 1, batch: options.limit, next_by_subj: names.subject };
  return collectDirectBatch(jsm, names.stream, request, timeoutMs);
}

function parseCheckpoint(data: Uint8Array): AuditCheckpoint | undefined {
  try {
    return fromBinary(AuditCheckpointSchema, data);
  } catch {
    return undefined;
  }
}

/**
 * Publishes a checkpoint after the one at `afterSeq` of the checkpoint stream (0: the first), as
 * the server checks: when another signer wrote one meanwhile, it is refused (returns false).
 */
export async function publishCheckpoint(
  nc: NatsConnection,
  names: CheckpointNames,
  checkpoint: AuditCheckpoint,
  afterSeq: number,
): Promise<{ readonly stored: boolean; readonly seq: number }> {
  try {
    const ack = await jetstream(nc).publish(
      names.subject,
      toBinary(AuditCheckpointSchema, checkpoint),
      {
        expect: { lastSubjectSequence: afterSeq },
      },
    );
    return { stored: true, seq: ack.seq };
  } catch (e) {
    if (e instanceof Error && /wrong last sequence/i.test(e.message))
      return { stored: false, seq: 0 };
    throw e;
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/**
 * Checks the event stream, fed in sequence order from its first message, against its signed
 * checkpoints: each checkpoint's stream hash must be the stream's at its last sequence (`checkpoint`
 * break otherwise: the stream was rewritten after it was signed, or lost messages), and with `keys`,
 * its signature must be one of theirs (`checkpoint-signature` break otherwise).
 */
export class CheckpointAuditor {
  readonly #checkpoints: readonly StoredCheckpoint[];
  readonly #hasher = new StreamHasher();
  readonly #breaks: ChainBreak[] = [];
  #next = 0;
  #verified = 0;

  constructor(checkpoints: readonly StoredCheckpoint[], keys?: ReadonlyMap<string, Uint8Array>) {
    const usable: StoredCheckpoint[] = [];
    for (const stored of checkpoints) {
      const checkpoint = stored.checkpoint;
      const signature = checkpoint && keys ? checkpointSignature(checkpoint, keys) : "valid";
      if (checkpoint === undefined || signature !== "valid") {
        this.#breaks.push({
          kind: "checkpoint-signature",
          sequence: Number(checkpoint?.lastSequence ?? 0),
          storyId: "",
          version: 0,
          ...(checkpoint ? { actual: checkpoint.keyId } : {}),
          detail:
            checkpoint === undefined
              ? `checkpoint stream message ${stored.seq} is not a checkpoint`
              : signature === "unknown-key"
                ? `checkpoint stream message ${stored.seq} is signed with key ${JSON.stringify(checkpoint.keyId)}, which is not among the keys given`
                : `checkpoint stream message ${stored.seq} does not carry a valid signature of key ${JSON.stringify(checkpoint.keyId)}: it was not written by a holder of the key`,
        });
        continue;
      }
      usable.push(stored);
    }
    this.#checkpoints = usable.sort(
      (a, b) => Number(a.checkpoint?.lastSequence) - Number(b.checkpoint?.lastSequence),
    );
  }

  /** Checkpoints whose stream hash the stream matched. */
  get verified(): number {
    return this.#verified;
  }

  /** The next stored message of the event stream (sequence order, from the first). */
  add(message: Pick<StoredMessage, "seq" | "subject" | "data">): void {
    this.#settle(message.seq - 1);
    this.#hasher.add(message);
    this.#settle(message.seq);
  }

  /** The breaks, once every message was added. */
  finish(): readonly ChainBreak[] {
    this.#settle(Number.POSITIVE_INFINITY);
    return this.#breaks;
  }

  /** Compares the checkpoints whose last sequence is at or before `through` with the hash so far. */
  #settle(through: number): void {
    for (; this.#next < this.#checkpoints.length; this.#next++) {
      const checkpoint = this.#checkpoints[this.#next]?.checkpoint as AuditCheckpoint;
      const last = Number(checkpoint.lastSequence);
      if (last > through) return;
      const state = this.#hasher.state;
      if (matchesCheckpoint(state, checkpoint)) {
        this.#verified += 1;
        continue;
      }
      this.#breaks.push({
        kind: "checkpoint",
        sequence: last,
        storyId: "",
        version: 0,
        expected: hex(checkpoint.streamHash),
        actual: state.sequence === last ? hex(state.hash) : "",
        detail:
          state.sequence === last
            ? `the stream up to message ${last} is not what the checkpoint signed (${checkpoint.messages} messages) on ${checkpoint.signedAt ? new Date(Number(checkpoint.signedAt.seconds) * 1000).toISOString() : "?"}: rewritten after it was signed`
            : `the checkpoint covers the stream up to message ${last}, which the stream does not hold (it holds ${state.messages} messages up to ${state.sequence}): messages were removed after it was signed`,
      });
    }
  }
}
