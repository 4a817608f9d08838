import { env, eventStreamSchema, loadConfig } from "@ctx/config";
import { leaseBucket, leaseGroup } from "@ctx/projector";
import type { View } from "../cli/output.ts";
import type { NatsAuthNames } from "../nats-auth/nats-auth-config.ts";
import { writeNatsAuthFiles } from "../nats-auth/nats-auth-files.ts";

/** The names the permissions are written for: the same variables (and defaults) the services read. */
export const natsAuthNamesSchema = eventStreamSchema.extend({
  SNAPSHOT_STREAM: env.name("CONTEXT_SNAPSHOTS"),
  SNAPSHOT_SUBJECT_PREFIX: env.subjectPrefix("context.snapshots"),
  SNAPSHOTTER_CONSUMER: env.name("snapshotter"),
});

export function natsAuthNamesFrom(
  source: Readonly<Record<string, string | undefined>> = process.env,
): NatsAuthNames {
  const c = loadConfig(natsAuthNamesSchema, source);
  return {
    eventStream: c.EVENT_STREAM,
    eventSubjectPrefix: c.EVENT_SUBJECT_PREFIX,
    parkedStream: c.PARKED_STREAM,
    parkedSubjectPrefix: c.PARKED_SUBJECT_PREFIX,
    snapshotStream: c.SNAPSHOT_STREAM,
    snapshotSubjectPrefix: c.SNAPSHOT_SUBJECT_PREFIX,
    snapshotterConsumer: c.SNAPSHOTTER_CONSUMER,
    leaseBuckets: {
      neo4j: leaseBucket(leaseGroup(c.EVENT_STREAM, "neo4j")),
      valkey: leaseBucket(leaseGroup(c.EVENT_STREAM, "valkey")),
    },
  };
}

/** What `ctx nats auth-config` wrote. */
export interface NatsAuthWritten {
  readonly configFile: string;
  readonly users: readonly string[];
}

export const natsAuthWrittenView: View<NatsAuthWritten> = {
  text: ({ configFile, users }) => [`${configFile}: ${users.length} users (${users.join(", ")})`],
};

/** `ctx nats auth-config`: writes the server's users (public keys) and each role's seed. */
export function natsAuthConfigCommand(options: {
  config: string;
  secrets: string;
}): NatsAuthWritten {
  const files = writeNatsAuthFiles(natsAuthNamesFrom(), options.config, options.secrets);
  return { configFile: files.configFile, users: Object.keys(files.roles) };
}
