import {
  type BackupManifest,
  type BackupProgress,
  backupStreams,
  openBackup,
  restoreBackup,
  StreamBackupError,
  type VerifiedBackup,
} from "@ctx/event-store";
import { SingleBar } from "cli-progress";
import type { Output, View } from "../cli/output.ts";
import { withCtxEnv } from "../ctx-env.ts";

// `ctx streams backup` and `ctx streams restore`: JetStream's own snapshot and restore of the event
// stream (and the parked stream), with a manifest and checksums (libs/event-store, stream-backup.ts).

const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(1)} MB`;

/**
 * Runs `work` with Ctrl-C turned into an abort: a backup then deletes what it wrote, a restore
 * stops sending (the server drops the half-restored stream). Exit code 130 either way.
 */
async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    return await work(abort.signal);
  } catch (e) {
    if (abort.signal.aborted) process.exitCode = 130;
    throw e;
  } finally {
    process.removeListener("SIGINT", onSigint);
  }
}

/** What a progress update shows: a bar's format, position and payload, or a plain line. */
interface ProgressView {
  readonly format: string;
  readonly value: number;
  readonly total: number;
  readonly payload: Record<string, string | number>;
  readonly line: string;
}

/** Progress on a terminal: one bar per stream; otherwise a line every 2 s; none with --json. */
function progressReporter(output: Output) {
  const tty = output.bars;
  let bar: SingleBar | undefined;
  let current = "";
  let lastLine = 0;
  return {
    update(stream: string, view: ProgressView) {
      if (output.json) return;
      const total = Math.max(1, view.total);
      if (tty) {
        if (current !== stream) {
          bar?.stop();
          bar = new SingleBar({ format: view.format, hideCursor: true, clearOnComplete: false });
          bar.start(total, 0, view.payload);
          current = stream;
        }
        if (bar?.getTotal() !== total) bar?.setTotal(total);
        bar?.update(Math.min(view.value, total), view.payload);
      } else if (Date.now() - lastLine > 2_000) {
        lastLine = Date.now();
        output.note(view.line);
      }
    },
    stop() {
      bar?.stop();
      bar = undefined;
      current = "";
    },
  };
}

export interface BackupCommandOptions {
  readonly out: string;
  readonly stream?: string;
  readonly parked?: boolean;
  readonly force?: boolean;
}

/** What `ctx streams backup` wrote: the manifest, where, and how long it took. */
export interface BackupWritten extends BackupManifest {
  readonly out: string;
  readonly seconds: number;
}

export const backupWrittenView: View<BackupWritten> = {
  text: (b) => [
    ...b.streams.map(
      (s) =>
        `${s.name}: ${s.messages} messages (sequences ${s.first_seq}–${s.last_seq}), ${mb(s.data_bytes)} in ${s.data_file}, sha256 ${s.data_sha256}`,
    ),
    `backup of ${b.streams.length} stream(s) from nats-server ${b.server.version} written to ${b.out} in ${b.seconds.toFixed(1)} s (point in time: appends after the snapshot are not in it)`,
  ],
};

/** `ctx streams backup --out <path>`: a point-in-time snapshot of the event stream. */
export async function streamsBackup(
  options: BackupCommandOptions,
  output: Output,
): Promise<BackupWritten> {
  return await withCtxEnv(async ({ config, nc }) => {
    const streams = [options.stream ?? config.EVENT_STREAM];
    if (options.parked) streams.push(config.PARKED_STREAM);
    const progress = progressReporter(output);
    const started = Date.now();
    const manifest = await interruptible((signal) =>
      backupStreams(nc, {
        signal,
        streams,
        out: options.out,
        force: options.force === true,
        ...(config.NATS_INBOX_PREFIX === undefined
          ? {}
          : { inboxPrefix: config.NATS_INBOX_PREFIX }),
        // The snapshot's compressed size is not known ahead (S2 shrinks our events to about a
        // third): no percentage, the bytes received and the rate.
        onProgress: (p: BackupProgress) => {
          const seconds = Math.max(0.001, (Date.now() - started) / 1000);
          const payload = {
            stream: p.stream,
            received: mb(p.bytes),
            rate: mb(p.bytes / seconds),
            stored: mb(p.streamBytes),
            messages: p.messages,
          };
          progress.update(p.stream, {
            format:
              "{stream}: {received} received ({rate}/s) | snapshot of {messages} messages, {stored} stored",
            value: p.done ? 1 : 0,
            total: 1,
            payload,
            line: `${p.stream}: ${payload.received} received (${payload.rate}/s) of a snapshot of ${p.messages} messages, ${payload.stored} stored`,
          });
        },
      }),
    ).finally(() => progress.stop());
    return { out: options.out, seconds: (Date.now() - started) / 1000, ...manifest };
  });
}

export interface RestoreCommandOptions {
  readonly from: string;
  /** Parsed by commander (integerOption(1, 5)). */
  readonly replicas?: number;
}

/** A restored stream, and whether it matches what the backup's manifest says. */
export interface RestoredStream {
  readonly name: string;
  readonly replicas: number;
  readonly messages: number;
  readonly first_seq: number;
  readonly last_seq: number;
  readonly bytes: number;
  readonly matches_manifest: boolean;
  /** What the manifest says of it. */
  readonly manifest: {
    readonly messages: number;
    readonly first_seq: number;
    readonly last_seq: number;
  };
}

export interface RestoreDone {
  readonly from: string;
  readonly seconds: number;
  readonly streams: readonly RestoredStream[];
}

export const restoreDoneView: View<RestoreDone> = {
  text: ({ streams, seconds }) => [
    ...streams.map(
      (s) =>
        `${s.name}: restored ${s.messages} messages (sequences ${s.first_seq}–${s.last_seq}), replicas ${s.replicas}: ${s.matches_manifest ? "matches the manifest" : "DOES NOT match the manifest"}`,
    ),
    `restored in ${seconds.toFixed(1)} s`,
  ],
  failure: ({ streams }) => {
    const wrong = streams.filter((s) => !s.matches_manifest);
    if (wrong.length === 0) return undefined;
    return new StreamBackupError(
      `the restored state differs from the backup's manifest: ${wrong
        .map(
          (s) =>
            `${s.name} has ${s.messages} messages, sequences ${s.first_seq}–${s.last_seq}; the manifest says ${s.manifest.messages}, ${s.manifest.first_seq}–${s.manifest.last_seq}`,
        )
        .join("; ")}`,
      "mismatch",
    );
  },
};

/**
 * `ctx streams restore --from <path>`: checks the backup, restores its streams into a server that
 * does not have them, and compares the restored state with the manifest.
 */
export async function streamsRestore(
  options: RestoreCommandOptions,
  output: Output,
): Promise<RestoreDone> {
  // Verified before connecting: a damaged backup never reaches the server.
  const backup = await openBackup(options.from);
  output.note(
    `backup of ${backup.manifest.created_at} from nats-server ${backup.manifest.server.version}: manifest and checksums verified`,
  );
  try {
    return await restoreVerified(backup, options, output);
  } finally {
    await backup.close();
  }
}

async function restoreVerified(
  backup: VerifiedBackup,
  options: RestoreCommandOptions,
  output: Output,
): Promise<RestoreDone> {
  return await withCtxEnv(async ({ nc }) => {
    const progress = progressReporter(output);
    const started = Date.now();
    const restored = await interruptible((signal) =>
      restoreBackup(nc, backup, {
        signal,
        ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
        onProgress: (p) =>
          progress.update(p.stream, {
            format: "{stream} [{bar}] {percentage}% | {sent} of {size} | ETA {eta_formatted}",
            value: p.bytes,
            total: p.total,
            payload: { stream: p.stream, sent: mb(p.bytes), size: mb(p.total) },
            line: `${p.stream}: ${mb(p.bytes)} of ${mb(p.total)} restored`,
          }),
      }),
    ).finally(() => progress.stop());
    const said = (name: string) => backup.manifest.streams.find((s) => s.name === name);
    return {
      from: options.from,
      seconds: (Date.now() - started) / 1000,
      streams: restored.map((r) => {
        const m = said(r.name);
        return {
          name: r.name,
          replicas: r.info.config.num_replicas,
          messages: r.info.state.messages,
          first_seq: r.info.state.first_seq,
          last_seq: r.info.state.last_seq,
          bytes: r.info.state.bytes,
          matches_manifest: r.matches,
          manifest: {
            messages: m?.messages ?? 0,
            first_seq: m?.first_seq ?? 0,
            last_seq: m?.last_seq ?? 0,
          },
        };
      }),
    };
  });
}
