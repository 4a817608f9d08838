import type { StoryId } from "@ctx/domain";
import type { RecordedEvent } from "@ctx/event-store";
import { partitionConsumers } from "@ctx/projector";
import type { OpenReadModel, ProjectorApp, ReadModelKind } from "@ctx/projector-service";
import { metricSum } from "@ctx/test-support";
import type { JetStreamManager } from "@nats-io/jetstream";

export interface ProjectorReplica {
  readonly kind: ReadModelKind;
  readonly id: string;
  readonly app: ProjectorApp;
}

const MAX_BEHIND = 10;

/**
 * What the projectors and their consumers say, as text: printed when a model does not catch up, so
 * that a failure far away (CI) says where the events stopped. Per replica: the partitions it holds,
 * its lease health, and its applied, skipped and parked counts; per partition of each model: the
 * newest tenure's consumer (pending, unacknowledged, ack floor, redeliveries, waiting pulls) and the
 * model's checkpoint; and the first stories the model has behind the stream.
 */
export async function describeProjectors(options: {
  readonly jsm: JetStreamManager;
  readonly stream: string;
  readonly replicas: readonly ProjectorReplica[];
  readonly models: ReadonlyMap<ReadModelKind, OpenReadModel>;
  readonly partitions: number;
  readonly stories: ReadonlyMap<string, readonly RecordedEvent[]>;
}): Promise<string> {
  const lines: string[] = [];
  const safely = async <T>(what: () => Promise<T>): Promise<T | string> =>
    what().catch((e: unknown) => `(${e instanceof Error ? e.message : String(e)})`);
  for (const { id, app } of options.replicas) {
    const counts = await safely(async () => {
      const [applied, skipped, parked] = await Promise.all(
        [
          "ctx_projector_events_applied_total",
          "ctx_projector_events_skipped_total",
          "ctx_projector_events_parked_total",
        ].map((name) => metricSum(app.opsPort, name)),
      );
      return `applied ${applied}, skipped ${skipped}, parked ${parked}`;
    });
    const health = await safely(
      async () => (await fetch(`http://127.0.0.1:${app.opsPort}/readyz`)).status,
    );
    lines.push(`${id}: holds [${app.owned().join(",")}], /readyz ${health}, ${counts}`);
  }
  for (const [kind, model] of options.models) {
    const generation = await safely(() => model.projection.activeGeneration());
    const consumers = await safely(() =>
      partitionConsumers(options.jsm, options.stream, model.projection.name),
    );
    for (let p = 0; p < options.partitions; p++) {
      const checkpoint =
        typeof generation === "number"
          ? await safely(() => model.projection.checkpoint(generation, p))
          : generation;
      const info = typeof consumers === "string" ? undefined : consumers.get(p);
      const consumer = info
        ? `${info.name}: pending ${info.num_pending}, unacknowledged ${info.num_ack_pending}, ack floor ${info.ack_floor.stream_seq}, delivered ${info.delivered.stream_seq}, redelivered ${info.num_redelivered}, waiting pulls ${info.num_waiting}, leader ${info.cluster?.leader ?? "?"}`
        : typeof consumers === "string"
          ? consumers
          : "no consumer";
      lines.push(`${kind} p${p}: checkpoint ${checkpoint}; ${consumer}`);
    }
    if (typeof generation !== "number") continue;
    let behind = 0;
    for (const [id, history] of options.stories) {
      const read = await safely(() => model.projection.readContext(generation, id as StoryId));
      const version = typeof read === "string" ? read : (read?.version ?? 0);
      if (version === history.length) continue;
      behind += 1;
      if (behind <= MAX_BEHIND) {
        const last = history[history.length - 1];
        lines.push(
          `${kind} ${id}: model at ${version}${typeof read === "object" && read?.stale ? " (stale)" : ""}, stream at ${history.length} (last event seq ${last?.sequence})`,
        );
      }
    }
    lines.push(`${kind}: ${behind} of ${options.stories.size} stories behind the stream`);
  }
  return lines.join("\n");
}
