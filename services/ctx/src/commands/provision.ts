import { env, loadConfig } from "@ctx/config";
import { commandSnapshotNames, provisionCommandSnapshotStream } from "@ctx/event-store";
import { leaseBucket, leaseGroup } from "@ctx/projector";
import { readModelKinds } from "@ctx/projector-service";
import { provisionSnapshotStream } from "@ctx/snapshots";
import { Kvm } from "@nats-io/kv";
import { z } from "zod";
import { withCtxEnv } from "../ctx-env.ts";
import { type Provisioned, provisionStreams, withReplicaErrors } from "./streams.ts";

/** What `ctx provision` reads beside ctx's own variables: the same names and TTL the services use. */
const provisionSchema = z.object({
  SNAPSHOT_STREAM: env.name("CONTEXT_SNAPSHOTS"),
  SNAPSHOT_SUBJECT_PREFIX: env.subjectPrefix("context.snapshots"),
  PROJECTOR_LEASE_TTL_MS: env.int(5_000),
});

/**
 * `ctx provision`: creates or updates everything the services expect to find (the event, parked,
 * snapshot and command snapshot streams, the projectors' lease buckets), idempotently. The services only check that it is
 * there, so their NATS users need no right to create, change or delete a stream; run this (a
 * Kubernetes Job, `make up`) with the ctx operator's credentials, before or after the services.
 */
export async function provision(): Promise<Provisioned> {
  const streams = await provisionStreams();
  const extra = loadConfig(provisionSchema);
  return await withCtxEnv(async ({ config, nc, jsm }) => {
    const ready = [...streams.ready];
    const replicas = config.EVENT_STREAM_REPLICAS;
    const snapshots = await withReplicaErrors(replicas, () =>
      provisionSnapshotStream(jsm, {
        stream: extra.SNAPSHOT_STREAM,
        subjectPrefix: extra.SNAPSHOT_SUBJECT_PREFIX,
        replicas,
        duplicateWindowMs: config.EVENT_DUPLICATE_WINDOW_MS,
      }),
    );
    ready.push({ kind: "stream", name: snapshots.config.name });
    const commandSnapshots = await withReplicaErrors(replicas, () =>
      provisionCommandSnapshotStream(
        jsm,
        commandSnapshotNames({
          stream: config.EVENT_STREAM,
          subjectPrefix: config.EVENT_SUBJECT_PREFIX,
        }),
        replicas,
      ),
    );
    ready.push({ kind: "stream", name: commandSnapshots.config.name });
    const kvm = new Kvm(nc);
    for (const kind of readModelKinds) {
      const bucket = leaseBucket(leaseGroup(config.EVENT_STREAM, kind));
      await withReplicaErrors(replicas, () =>
        kvm.create(bucket, { ttl: extra.PROJECTOR_LEASE_TTL_MS, history: 1, replicas }),
      );
      // The lease table is read by direct get.
      const info = await jsm.streams.info(`KV_${bucket}`);
      if (!info.config.allow_direct) {
        await jsm.streams.update(info.config.name, { ...info.config, allow_direct: true });
      }
      ready.push({ kind: "kv", name: bucket });
    }
    return { ...streams, ready };
  });
}
