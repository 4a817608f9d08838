import { ConfigError } from "@ctx/config";
import { provisionEventStream } from "@ctx/event-store";
import { provisionParking } from "@ctx/projector";
import { JetStreamApiError } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { View } from "../cli/output.ts";
import { withCtxEnv } from "../ctx-env.ts";

/** JetStream's codes for a replica count the servers cannot hold. */
const REPLICAS_NOT_SUPPORTED = 10074; // replicas > 1 on a server that is not clustered
const INSUFFICIENT_RESOURCES = 10023; // less storage than the replicas need
const NO_SUITABLE_PEERS = 10005; // fewer servers than replicas (or none in the placement's tags)

/** What `ctx streams provision` and `ctx provision` made sure of. */
export interface Provisioned {
  readonly eventStream: {
    readonly name: string;
    readonly events: number;
    readonly partitions: number;
    readonly replicas: number;
    readonly subjects: readonly string[];
  };
  /** The other streams and the key-value buckets, in the order they were made ready. */
  readonly ready: readonly { readonly kind: "stream" | "kv"; readonly name: string }[];
}

export const provisionedView: View<Provisioned> = {
  text: ({ eventStream: s, ready }) => [
    `${s.name}: ${s.events} events, ${s.partitions} partitions, replicas ${s.replicas}, subjects ${s.subjects.join(" ")}`,
    ...ready.map((r) => `${r.kind === "kv" ? "KV " : ""}${r.name}: ready`),
  ],
};

/** `ctx streams provision`: creates or updates the event and parked streams (idempotent). */
export async function provisionStreams(): Promise<Provisioned> {
  return await withCtxEnv(async ({ config, nc, jsm, parking }) => {
    const replicas = config.EVENT_STREAM_REPLICAS;
    checkReplicas(nc, replicas, config.NATS_URL);
    const info = await withReplicaErrors(replicas, () =>
      provisionEventStream(jsm, {
        stream: config.EVENT_STREAM,
        subjectPrefix: config.EVENT_SUBJECT_PREFIX,
        partitions: config.EVENT_PARTITIONS,
        replicas,
        duplicateWindowMs: config.EVENT_DUPLICATE_WINDOW_MS,
      }),
    );
    await withReplicaErrors(replicas, () => provisionParking(jsm, parking, replicas));
    return {
      eventStream: {
        name: info.config.name,
        events: info.state.messages,
        partitions: config.EVENT_PARTITIONS,
        replicas: info.config.num_replicas,
        subjects: info.config.subjects ?? [],
      },
      ready: [{ kind: "stream", name: parking.stream }],
    };
  });
}

/**
 * Refuses, before anything is created, a replica count above 1 on a server that is not part of a
 * cluster: the server would refuse each stream in turn, and an operator should hear which setting
 * is wrong, not JetStream's words for it.
 *
 * @throws ConfigError naming EVENT_STREAM_REPLICAS
 */
export function checkReplicas(nc: NatsConnection, replicas: number, url: string): void {
  if (replicas > 1 && nc.info !== undefined && nc.info.cluster === undefined) {
    throw replicaError(
      replicas,
      `NATS at ${url} is a single server, not a JetStream cluster: set EVENT_STREAM_REPLICAS=1, or run a cluster of ${Math.max(3, replicas)} servers or more (make up NATS_CLUSTER=3)`,
    );
  }
}

/** Runs a provisioning step, turning JetStream's refusals of the replica count into ConfigErrors. */
export async function withReplicaErrors<T>(replicas: number, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (e instanceof JetStreamApiError && e.code === REPLICAS_NOT_SUPPORTED) {
      throw replicaError(replicas, `the NATS server is not clustered (JetStream: ${e.message})`, e);
    }
    if (
      e instanceof JetStreamApiError &&
      (e.code === INSUFFICIENT_RESOURCES || e.code === NO_SUITABLE_PEERS)
    ) {
      throw replicaError(
        replicas,
        `the cluster has fewer servers with JetStream (or less storage) than that; JetStream: ${e.message}`,
        e,
      );
    }
    throw e;
  }
}

function replicaError(replicas: number, why: string, cause?: unknown): ConfigError {
  return new ConfigError(
    [{ variable: "EVENT_STREAM_REPLICAS", message: `is ${replicas}, but ${why}` }],
    cause === undefined ? undefined : { cause },
  );
}
