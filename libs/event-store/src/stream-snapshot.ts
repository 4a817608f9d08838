import type { ApiError, StreamConfig, StreamInfo, StreamState } from "@nats-io/jetstream";
import {
  createInbox,
  Empty,
  errors,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { isNatsOutage, StreamBackupError } from "./errors.ts";

// JetStream's own stream snapshot and restore API, which nats.js v3 has no client for. What the
// server (2.15) does, read off its source (server/jetstream_api.go, stream_backup.go):
//
// Snapshot: a request to `$JS.API.STREAM.SNAPSHOT.<stream>` names a deliver subject; the server
// answers with the stream's config and state, takes a point-in-time snapshot (messages up to the
// state's last sequence, whatever is appended meanwhile), and streams it as S2-compressed chunks to
// the deliver subject. Each chunk but the last carries a reply subject: acknowledging it gives the
// server room for one more chunk (a window of `window_size` bytes in flight); without an ack for
// 5 s the server gives up. An empty message ends it: status 204 (or none, when the whole snapshot
// fit in one chunk) when complete, 408/500 with a description when the server failed.
//
// Restore: a request to `$JS.API.STREAM.RESTORE.<stream>` with the config and state (the config
// may differ: replicas, placement; not the name) is answered with a deliver subject. Every chunk is
// a request to it (an empty answer is the ack, a JSON error a refusal); an empty request ends the
// upload and is answered with the restored stream's info once the server has stored it. The
// server refuses a stream that exists, and one it has no room or peers for.

const api = "$JS.API";

/** A snapshot's description as the server gives it: what a restore sends back. */
export interface StreamSnapshotMeta {
  readonly config: StreamConfig;
  readonly state: StreamState;
}

export interface SnapshotProgress {
  /** Bytes of snapshot data received (compressed, as stored in the backup). */
  readonly bytes: number;
  readonly chunks: number;
}

export interface SnapshotOptions {
  /** The connection's reply-inbox prefix (NATS_INBOX_PREFIX): the chunks come to an inbox there. */
  readonly inboxPrefix?: string;
  /** Bytes per chunk (the server clamps to 1 KiB–1 MiB). Default 128 KiB. */
  readonly chunkBytes?: number;
  /** Bytes the server may have in flight unacknowledged (1 KiB–32 MiB). Default 8 MiB. */
  readonly windowBytes?: number;
  /** How long the API request, and the wait for each next chunk, may take. Default 30 s. */
  readonly timeoutMs?: number;
  /** Stops the snapshot (the server drops it when its chunks are no longer acknowledged). */
  readonly signal?: AbortSignal;
  /** Called with the config and state as soon as the server answers, before the first chunk. */
  readonly onMeta?: (meta: StreamSnapshotMeta) => void;
  readonly onProgress?: (progress: SnapshotProgress) => void;
}

interface ApiResponse {
  readonly error?: ApiError;
}

function apiFailure(what: string, error: ApiError): StreamBackupError {
  return new StreamBackupError(
    `${what}: ${error.description} (JetStream error ${error.err_code})`,
    error.err_code === 10059 ? "not_found" : error.err_code === 10130 ? "exists" : "server",
  );
}

function requestFailure(what: string, e: unknown): StreamBackupError {
  const message = e instanceof Error ? e.message : String(e);
  const refused = /permissions violation/i.test(message);
  const why = refused
    ? "this NATS user may not do it (permissions violation)"
    : isNatsOutage(e)
      ? `NATS did not answer (${message}); in a cluster a stream elects a new leader for a few seconds after a server is lost: try again`
      : message;
  return new StreamBackupError(`${what}: ${why}`, refused ? "refused" : "server", { cause: e });
}

/** The next message of an iterator, or an error when none comes within `ms` or `signal` aborts. */
async function nextWithin<T>(
  it: AsyncIterator<T>,
  ms: number,
  what: string,
  signal: AbortSignal | undefined,
): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new StreamBackupError(`${what}: nothing arrived for ${ms} ms`, "server")),
      ms,
    );
    onAbort = () => reject(interrupted(what));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const r = await Promise.race([it.next(), stop]);
    return r.done ? undefined : r.value;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

const interrupted = (what: string) => new StreamBackupError(`${what}: interrupted`, "interrupted");

/**
 * Snapshots `stream`, handing each chunk to `write` in order and acknowledging it only once
 * written: the server never has more than the window ahead of the disk. Returns the config and
 * state the snapshot holds (point in time: what was stored when the server took it).
 */
export async function snapshotStream(
  nc: NatsConnection,
  stream: string,
  write: (chunk: Uint8Array) => Promise<void>,
  options: SnapshotOptions = {},
): Promise<StreamSnapshotMeta> {
  const timeout = options.timeoutMs ?? 30_000;
  const what = `snapshot of stream ${stream}`;
  const deadline = Date.now() + timeout;
  let sub: Subscription | undefined;
  try {
    let reply: Msg;
    // A stream without a leader (an election after a server was lost) leaves the request
    // unanswered: ask again, each time on a new inbox so that chunks of an abandoned attempt can
    // never mix with the next one's, until the timeout is spent.
    for (;;) {
      const inbox = createInbox(options.inboxPrefix ?? "_INBOX");
      sub = nc.subscribe(inbox);
      // Subscribed before asking: the server sends the first chunk right after its answer.
      await nc.flush();
      const left = deadline - Date.now();
      try {
        reply = await nc.request(
          `${api}.STREAM.SNAPSHOT.${stream}`,
          JSON.stringify({
            deliver_subject: inbox,
            no_consumers: true,
            chunk_size: options.chunkBytes ?? 128 * 1024,
            window_size: options.windowBytes ?? 8 * 1024 * 1024,
          }),
          { timeout: Math.max(1, Math.min(ATTEMPT_MS, left)) },
        );
        break;
      } catch (e) {
        sub.unsubscribe();
        sub = undefined;
        const unanswered =
          e instanceof errors.TimeoutError || e instanceof errors.NoRespondersError;
        if (!unanswered || deadline - Date.now() < PAUSE_MS || options.signal?.aborted) {
          throw requestFailure(what, e);
        }
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
    }
    const answer = reply.json<ApiResponse & Partial<StreamSnapshotMeta>>();
    if (answer.error) throw apiFailure(what, answer.error);
    if (!answer.config || !answer.state) {
      throw new StreamBackupError(`${what}: the server's answer has no config or state`, "server");
    }
    const meta = { config: answer.config, state: answer.state };
    options.onMeta?.(meta);
    const it = (sub as Subscription)[Symbol.asyncIterator]();
    let bytes = 0;
    let chunks = 0;
    for (;;) {
      const m: Msg | undefined = await nextWithin(it, timeout, what, options.signal);
      if (m === undefined)
        throw new StreamBackupError(`${what}: the subscription closed`, "server");
      if (m.data.length === 0) {
        // 204 after full chunks; no status at all when the snapshot fit in one short chunk.
        const code = m.headers?.code ?? 0;
        if (code !== 204 && code !== 0) {
          const why = m.headers?.description || "no description";
          throw new StreamBackupError(`${what} failed on the server: ${code} ${why}`, "server");
        }
        break;
      }
      await write(m.data);
      bytes += m.data.length;
      chunks += 1;
      if (m.reply) m.respond(Empty);
      options.onProgress?.({ bytes, chunks });
    }
    return meta;
  } finally {
    sub?.unsubscribe();
  }
}

/** How long one snapshot request waits for the stream's leader, and the pause before the next. */
const ATTEMPT_MS = 5_000;
const PAUSE_MS = 250;

export interface RestoreProgress {
  /** Bytes of snapshot data sent and stored by the server. */
  readonly bytes: number;
}

export interface RestoreOptions {
  /** Bytes per chunk; at most the server's max_payload. Default 128 KiB. */
  readonly chunkBytes?: number;
  /** Chunks sent before the first is acknowledged. Default 4. */
  readonly inFlight?: number;
  /** How long the server may take to acknowledge a chunk. Default 30 s. */
  readonly timeoutMs?: number;
  /** Stops the upload; the server drops the half-restored stream after 5 s without a chunk. */
  readonly signal?: AbortSignal;
  /** How long the server may take to finish after the last chunk. Default 10 minutes. */
  readonly finishTimeoutMs?: number;
  readonly onProgress?: (progress: RestoreProgress) => void;
}

/** Re-cuts a byte source into chunks of exactly `size` bytes (the last may be shorter). */
async function* rechunk(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
): AsyncGenerator<Uint8Array> {
  let pending = new Uint8Array(size);
  let filled = 0;
  for await (const piece of source) {
    let offset = 0;
    while (offset < piece.length) {
      const n = Math.min(size - filled, piece.length - offset);
      pending.set(piece.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === size) {
        yield pending;
        pending = new Uint8Array(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield pending.subarray(0, filled);
}

/**
 * Restores a snapshot as a new stream named `meta.config.name` (the server refuses one that
 * exists), uploading `data` (the snapshot's bytes, as `snapshotStream` wrote them). `meta.config`
 * may differ from the snapshot's in replicas and placement. Returns the restored stream's info.
 */
export async function restoreStream(
  nc: NatsConnection,
  meta: StreamSnapshotMeta,
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: RestoreOptions = {},
): Promise<StreamInfo> {
  const stream = meta.config.name;
  const what = `restore of stream ${stream}`;
  const timeout = options.timeoutMs ?? 30_000;
  const reply = await nc
    .request(`${api}.STREAM.RESTORE.${stream}`, JSON.stringify(meta), { timeout })
    .catch((e: unknown) => {
      throw requestFailure(what, e);
    });
  const answer = reply.json<ApiResponse & { deliver_subject?: string }>();
  if (answer.error) throw apiFailure(what, answer.error);
  const deliver = answer.deliver_subject;
  if (!deliver)
    throw new StreamBackupError(`${what}: the server named no deliver subject`, "server");

  const acked = (m: Msg) => {
    if (m.data.length === 0) return;
    const refusal = m.json<ApiResponse>();
    if (refusal.error) throw apiFailure(what, refusal.error);
  };
  const inFlight: Promise<Msg>[] = [];
  const maxInFlight = Math.max(1, options.inFlight ?? 4);
  let bytes = 0;
  const settleOldest = async () => {
    acked(
      await (inFlight.shift() as Promise<Msg>).catch((e: unknown) => {
        throw requestFailure(what, e);
      }),
    );
  };
  try {
    for await (const chunk of rechunk(data, options.chunkBytes ?? 128 * 1024)) {
      if (options.signal?.aborted) throw interrupted(what);
      if (inFlight.length >= maxInFlight) await settleOldest();
      const sent = nc.request(deliver, chunk, { timeout });
      inFlight.push(sent);
      // The size is counted when the server has it; a failure is reported by settleOldest.
      sent.then(
        () => {
          bytes += chunk.length;
          options.onProgress?.({ bytes });
        },
        () => undefined,
      );
    }
    while (inFlight.length > 0) await settleOldest();
  } catch (e) {
    // Let the requests still out fail quietly: the first failure is the one to report.
    for (const p of inFlight) p.catch(() => undefined);
    throw e;
  }
  const done = await nc
    .request(deliver, Empty, { timeout: options.finishTimeoutMs ?? 600_000 })
    .catch((e: unknown) => {
      throw requestFailure(what, e);
    });
  const created = done.json<ApiResponse & Partial<StreamInfo>>();
  if (created.error) throw apiFailure(what, created.error);
  if (!created.config || !created.state) {
    throw new StreamBackupError(`${what}: the server's last answer has no stream info`, "server");
  }
  return created as StreamInfo;
}
