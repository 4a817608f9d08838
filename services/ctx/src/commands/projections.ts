import { createLogger } from "@ctx/config";
import { storyId } from "@ctx/domain";
import { createEventStore } from "@ctx/event-store";
import {
  leaseBucket,
  leaseGroup,
  listParked,
  partitionConsumers,
  type RebuildProgress,
  readLeaseTable,
  rebuildProjection,
  rebuildStory,
} from "@ctx/projector";
import { openReadModel, type ReadModelKind, readModelKinds } from "@ctx/projector-service";
import { MultiBar } from "cli-progress";
import { type Output, table, type View } from "../cli/output.ts";
import { type CtxEnv, withCtxEnv } from "../ctx-env.ts";
import { operatorName, recordOperation } from "../operations-log.ts";

export function parseProjections(which: string): readonly ReadModelKind[] {
  if (which === "all") return readModelKinds;
  if ((readModelKinds as readonly string[]).includes(which)) return [which as ReadModelKind];
  throw new Error(`unknown projection "${which}": use ${readModelKinds.join(", ")} or all`);
}

/**
 * Who holds each partition, read the way the replicas read it (one batched direct get, no
 * consumer: a key listing left one on the bucket for minutes per call). No bucket: no owners.
 */
async function leaseOwners(env: CtxEnv, kind: string): Promise<Map<number, string>> {
  const owners = new Map<number, string>();
  const group = leaseGroup(env.names.stream, kind);
  const exists = await env.jsm.streams.info(`KV_${leaseBucket(group)}`).then(
    () => true,
    () => false,
  );
  if (!exists) return owners;
  const { leases } = await readLeaseTable(env.jsm, group);
  for (const [partition, lease] of leases) owners.set(partition, lease.owner);
  return owners;
}

/** One partition of a projection in `ctx projections status`. */
export interface PartitionStatus {
  readonly partition: number;
  /** The replica holding its lease; null: none. */
  readonly replica: string | null;
  readonly checkpoint: number;
  /** The consumer's ack floor and pending events; null: no consumer yet. */
  readonly ackFloor: number | null;
  readonly pending: number | null;
}

export type ProjectionStatus =
  | {
      readonly projection: ReadModelKind;
      readonly generation: number;
      readonly lag: number;
      readonly parked: number;
      readonly replicas: number;
      readonly partitions: readonly PartitionStatus[];
    }
  | { readonly projection: ReadModelKind; readonly unavailable: string };

export interface ProjectionsStatus {
  readonly stream: string;
  readonly events: number;
  readonly lastSequence: number;
  readonly projections: readonly ProjectionStatus[];
}

export const projectionsStatusView: View<ProjectionsStatus> = {
  text: ({ stream, events, lastSequence, projections }) => [
    `${stream}: ${events} events, last sequence ${lastSequence}`,
    ...projections.flatMap((p) =>
      "unavailable" in p
        ? [`${p.projection}: unavailable (${p.unavailable})`]
        : [
            "",
            `${p.projection}: generation ${p.generation}, lag ${p.lag} events, parked ${p.parked}, replicas ${p.replicas}`,
            table([
              ["partition", "replica", "checkpoint", "ack floor", "pending"],
              ...p.partitions.map((x) => [
                x.partition,
                x.replica ?? "-",
                x.checkpoint,
                x.ackFloor ?? "-",
                x.pending ?? "-",
              ]),
            ]),
          ],
    ),
  ],
};

/** `ctx projections status`: per projection and partition: owner, position, lag; parked counts. */
export async function projectionsStatus(): Promise<ProjectionsStatus> {
  return await withCtxEnv(async (env) => {
    const stream = await env.jsm.streams.info(env.names.stream);
    const projections: ProjectionStatus[] = [];
    for (const kind of readModelKinds) {
      const model = openReadModel(kind, env.config);
      try {
        const generation = await model.projection.activeGeneration();
        const owners = await leaseOwners(env, kind);
        const parked = await listParked(env.jsm, env.parking, kind);
        const partitions: PartitionStatus[] = [];
        const consumers = await partitionConsumers(env.jsm, env.names.stream, kind);
        for (let p = 0; p < env.config.EVENT_PARTITIONS; p++) {
          const info = consumers.get(p);
          partitions.push({
            partition: p,
            replica: owners.get(p) ?? null,
            checkpoint: await model.projection.checkpoint(generation, p),
            ackFloor: info?.ack_floor.stream_seq ?? null,
            pending: info ? info.num_pending + info.num_ack_pending : null,
          });
        }
        projections.push({
          projection: kind,
          generation,
          lag: partitions.reduce((sum, p) => sum + (p.pending ?? 0), 0),
          parked: parked.length,
          replicas: new Set(owners.values()).size,
          partitions,
        });
      } catch (e) {
        projections.push({ projection: kind, unavailable: (e as Error).message });
      } finally {
        await model.close();
      }
    }
    return {
      stream: env.names.stream,
      events: stream.state.messages,
      lastSequence: stream.state.last_seq,
      projections,
    };
  });
}

/** What became of one projection's rebuild. */
export type RebuildOutcome =
  | { readonly projection: ReadModelKind; readonly story: string; readonly version: number }
  | {
      readonly projection: ReadModelKind;
      readonly generation: number;
      readonly events: number;
      readonly seconds: number;
      /** Readers switched to the new generation; false: interrupted, the next run resumes. */
      readonly switched: boolean;
      readonly previousGeneration: number;
    }
  | { readonly projection: ReadModelKind; readonly failed: string };

export interface RebuildResult {
  readonly rebuilds: readonly RebuildOutcome[];
  /** Ctrl-C stopped it after the current batches (exit code 130). */
  readonly interrupted: boolean;
}

export const rebuildView: View<RebuildResult> = {
  text: ({ rebuilds }) =>
    rebuilds.map((r) =>
      "failed" in r
        ? `${r.projection}: rebuild failed: ${r.failed}`
        : "story" in r
          ? `${r.projection}: story ${r.story} rebuilt at version ${r.version}`
          : r.switched
            ? `${r.projection}: rebuilt generation ${r.generation} (${r.events} events in ${r.seconds.toFixed(1)} s); readers switched from generation ${r.previousGeneration}, which is deleted`
            : `${r.projection}: rebuild of generation ${r.generation} interrupted after ${r.events} events; run it again to resume`,
    ),
  exitCode: ({ interrupted }) => (interrupted ? 130 : 0),
  failure: ({ rebuilds }) => {
    const failed = rebuilds.find((r) => "failed" in r);
    return failed && "failed" in failed ? new Error(failed.failed) : undefined;
  },
};

/**
 * `ctx projections rebuild <which> [--story S]`. With several models (`all`), they are rebuilt at
 * once, each replaying the stream on its own consumer: they wait on different stores, so together
 * they take about as long as the slower one, not the sum.
 */
export async function rebuildProjections(
  which: string,
  options: { story?: string; batchSize?: number; operator?: string },
  output: Output,
): Promise<RebuildResult> {
  const kinds = parseProjections(which);
  return await withCtxEnv(async (env) => {
    const store = createEventStore(env.nc, { names: env.names });
    const models = kinds.map((kind) => ({ kind, model: openReadModel(kind, env.config) }));
    let result: RebuildResult | undefined;
    try {
      if (options.story) {
        const rebuilds: RebuildOutcome[] = [];
        for (const { kind, model } of models) {
          const { version } = await rebuildStory(model.projection, store, storyId(options.story));
          rebuilds.push({ projection: kind, story: options.story, version });
        }
        result = { rebuilds, interrupted: false };
      } else {
        result = await rebuildAll(env, models, store, options.batchSize, output);
      }
      return result;
    } finally {
      await Promise.all(models.map(({ model }) => model.close()));
      // On the record for the audit report, whatever the outcome (a failure too).
      await recordOperation(env, {
        action: "projection-rebuild",
        at: new Date().toISOString(),
        operator: operatorName(options.operator),
        outcome:
          result === undefined || result.rebuilds.some((r) => "failed" in r)
            ? "failed"
            : result.interrupted
              ? "interrupted"
              : "done",
        detail: rebuildDetail(which, options.story, result),
      }).catch((e: unknown) =>
        output.note(
          `warning: the rebuild could not be recorded in the operations log (the audit report will not list it): ${e instanceof Error ? e.message : String(e)}`,
        ),
      );
    }
  });
}

/** A rebuild in a few words, for the operations log. */
function rebuildDetail(
  which: string,
  story: string | undefined,
  result: RebuildResult | undefined,
) {
  const what = `${which}${story === undefined ? "" : ` story ${story}`}`;
  if (result === undefined) return `${what}: stopped by an error`;
  return `${what}: ${result.rebuilds
    .map((r) =>
      "failed" in r
        ? `${r.projection} failed (${r.failed.slice(0, 200)})`
        : "story" in r
          ? `${r.projection} at version ${r.version}`
          : `${r.projection} generation ${r.generation}, ${r.events} events in ${r.seconds.toFixed(1)} s${r.switched ? "" : ", not switched"}`,
    )
    .join("; ")}`;
}

type Projection = Parameters<typeof rebuildProjection>[0]["projection"];

async function rebuildAll(
  env: CtxEnv,
  models: readonly { kind: ReadModelKind; model: { projection: Projection } }[],
  store: Parameters<typeof rebuildProjection>[0]["store"],
  batchSize: number | undefined,
  output: Output,
): Promise<RebuildResult> {
  // Ctrl-C: every rebuild stops after its current batch; live generations stay untouched.
  const abort = new AbortController();
  const onSigint = () => {
    output.note("\ninterrupting after the current batches; the live generations stay untouched");
    abort.abort();
  };
  process.once("SIGINT", onSigint);
  const bars = output.bars
    ? new MultiBar({
        format:
          "{kind} [{bar}] {percentage}% | {value}/{total} seq | {rate} ev/s | ETA {eta_formatted}",
        hideCursor: true,
        clearOnComplete: false,
      })
    : undefined;
  const started = Date.now();
  const rebuildOne = async (kind: ReadModelKind, projection: Projection) => {
    const bar = bars?.create(1, 0, { kind: kind.padEnd(6), rate: 0 });
    let lastLine = 0;
    const progress = (p: RebuildProgress) => {
      const rate = Math.round(p.events / Math.max(0.001, (Date.now() - started) / 1000));
      if (bar) {
        if (bar.getTotal() !== p.head) bar.setTotal(p.head);
        bar.update(p.sequence, { rate });
      } else if (Date.now() - lastLine > 2_000) {
        lastLine = Date.now();
        output.note(
          `${kind}: generation ${p.generation}: ${p.sequence}/${p.head} (${rate} events/s)`,
        );
      }
    };
    const result = await rebuildProjection({
      nc: env.nc,
      store,
      partitions: env.config.EVENT_PARTITIONS,
      projection,
      parking: env.parking,
      logger: createLogger({ name: "ctx", level: "warn" }),
      ...(batchSize === undefined ? {} : { batchSize }),
      signal: abort.signal,
      onProgress: progress,
    });
    return {
      projection: kind,
      generation: result.generation,
      events: result.events,
      seconds: (Date.now() - started) / 1000,
      switched: result.switched,
      previousGeneration: result.previousGeneration,
    };
  };
  try {
    const outcomes = await Promise.allSettled(
      models.map(({ kind, model }) => rebuildOne(kind, model.projection)),
    );
    bars?.stop();
    return {
      rebuilds: outcomes.map((outcome, i): RebuildOutcome => {
        if (outcome.status === "fulfilled") return outcome.value;
        const projection = models[i]?.kind as ReadModelKind;
        return { projection, failed: (outcome.reason as Error).message };
      }),
      interrupted: abort.signal.aborted,
    };
  } finally {
    bars?.stop();
    process.removeListener("SIGINT", onSigint);
  }
}
