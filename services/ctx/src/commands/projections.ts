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
import { type CtxEnv, table, withCtxEnv } from "../ctx-env.ts";

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

/** `ctx projections status`: per projection and partition: owner, position, lag; parked counts. */
export async function projectionsStatus(print: (line: string) => void): Promise<void> {
  await withCtxEnv(async (env) => {
    const stream = await env.jsm.streams.info(env.names.stream);
    print(
      `${env.names.stream}: ${stream.state.messages} events, last sequence ${stream.state.last_seq}`,
    );
    for (const kind of readModelKinds) {
      const model = openReadModel(kind, env.config);
      try {
        const generation = await model.projection.activeGeneration();
        const owners = await leaseOwners(env, kind);
        const parked = await listParked(env.jsm, env.parking, kind);
        const rows: (string | number)[][] = [
          ["partition", "replica", "checkpoint", "ack floor", "pending"],
        ];
        let lag = 0;
        const consumers = await partitionConsumers(env.jsm, env.names.stream, kind);
        for (let p = 0; p < env.config.EVENT_PARTITIONS; p++) {
          const info = consumers.get(p);
          const pending = info ? info.num_pending + info.num_ack_pending : 0;
          lag += pending;
          rows.push([
            p,
            owners.get(p) ?? "-",
            await model.projection.checkpoint(generation, p),
            info?.ack_floor.stream_seq ?? "-",
            info ? pending : "-",
          ]);
        }
        print("");
        print(
          `${kind}: generation ${generation}, lag ${lag} events, parked ${parked.length}, replicas ${new Set(owners.values()).size}`,
        );
        print(table(rows));
      } catch (e) {
        print(`${kind}: unavailable (${(e as Error).message})`);
      } finally {
        await model.close();
      }
    }
  });
}

/**
 * `ctx projections rebuild <which> [--story S]`. With several models (`all`), they are rebuilt at
 * once, each replaying the stream on its own consumer: they wait on different stores, so together
 * they take about as long as the slower one, not the sum.
 */
export async function rebuildProjections(
  which: string,
  options: { story?: string; batchSize?: number },
  print: (line: string) => void,
): Promise<void> {
  const kinds = parseProjections(which);
  await withCtxEnv(async (env) => {
    const store = createEventStore(env.nc, { names: env.names });
    const models = kinds.map((kind) => ({ kind, model: openReadModel(kind, env.config) }));
    try {
      if (options.story) {
        for (const { kind, model } of models) {
          const { version } = await rebuildStory(model.projection, store, storyId(options.story));
          print(`${kind}: story ${options.story} rebuilt at version ${version}`);
        }
        return;
      }
      await rebuildAll(env, models, store, options.batchSize, print);
    } finally {
      await Promise.all(models.map(({ model }) => model.close()));
    }
  });
}

type Projection = Parameters<typeof rebuildProjection>[0]["projection"];

async function rebuildAll(
  env: CtxEnv,
  models: readonly { kind: ReadModelKind; model: { projection: Projection } }[],
  store: Parameters<typeof rebuildProjection>[0]["store"],
  batchSize: number | undefined,
  print: (line: string) => void,
): Promise<void> {
  // Ctrl-C: every rebuild stops after its current batch; live generations stay untouched.
  const abort = new AbortController();
  const onSigint = () => {
    print("\ninterrupting after the current batches; the live generations stay untouched");
    abort.abort();
  };
  process.once("SIGINT", onSigint);
  const bars =
    process.stderr.isTTY === true
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
        print(`${kind}: generation ${p.generation}: ${p.sequence}/${p.head} (${rate} events/s)`);
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
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    return result.switched
      ? `${kind}: rebuilt generation ${result.generation} (${result.events} events in ${seconds} s); readers switched from generation ${result.previousGeneration}, which is deleted`
      : `${kind}: rebuild of generation ${result.generation} interrupted after ${result.events} events; run it again to resume`;
  };
  try {
    const outcomes = await Promise.allSettled(
      models.map(({ kind, model }) => rebuildOne(kind, model.projection)),
    );
    bars?.stop();
    let failure: unknown;
    outcomes.forEach((outcome, i) => {
      const kind = models[i]?.kind;
      if (outcome.status === "fulfilled") print(outcome.value);
      else {
        print(`${kind}: rebuild failed: ${(outcome.reason as Error).message}`);
        failure ??= outcome.reason;
      }
    });
    if (failure !== undefined) throw failure;
    if (abort.signal.aborted) process.exitCode = 130;
  } finally {
    bars?.stop();
    process.removeListener("SIGINT", onSigint);
  }
}
