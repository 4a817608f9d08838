import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "@ctx/config";
import { StoryNotFoundError, storyId } from "@ctx/domain";
import {
  ChainAuditor,
  type ChainBreak,
  CheckpointAuditor,
  checkpointNames,
  checkpointSignature,
  checkpointState,
  createEventStore,
  ensureCheckpointStream,
  KeyFileError,
  lastCheckpoint,
  loadKeyFolder,
  publishCheckpoint,
  readCheckpoints,
  type StoredMessage,
  StreamHasher,
  signCheckpoint,
} from "@ctx/event-store";
import type { AuditCheckpoint } from "@ctx/proto";
import { type Output, scanProgress, table, type View } from "../cli/output.ts";
import { type CtxEnv, withCtxEnv } from "../ctx-env.ts";

/** What `ctx audit verify` found. */
export interface AuditVerification {
  readonly stream: string;
  /** The story verified; absent with --all. */
  readonly story?: string;
  readonly stories: number;
  readonly messages: number;
  readonly seconds: number;
  /**
   * The signed checkpoints (with --all): how many there are, how many the stream matched, and
   * whether their signatures were checked (--keys).
   */
  readonly checkpoints?: {
    readonly found: number;
    readonly matched: number;
    readonly signaturesChecked: boolean;
  };
  /**
   * Events with a Ctx-Signature header and without (docs/AUDIT.md, "Signed events"), and whether
   * the signatures were checked (--event-keys).
   */
  readonly eventSignatures: {
    readonly signed: number;
    readonly unsigned: number;
    readonly checked: boolean;
  };
  /** Every break, in stream order (exit code 1 when there is one). */
  readonly breaks: readonly ChainBreak[];
}

const short = (value: string | undefined) =>
  value === undefined || value === "" ? "-" : value.length > 16 ? `${value.slice(0, 16)}…` : value;

export const auditVerifyView: View<AuditVerification> = {
  text: (r) => [
    ...(r.breaks.length === 0
      ? []
      : [
          table([
            ["stream seq", "story", "version", "break", "expected", "actual"],
            ...r.breaks.map((b) => [
              b.sequence,
              b.storyId,
              b.version || "-",
              b.kind,
              short(b.expected),
              short(b.actual),
            ]),
          ]),
          "",
          ...r.breaks.map((b) => `stream message ${b.sequence} (${b.kind}): ${b.detail}`),
          "",
        ]),
    ...(r.checkpoints === undefined
      ? []
      : [
          r.checkpoints.found === 0
            ? "no signed checkpoints (ctx audit checkpoint writes them)"
            : `${r.checkpoints.matched} of ${r.checkpoints.found} signed checkpoint(s) match the stream${
                r.checkpoints.signaturesChecked ? "" : " (signatures not checked: give --keys)"
              }`,
        ]),
    ...(r.eventSignatures.signed === 0
      ? []
      : [
          `${r.eventSignatures.signed} signed event(s)${
            r.eventSignatures.checked
              ? ", signatures checked"
              : " (signatures not checked: give --event-keys)"
          }, ${r.eventSignatures.unsigned} unsigned`,
        ]),
    `${r.story ?? r.stream}: ${r.messages} messages of ${r.stories} ${r.stories === 1 ? "story" : "stories"} verified in ${r.seconds.toFixed(1)} s: ${
      r.breaks.length === 0
        ? "every hash chain is intact"
        : `${r.breaks.length} break(s) of the hash chain`
    }`,
  ],
  exitCode: (r) => (r.breaks.length > 0 ? 1 : 0),
};

/**
 * `ctx audit verify --story S | --all`: recomputes the hash chain of a story, or of every story of
 * the stream, from the stored bytes (docs/AUDIT.md), and reports each break with its stream
 * sequence, story, version, kind, and the expected and actual values. Exits 1 on any break.
 */
export async function auditVerify(
  options: { story?: string; all?: boolean; keys?: string; eventKeys?: string },
  output: Output,
): Promise<AuditVerification> {
  const keys = options.keys === undefined ? undefined : loadCheckpointKeys(options.keys);
  const eventKeys =
    options.eventKeys === undefined
      ? undefined
      : loadCheckpointKeys(options.eventKeys, "--event-keys");
  return await withCtxEnv(async ({ nc, jsm, names }) => {
    const store = createEventStore(nc, { names });
    const auditor = new ChainAuditor(names, eventKeys ? { eventKeys } : {});
    const started = performance.now();
    if (options.story !== undefined) {
      const messages = await store.storyMessages(storyId(options.story));
      if (messages.length === 0) throw new StoryNotFoundError(storyId(options.story));
      for (const m of messages) auditor.add(m);
      return {
        stream: names.stream,
        story: options.story,
        stories: auditor.stories,
        messages: auditor.messages,
        seconds: (performance.now() - started) / 1000,
        eventSignatures: { ...auditor.signatures, checked: eventKeys !== undefined },
        breaks: auditor.finish(),
      };
    }
    return verifyStream({ nc, jsm, names }, { keys, eventKeys }, output);
  });
}

/**
 * Every story's chain and the stream against its signed checkpoints (with `keys`: their signatures
 * too), in one pass over the stream in sequence order; `visit` sees each stored message as well
 * (the audit report counts its period's events in the same pass).
 */
export async function verifyStream(
  env: Pick<CtxEnv, "nc" | "jsm" | "names">,
  given: {
    readonly keys: ReadonlyMap<string, Uint8Array> | undefined;
    readonly eventKeys: ReadonlyMap<string, Uint8Array> | undefined;
  },
  output: Output,
  visit?: (message: StoredMessage) => void,
): Promise<AuditVerification> {
  const { nc, jsm, names } = env;
  const { keys, eventKeys } = given;
  const store = createEventStore(nc, { names });
  const auditor = new ChainAuditor(names, eventKeys ? { eventKeys } : {});
  const started = performance.now();
  const stored = await readCheckpoints(nc, jsm, checkpointNames(names));
  const signed = new CheckpointAuditor(stored, keys);
  const total = (await jsm.streams.info(names.stream)).state.messages;
  const progress = scanProgress(output, total, "verifying");
  try {
    for await (const m of store.readAllMessages({ signatures: true })) {
      auditor.add(m);
      signed.add(m);
      visit?.(m);
      progress.update(auditor.messages);
    }
  } finally {
    progress.stop(auditor.messages);
  }
  const breaks = [...auditor.finish(), ...signed.finish()].sort((a, b) => a.sequence - b.sequence);
  return {
    stream: names.stream,
    stories: auditor.stories,
    messages: auditor.messages,
    seconds: (performance.now() - started) / 1000,
    checkpoints: {
      found: stored.length,
      matched: signed.verified,
      signaturesChecked: keys !== undefined,
    },
    eventSignatures: { ...auditor.signatures, checked: eventKeys !== undefined },
    breaks,
  };
}

/**
 * The keys in a folder (checkpoint keys, or event signing keys): every file is one key, its name
 * the key id, its content (at least 32 characters, surrounding whitespace ignored) the secret.
 * @throws ConfigError for a folder without keys, or a key too short, naming the option.
 */
export function loadCheckpointKeys(dir: string, option = "--keys"): Map<string, Uint8Array> {
  try {
    return loadKeyFolder(dir);
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    throw new ConfigError([{ variable: option, message: e.message }]);
  }
}

/** What `ctx audit keygen` made. */
export interface CheckpointKeyMade {
  readonly keyId: string;
  readonly file: string;
}

export const checkpointKeyView: View<CheckpointKeyMade> = {
  text: (k) => [
    `checkpoint key ${k.keyId} written to ${k.file} (0600); sign with --key-id ${k.keyId}`,
  ],
};

/** `ctx audit keygen --keys D [--key-id ID]`: a new random checkpoint key (a file of D, 0600). */
export function auditKeygen(options: { keys: string; keyId?: string }): CheckpointKeyMade {
  const keyId =
    options.keyId ?? `ckpt-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, "")}`;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(keyId) || keyId.startsWith(".")) {
    throw new ConfigError([
      { variable: "--key-id", message: "must be 1-64 letters, digits, . _ or -" },
    ]);
  }
  mkdirSync(options.keys, { recursive: true, mode: 0o700 });
  const file = join(options.keys, keyId);
  if (existsSync(file)) {
    throw new ConfigError([
      { variable: "--key-id", message: `${file} exists: keys are never overwritten` },
    ]);
  }
  writeFileSync(file, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { keyId, file };
}

/** What `ctx audit checkpoint` did. */
export interface CheckpointWritten {
  readonly stream: string;
  /** False when the stream held nothing new since the last checkpoint (none written). */
  readonly written: boolean;
  readonly lastSequence: number;
  readonly messages: number;
  readonly streamHash: string;
  readonly keyId: string;
  /** Messages hashed by this run (those after the previous checkpoint). */
  readonly hashed: number;
  /** Why none was written although the stream moved on (--min-events not reached, --max-age not passed). */
  readonly waiting?: string;
}

export const checkpointWrittenView: View<CheckpointWritten> = {
  text: (c) => [
    c.written
      ? `signed checkpoint of ${c.stream} up to message ${c.lastSequence} (${c.messages} messages; ${c.hashed} hashed now), stream hash ${c.streamHash.slice(0, 16)}…, key ${c.keyId}`
      : c.waiting !== undefined
        ? `${c.stream}: none written: ${c.waiting}`
        : `${c.stream}: nothing new since the last checkpoint (message ${c.lastSequence}); none written`,
  ],
};

/**
 * `ctx audit checkpoint --keys D [--key-id ID] [--min-events N [--max-age T]]`: signs what the
 * event stream holds now. Goes on from the last checkpoint (whose signature it checks first) over
 * the messages stored since, and writes the new one to the checkpoint stream, refused by the server
 * if another was written meanwhile (run it again). Run it on a schedule (a cron job, a Kubernetes
 * CronJob). With --min-events it signs only once N messages were stored since the last checkpoint,
 * or (with --max-age) once that checkpoint is older than T: run often, it signs every N events or
 * every T, whichever comes first.
 */
export async function auditCheckpoint(
  options: { keys: string; keyId?: string; minEvents?: number; maxAgeSeconds?: number },
  output: Output,
): Promise<CheckpointWritten> {
  const keys = loadCheckpointKeys(options.keys);
  const keyId = options.keyId ?? (keys.size === 1 ? [...keys.keys()][0] : undefined);
  const secret = keyId === undefined ? undefined : keys.get(keyId);
  if (keyId === undefined || secret === undefined) {
    throw new ConfigError([
      {
        variable: "--key-id",
        message: `name the key to sign with: one of ${[...keys.keys()].join(", ")}`,
      },
    ]);
  }
  return await withCtxEnv(async ({ nc, jsm, names, config }) => {
    const where = checkpointNames(names);
    await ensureCheckpointStream(jsm, where, config.EVENT_STREAM_REPLICAS);
    const last = await lastCheckpoint(jsm, where);
    if (last !== undefined) {
      const verdict = last.checkpoint ? checkpointSignature(last.checkpoint, keys) : "invalid";
      if (verdict !== "valid") {
        throw new Error(
          `the last checkpoint (message ${last.seq} of ${where.stream}) is not signed by any of the keys given (${verdict}): run ctx audit verify --all --keys ${options.keys}`,
        );
      }
    }
    const from = last?.checkpoint ? checkpointState(last.checkpoint) : undefined;
    const { state: now } = await jsm.streams.info(names.stream);
    const upTo = now.last_seq;
    const fresh = now.messages - (from?.messages ?? 0);
    const waiting = checkpointDue(options, last?.checkpoint, fresh);
    if (waiting !== undefined && from !== undefined) {
      return {
        stream: names.stream,
        written: false,
        lastSequence: from.sequence,
        messages: from.messages,
        streamHash: Buffer.from(from.hash).toString("hex"),
        keyId,
        hashed: 0,
        waiting,
      };
    }
    const hasher = new StreamHasher(from);
    if (upTo > (from?.sequence ?? 0)) {
      const store = createEventStore(nc, { names });
      const progress = scanProgress(output, upTo - (from?.sequence ?? 0), "hashing");
      let hashed = 0;
      try {
        for await (const m of store.readAllMessages({
          fromSequence: (from?.sequence ?? 0) + 1,
          toSequence: upTo,
        })) {
          hasher.add(m);
          progress.update(++hashed);
        }
      } finally {
        progress.stop(hashed);
      }
    }
    const state = hasher.state;
    const hashed = state.messages - (from?.messages ?? 0);
    const base = {
      stream: names.stream,
      lastSequence: state.sequence,
      messages: state.messages,
      streamHash: Buffer.from(state.hash).toString("hex"),
      keyId,
      hashed,
    };
    if (hashed === 0) return { ...base, written: false };
    const checkpoint = signCheckpoint(names.stream, state, { id: keyId, secret });
    const published = await publishCheckpoint(nc, where, checkpoint, last?.seq ?? 0);
    if (!published.stored) {
      throw new Error("another checkpoint was written meanwhile: run ctx audit checkpoint again");
    }
    return { ...base, written: true };
  });
}

/**
 * Why a checkpoint is not due yet (undefined: it is): fewer than --min-events messages since the
 * last one, which is younger than --max-age. Without --min-events, always due.
 */
function checkpointDue(
  options: { readonly minEvents?: number; readonly maxAgeSeconds?: number },
  last: AuditCheckpoint | undefined,
  fresh: number,
): string | undefined {
  if (options.minEvents === undefined || last === undefined || fresh >= options.minEvents) {
    return undefined;
  }
  const ageSeconds = Date.now() / 1000 - Number(last.signedAt?.seconds ?? 0n);
  if (options.maxAgeSeconds !== undefined && ageSeconds >= options.maxAgeSeconds && fresh > 0) {
    return undefined;
  }
  return `${fresh} message(s) since the last checkpoint, fewer than --min-events ${options.minEvents}${
    options.maxAgeSeconds === undefined
      ? ""
      : `, and it is ${Math.floor(ageSeconds)} s old, less than --max-age ${options.maxAgeSeconds} s`
  }`;
}
