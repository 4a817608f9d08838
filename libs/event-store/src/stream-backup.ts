import { createHash } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type BackupSink,
  type BackupSource,
  folderSink,
  folderSource,
  isTarPath,
  tarSink,
  tarSource,
} from "./backup-files.ts";
import { StreamBackupError } from "./errors.ts";
import { streamInfoIfAny } from "./event-stream.ts";
import {
  type RestoreOptions,
  restoreStream,
  type SnapshotOptions,
  type StreamSnapshotMeta,
  snapshotStream,
} from "./stream-snapshot.ts";

// A backup is a folder, or a tar of the same files (docs/OPERATIONS.md, "Backups"):
//
//   manifest.json               what was backed up, when, from which server; per stream its
//                               sequences, message count and the SHA-256 of both files below
//   <STREAM>.json               the stream's config and state as the server gave them with the
//                               snapshot: the body of the restore request
//   <STREAM>.snapshot.s2        the server's snapshot, byte for byte (an S2-compressed archive)
//
// The snapshot is the server's own, so a restore is the server's own too: the same messages at the
// same sequences with the same headers, timestamps and bytes.

/** The manifest's format; a restore refuses any other. */
export const backupFormat = "ctx-stream-backup/1";
const manifestFile = "manifest.json";

/** One stream of a backup, as its manifest records it. */
export interface BackedUpStream {
  readonly name: string;
  readonly meta_file: string;
  readonly meta_sha256: string;
  readonly data_file: string;
  readonly data_bytes: number;
  readonly data_sha256: string;
  readonly first_seq: number;
  readonly last_seq: number;
  readonly messages: number;
  /** Bytes the messages take in the stream (uncompressed). */
  readonly stream_bytes: number;
  readonly replicas: number;
}

export interface BackupManifest {
  readonly format: typeof backupFormat;
  /** When the backup started (ISO 8601, UTC): each stream's snapshot is from a moment after. */
  readonly created_at: string;
  /** The server the client was connected to (a stream's leader takes its snapshot). */
  readonly server: { readonly version: string; readonly name: string; readonly cluster?: string };
  readonly streams: readonly BackedUpStream[];
}

export interface BackupProgress {
  readonly stream: string;
  /** Bytes of snapshot data written so far (compressed). */
  readonly bytes: number;
  /** The stream's messages and stored bytes at the snapshot (known once the server answers). */
  readonly messages: number;
  readonly streamBytes: number;
  readonly done: boolean;
}

export interface BackupOptions
  extends Pick<SnapshotOptions, "inboxPrefix" | "timeoutMs" | "signal" | "chunkBytes"> {
  /** The streams to back up, in order. */
  readonly streams: readonly string[];
  /** The backup's folder, or a tar file when it ends in `.tar`; new (or an empty folder) unless `force`. */
  readonly out: string;
  /** Replace an existing backup at `out` (only a backup: any other folder is left alone). */
  readonly force?: boolean;
  readonly onProgress?: (progress: BackupProgress) => void;
}

const sha256Hex = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

type PathKind = "none" | "file" | "empty" | "backup" | "folder";

async function pathKind(path: string): Promise<PathKind> {
  const s = await stat(path).catch(() => undefined);
  if (!s) return "none";
  if (!s.isDirectory()) {
    if (!isTarPath(path)) return "file";
    const source = await tarSource(path).catch(() => undefined);
    const kind = source?.size(manifestFile) === undefined ? "file" : "backup";
    await source?.close();
    return kind;
  }
  const entries = await readdir(path);
  if (entries.length === 0) return "empty";
  return entries.includes(manifestFile) ? "backup" : "folder";
}

/**
 * Backs up streams into a new folder or tar file: each stream's point-in-time snapshot, its config
 * and state, and the manifest with their checksums. Written beside `out` and renamed into place
 * when complete, so `out` never holds half a backup. Appends go on meanwhile; those after a
 * stream's snapshot are not in the backup.
 */
export async function backupStreams(
  nc: NatsConnection,
  options: BackupOptions,
): Promise<BackupManifest> {
  const out = resolve(options.out);
  const existing = await pathKind(out);
  if (existing === "file" || existing === "folder") {
    throw new StreamBackupError(
      `${out} exists and is not a backup; give a new path or an empty folder`,
      "path",
    );
  }
  if (existing === "backup" && !options.force) {
    throw new StreamBackupError(
      `${out} already holds a backup; give another path, or --force to replace it`,
      "path",
    );
  }
  const parent = dirname(out);
  if (!(await stat(parent).catch(() => undefined))?.isDirectory()) {
    throw new StreamBackupError(`the folder ${parent} does not exist`, "path");
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await backupOnce(nc, out, existing === "backup", options);
    } catch (e) {
      // A snapshot that ended inside a command's batch: another one, a moment later, will not.
      if (!(e instanceof MidBatchError) || attempt === midBatchAttempts) throw e;
    }
  }
}

/** Snapshots taken before giving up on one that does not end inside a batch. */
const midBatchAttempts = 5;

/** A snapshot whose last message is not the last of its atomic batch (see `endsInsideBatch`). */
class MidBatchError extends StreamBackupError {
  override name = "MidBatchError";
}

/**
 * Whether a stored message is a member of an atomic batch but not its last (the commit). The
 * server keeps the batch headers on stored messages, and takes a snapshot's point from its store
 * without waiting for a batch being applied to finish: a snapshot can end after the first events of
 * a command. Restored, that story would hold part of a command, which nothing else can produce.
 */
export function endsInsideBatch(headers: { get(key: string): string } | undefined): boolean {
  return (
    (headers?.get("Nats-Batch-Id") ?? "") !== "" && (headers?.get("Nats-Batch-Commit") ?? "") === ""
  );
}

async function backupOnce(
  nc: NatsConnection,
  out: string,
  replace: boolean,
  options: BackupOptions,
): Promise<BackupManifest> {
  const parent = dirname(out);
  // When the first snapshot is asked for: each stream's is from a moment after it.
  const createdAt = new Date().toISOString();
  const sink = await (isTarPath(out) ? tarSink(out) : folderSink(out)).catch((e: unknown) => {
    throw new StreamBackupError(`cannot write in ${parent}: ${(e as Error).message}`, "path", {
      cause: e,
    });
  });
  try {
    const streams: BackedUpStream[] = [];
    for (const name of options.streams) {
      streams.push(await backupOne(nc, name, sink, options));
    }
    const info = nc.info;
    const manifest: BackupManifest = {
      format: backupFormat,
      created_at: createdAt,
      server: {
        version: info?.version ?? "unknown",
        name: info?.server_name ?? "unknown",
        ...(info?.cluster ? { cluster: info.cluster } : {}),
      },
      streams,
    };
    await sink.put(manifestFile, encode(json(manifest)));
    await sink.commit(replace);
    return manifest;
  } catch (e) {
    await sink.discard();
    throw e;
  }
}

async function backupOne(
  nc: NatsConnection,
  stream: string,
  sink: BackupSink,
  options: BackupOptions,
): Promise<BackedUpStream> {
  const dataFile = `${stream}.snapshot.s2`;
  const metaFile = `${stream}.json`;
  const hash = createHash("sha256");
  let bytes = 0;
  let known = { messages: 0, streamBytes: 0 };
  let meta: StreamSnapshotMeta | undefined;
  await sink.streamed(dataFile, async (write) => {
    meta = await snapshotStream(
      nc,
      stream,
      async (chunk) => {
        hash.update(chunk);
        await write(chunk);
        bytes += chunk.length;
        options.onProgress?.({ stream, bytes, ...known, done: false });
      },
      {
        ...(options.inboxPrefix === undefined ? {} : { inboxPrefix: options.inboxPrefix }),
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.chunkBytes === undefined ? {} : { chunkBytes: options.chunkBytes }),
        onMeta: (m) => {
          known = { messages: m.state.messages, streamBytes: m.state.bytes };
          options.onProgress?.({ stream, bytes, ...known, done: false });
        },
      },
    );
  });
  if (!meta) throw new StreamBackupError(`snapshot of stream ${stream}: no answer`, "server");
  if (meta.state.messages > 0) {
    const jsm = await jetstreamManager(nc);
    const last = await jsm.streams
      .getMessage(stream, { seq: meta.state.last_seq })
      .catch(() => undefined);
    if (endsInsideBatch(last?.header)) {
      throw new MidBatchError(
        `the snapshots of stream ${stream} kept ending inside a command's batch (${midBatchAttempts} tries); run the backup again`,
        "server",
      );
    }
  }
  options.onProgress?.({ stream, bytes, ...known, done: true });
  const metaBytes = encode(json(meta));
  await sink.put(metaFile, metaBytes);
  return {
    name: stream,
    meta_file: metaFile,
    meta_sha256: sha256Hex(metaBytes),
    data_file: dataFile,
    data_bytes: bytes,
    data_sha256: hash.digest("hex"),
    first_seq: meta.state.first_seq,
    last_seq: meta.state.last_seq,
    messages: meta.state.messages,
    stream_bytes: meta.state.bytes,
    replicas: meta.config.num_replicas,
  };
}

/** A backup whose manifest and checksums were verified: safe to restore. Close it when done. */
export interface VerifiedBackup {
  readonly path: string;
  readonly manifest: BackupManifest;
  /** Each stream's restore request (config and state), in the manifest's order. */
  readonly metas: ReadonlyMap<string, StreamSnapshotMeta>;
  /** The snapshot bytes of a stream of the backup. */
  data(stream: string): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

function badBackup(path: string, why: string): StreamBackupError {
  return new StreamBackupError(`${path} is not a usable backup: ${why}`, "bad_backup");
}

/**
 * Opens a backup (folder or tar) and checks it before anything is sent to a server: the manifest's
 * format, every file's presence, size and SHA-256, and that each stream's config and state agree
 * with the manifest.
 */
export async function openBackup(path: string): Promise<VerifiedBackup> {
  const where = resolve(path);
  const kind = await pathKind(where);
  if (kind === "none") throw new StreamBackupError(`${where} does not exist`, "path");
  if (kind !== "backup") throw badBackup(where, `no ${manifestFile} in it`);
  const source = await (isTarPath(where) ? tarSource(where) : folderSource(where)).catch(
    (e: unknown) => {
      throw badBackup(where, (e as Error).message);
    },
  );
  try {
    return await verify(where, source);
  } catch (e) {
    await source.close();
    throw e;
  }
}

async function verify(where: string, source: BackupSource): Promise<VerifiedBackup> {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(decode(await source.read(manifestFile))) as BackupManifest;
  } catch (e) {
    throw badBackup(where, `${manifestFile} is not JSON (${(e as Error).message})`);
  }
  if (manifest.format !== backupFormat) {
    throw badBackup(where, `format ${JSON.stringify(manifest.format)}, not ${backupFormat}`);
  }
  if (!Array.isArray(manifest.streams) || manifest.streams.length === 0) {
    throw badBackup(where, "the manifest lists no stream");
  }
  const metas = new Map<string, StreamSnapshotMeta>();
  const files = new Map<string, string>();
  for (const s of manifest.streams) {
    const present = (name: unknown): string => {
      if (typeof name !== "string" || source.size(name) === undefined) {
        throw badBackup(where, `stream ${s.name}: ${JSON.stringify(name)} is missing`);
      }
      return name;
    };
    const metaFile = present(s.meta_file);
    const dataFile = present(s.data_file);
    const metaBytes = await source.read(metaFile);
    if (sha256Hex(metaBytes) !== s.meta_sha256) {
      throw badBackup(where, `${metaFile} does not match its checksum in the manifest`);
    }
    const size = source.size(dataFile);
    if (size !== s.data_bytes) {
      throw badBackup(where, `${dataFile} has ${size} bytes, the manifest says ${s.data_bytes}`);
    }
    const hash = createHash("sha256");
    for await (const piece of source.stream(dataFile)) hash.update(piece);
    if (hash.digest("hex") !== s.data_sha256) {
      throw badBackup(where, `${dataFile} does not match its checksum in the manifest`);
    }
    const meta = JSON.parse(decode(metaBytes)) as StreamSnapshotMeta;
    const state = meta.state;
    if (
      meta.config?.name !== s.name ||
      state?.first_seq !== s.first_seq ||
      state.last_seq !== s.last_seq ||
      state.messages !== s.messages
    ) {
      throw badBackup(where, `${metaFile} does not describe what the manifest says`);
    }
    metas.set(s.name, meta);
    files.set(s.name, dataFile);
  }
  return {
    path: where,
    manifest,
    metas,
    data: (stream) => source.stream(files.get(stream) ?? ""),
    close: () => source.close(),
  };
}

/**
 * Whether a restored stream holds what the manifest says: its messages and last sequence, and its
 * first sequence when it has messages (an empty stream's first sequence is only where the next
 * message would go: 0 or 1 for one that never had any, and the server restores it as it likes).
 */
function sameState(state: StreamInfo["state"], s: BackedUpStream): boolean {
  return (
    state.messages === s.messages &&
    state.last_seq === s.last_seq &&
    (s.messages === 0 || state.first_seq === s.first_seq)
  );
}

export interface RestoredStream {
  readonly name: string;
  readonly info: StreamInfo;
  /** Whether the restored stream's messages, first and last sequence are the manifest's. */
  readonly matches: boolean;
}

export interface RestoreBackupOptions
  extends Pick<RestoreOptions, "timeoutMs" | "chunkBytes" | "signal"> {
  /** Restore with this many replicas instead of the backup's (R1 to R3 and back). */
  readonly replicas?: number;
  readonly onProgress?: (progress: {
    readonly stream: string;
    readonly bytes: number;
    readonly total: number;
  }) => void;
}

/**
 * Restores every stream of a verified backup into the connected server, which must not have them
 * (checked for all before the first is restored). Each restored stream's state is compared with
 * the manifest.
 */
export async function restoreBackup(
  nc: NatsConnection,
  backup: VerifiedBackup,
  options: RestoreBackupOptions = {},
): Promise<RestoredStream[]> {
  // The server would take the whole upload and only then refuse to create the stream.
  const replicas = options.replicas ?? Math.max(...backup.manifest.streams.map((s) => s.replicas));
  if (replicas > 1 && !nc.info?.cluster) {
    throw new StreamBackupError(
      `${replicas} replicas need a JetStream cluster, and the server ${nc.info?.server_name ?? ""} is not in one; restore with --replicas 1`,
      "refused",
    );
  }
  const jsm = await jetstreamManager(nc);
  for (const s of backup.manifest.streams) {
    if (await streamInfoIfAny(jsm, s.name)) {
      throw new StreamBackupError(
        `stream ${s.name} already exists on the target server; a restore only creates streams (delete it first, as the admin, if it is to be replaced)`,
        "exists",
      );
    }
  }
  const restored: RestoredStream[] = [];
  for (const s of backup.manifest.streams) {
    const meta = backup.metas.get(s.name) as StreamSnapshotMeta;
    const config =
      options.replicas === undefined
        ? meta.config
        : { ...meta.config, num_replicas: options.replicas };
    const info = await restoreStream(nc, { config, state: meta.state }, backup.data(s.name), {
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.chunkBytes === undefined ? {} : { chunkBytes: options.chunkBytes }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      onProgress: ({ bytes }) =>
        options.onProgress?.({ stream: s.name, bytes, total: s.data_bytes }),
    });
    restored.push({ name: s.name, info, matches: sameState(info.state, s) });
  }
  return restored;
}
