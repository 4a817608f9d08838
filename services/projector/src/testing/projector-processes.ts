import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { type EventStreamSettings, provisionEventStream } from "@ctx/event-store";
import { leaseBucket, leaseGroup, type ParkingNames, provisionParking } from "@ctx/projector";
import { eventually, stack, sumOfSamples, uniqueName, valkeyEnv } from "@ctx/test-support";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";

import { readModelKinds } from "../config.ts";

const entry = resolve(import.meta.dirname, "../main.ts");

/** A projector replica running as its own OS process, as in production, so tests can SIGKILL it. */
export interface ProjectorProcess {
  readonly replicaId: string;
  readonly process: ChildProcess;
  /** SIGKILL: no goodbye, no lease hand-over. */
  kill(): Promise<void>;
  /** SIGTERM: the graceful stop. */
  stop(): Promise<void>;
  output(): string;
  /**
   * Port of the replica's ops server (`/metrics`), known once it logged "projector ready": only
   * with LOG_LEVEL at info or below.
   */
  opsPort(): number | undefined;
  /** The sum of every sample of a Prometheus metric of the replica (`/metrics`). */
  metric(name: string): Promise<number>;
}

export function spawnProjector(env: Record<string, string>, replicaId: string): ProjectorProcess {
  const child = spawn(process.execPath, [entry], {
    env: {
      ...process.env,
      LOG_LEVEL: "warn",
      ...env,
      PROJECTOR_REPLICA_ID: replicaId,
      PROJECTOR_OPS_LISTEN: "127.0.0.1:0",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let opsPort: number | undefined;
  let pendingLine = "";
  child.stdout?.on("data", (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
    if (opsPort !== undefined) return;
    const lines = (pendingLine + d.toString()).split("\n");
    pendingLine = lines.pop() ?? "";
    for (const line of lines) opsPort ??= readyOpsPort(line);
  });
  child.stderr?.on("data", (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return {
    replicaId,
    process: child,
    kill: () => end("SIGKILL"),
    stop: () => end("SIGTERM"),
    output: () => out,
    opsPort: () => opsPort,
    async metric(name) {
      if (opsPort === undefined) throw new Error(`${replicaId} has not logged its ops port yet`);
      const response = await fetch(`http://127.0.0.1:${opsPort}/metrics`);
      return sumOfSamples(await response.text(), name);
    },
  };
}

/** The ops port in the "projector ready" log line (JSON, as pino writes it off a terminal). */
function readyOpsPort(line: string): number | undefined {
  if (!line.includes('"projector ready"')) return undefined;
  try {
    const { ops } = JSON.parse(line) as { ops?: unknown };
    return typeof ops === "number" ? ops : undefined;
  } catch {
    return undefined;
  }
}

/** Waits until a condition holds, with a generous timeout for loaded 2-core machines. */
export const settle = <T>(check: () => T | Promise<T>, timeout = 120_000) =>
  eventually(check, { timeout, interval: 250 });

/**
 * A test's own event stream, parking stream and lease buckets (with the replicas' lease TTL), named
 * after `prefix`, provisioned as `ctx provision` does: the projector service only checks for them.
 */
export async function provisionTestStreams(
  nc: NatsConnection,
  prefix: string,
  partitions: number,
  leaseTtlMs = 5_000,
): Promise<{ settings: EventStreamSettings; parking: ParkingNames }> {
  const name = uniqueName(prefix);
  const settings: EventStreamSettings = {
    stream: name,
    subjectPrefix: name.toLowerCase(),
    partitions,
    replicas: 1,
    duplicateWindowMs: 60_000,
  };
  const parking = { stream: `${name}_PARKED`, subjectPrefix: `${name.toLowerCase()}_parked` };
  const jsm = await jetstreamManager(nc);
  await provisionEventStream(jsm, settings);
  await provisionParking(jsm, parking);
  for (const kind of readModelKinds) {
    await new Kvm(nc).create(leaseBucket(leaseGroup(name, kind)), { ttl: leaseTtlMs, history: 1 });
  }
  return { settings, parking };
}

/** Where a Neo4j server is, for a replica's environment. */
export interface Neo4jAt {
  readonly url: string;
  readonly user: string;
  readonly passwordFile: string;
}

/**
 * The environment of projector replicas on those streams, logged in to the stack's Valkey as its
 * projector user; `more` adds or overrides settings.
 */
export function projectorEnv(
  streams: { settings: EventStreamSettings; parking: ParkingNames },
  at: { neo4j: Neo4jAt; namespace: string },
  more: Record<string, string> = {},
): Record<string, string> {
  const { settings, parking } = streams;
  return {
    ...stack().natsEnv,
    ...valkeyEnv(stack(), "projector"),
    NEO4J_URL: at.neo4j.url,
    NEO4J_USER: at.neo4j.user,
    NEO4J_PASSWORD_FILE: at.neo4j.passwordFile,
    READ_MODEL_NAMESPACE: at.namespace,
    EVENT_STREAM: settings.stream,
    EVENT_SUBJECT_PREFIX: settings.subjectPrefix,
    EVENT_PARTITIONS: String(settings.partitions),
    PARKED_STREAM: parking.stream,
    PARKED_SUBJECT_PREFIX: parking.subjectPrefix,
    ...more,
  };
}
