import { checkpointNames, commandSnapshotNames } from "@ctx/event-store";
/**
 * The NATS server's accounts and users for the context service: one application account with
 * JetStream, one NKey user per role, each allowed exactly the subjects its process calls (read off
 * the code and checked by nats-auth.int.spec.ts against a real server). No anonymous user: a client
 * without credentials is refused.
 *
 * NATS permissions match whole subject tokens, so where a name is one token (a consumer name) a role
 * is bounded by stream and filter, not by the name's prefix; the comments say where.
 */

/** The identities of the system, one NATS user each. */
export const natsRoles = [
  "command",
  "projector-neo4j",
  "projector-valkey",
  "query",
  "snapshotter",
  "ctx",
  "admin",
] as const;

export type NatsRole = (typeof natsRoles)[number];

/** The stream, bucket and consumer names the permissions are written for. */
export interface NatsAuthNames {
  readonly eventStream: string;
  readonly eventSubjectPrefix: string;
  readonly parkedStream: string;
  readonly parkedSubjectPrefix: string;
  readonly snapshotStream: string;
  readonly snapshotSubjectPrefix: string;
  /** The snapshotter's durable consumer on the event stream. */
  readonly snapshotterConsumer: string;
  /** The lease bucket of each projection (`neo4j`, `valkey`). */
  readonly leaseBuckets: Readonly<Record<"neo4j" | "valkey", string>>;
}

export interface Permissions {
  readonly publish: { readonly allow: readonly string[]; readonly deny?: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[]; readonly deny?: readonly string[] };
}

/** The reply-inbox prefix of a role; the client must set it (NATS_INBOX_PREFIX). */
export function inboxPrefixOf(role: NatsRole): string {
  return role === "admin" ? "_INBOX" : `_INBOX_${role.replace(/-/g, "_")}`;
}

const api = "$JS.API";

/**
 * Reading one stream without a consumer: its info, direct gets (by sequence, last by subject; any
 * replica answers) and gets from its leader (for reads that must see all it acknowledged).
 */
function readStream(stream: string): string[] {
  return [
    `${api}.STREAM.INFO.${stream}`,
    `${api}.DIRECT.GET.${stream}`,
    `${api}.DIRECT.GET.${stream}.>`,
    `${api}.STREAM.MSG.GET.${stream}`,
  ];
}

/** A KV bucket used as a table: read, create/update/delete keys, watch (ordered consumers). */
function useBucket(bucket: string): string[] {
  const stream = `KV_${bucket}`;
  return [
    ...readStream(stream),
    `${api}.CONSUMER.CREATE.${stream}.>`,
    `${api}.CONSUMER.DELETE.${stream}.>`,
    `${api}.CONSUMER.MSG.NEXT.${stream}.>`,
    `$KV.${bucket}.>`,
  ];
}

/** The permissions of each role for the given names. */
export function rolePermissions(names: NatsAuthNames): Readonly<Record<NatsRole, Permissions>> {
  const events = names.eventStream;
  const commandSnapshots = commandSnapshotNames({
    stream: events,
    subjectPrefix: names.eventSubjectPrefix,
  });
  const own = (role: NatsRole) => [`${inboxPrefixOf(role)}.>`];
  const projector = (projection: "neo4j" | "valkey"): Permissions => ({
    publish: {
      allow: [
        `${api}.INFO`,
        ...readStream(events),
        // Its partition consumers: created, found, listed, pulled, acknowledged and deleted. The
        // name is one token (`{projection}_p{n}_{tenure}`), so the bound is the stream and the
        // partition filter, not the name.
        `${api}.CONSUMER.LIST.${events}`,
        `${api}.CONSUMER.NAMES.${events}`,
        `${api}.CONSUMER.INFO.${events}.*`,
        `${api}.CONSUMER.CREATE.${events}.*.${names.eventSubjectPrefix}.*.>`,
        `${api}.CONSUMER.DELETE.${events}.*`,
        `${api}.CONSUMER.MSG.NEXT.${events}.*`,
        `$JS.ACK.${events}.>`,
        ...useBucket(names.leaseBuckets[projection]),
        // Parking: the events it cannot apply, with the reason.
        `${api}.STREAM.INFO.${names.parkedStream}`,
        `${names.parkedSubjectPrefix}.${projection}.>`,
      ],
    },
    subscribe: { allow: own(`projector-${projection}`) },
  });
  return {
    command: {
      publish: {
        allow: [
          `${api}.INFO`,
          ...readStream(events),
          // Appends: `{prefix}.{story}.{type}`, stored as `{prefix}.{partition}.{story}.{type}`.
          `${names.eventSubjectPrefix}.*.*`,
          // Its own snapshots (loads, and writes: publishes and atomic batches); no other role's.
          ...readStream(commandSnapshots.stream),
          `${commandSnapshots.subjectPrefix}.>`,
        ],
      },
      subscribe: { allow: own("command") },
    },
    "projector-neo4j": projector("neo4j"),
    "projector-valkey": projector("valkey"),
    query: {
      publish: {
        allow: [
          `${api}.INFO`,
          ...readStream(events),
          ...readStream(names.snapshotStream),
          // The signed checkpoints, for ContextAuditService.
          ...readStream(
            checkpointNames({ stream: events, subjectPrefix: names.eventSubjectPrefix }).stream,
          ),
        ],
      },
      // Watches are plain subscriptions to a story's appends.
      subscribe: { allow: [...own("query"), `${names.eventSubjectPrefix}.*.*`] },
    },
    snapshotter: {
      publish: {
        allow: [
          `${api}.INFO`,
          ...readStream(events),
          ...readStream(names.snapshotStream),
          `${api}.CONSUMER.INFO.${events}.${names.snapshotterConsumer}`,
          `${api}.CONSUMER.CREATE.${events}.${names.snapshotterConsumer}.>`,
          `${api}.CONSUMER.MSG.NEXT.${events}.${names.snapshotterConsumer}`,
          `$JS.ACK.${events}.${names.snapshotterConsumer}.>`,
          `${names.snapshotSubjectPrefix}.>`,
        ],
      },
      subscribe: { allow: own("snapshotter") },
    },
    // The operator: provisioning, rebuilds, parked replay and discard, status, backups and
    // restores (JetStream's snapshot API: `$JS.API.STREAM.SNAPSHOT|RESTORE.*`, `$JS.SNAPSHOT.>`,
    // chunks to its own inbox; a restore only creates a stream). Everything but destroying
    // history: no stream delete or purge, no message delete on the event stream (an update could
    // lift deny_delete; this still stops it).
    ctx: {
      publish: {
        allow: [">"],
        deny: [
          `${api}.STREAM.DELETE.>`,
          `${api}.STREAM.PURGE.>`,
          `${api}.STREAM.MSG.DELETE.${events}`,
        ],
      },
      subscribe: { allow: [...own("ctx"), `${names.eventSubjectPrefix}.>`] },
    },
    admin: { publish: { allow: [">"] }, subscribe: { allow: [">"] } },
  };
}

const quote = (s: string) => JSON.stringify(s);
const list = (items: readonly string[], indent: string) =>
  `[\n${items.map((s) => `${indent}  ${quote(s)}`).join(",\n")}\n${indent}]`;

function permissionsBlock(p: Permissions, indent: string): string {
  const side = (name: string, s: Permissions["publish"]) => {
    const inner = `${indent}    `;
    const parts = [`${inner}allow: ${list(s.allow, inner)}`];
    if (s.deny && s.deny.length > 0) parts.push(`${inner}deny: ${list(s.deny, inner)}`);
    return `${indent}  ${name}: {\n${parts.join("\n")}\n${indent}  }`;
  };
  return `{\n${side("publish", p.publish)}\n${side("subscribe", p.subscribe)}\n${indent}}`;
}

/**
 * The server configuration fragment (`accounts { … }`) for the roles' public NKeys. Include it from
 * the server's configuration; it holds no secret.
 */
export function natsAuthConfig(
  names: NatsAuthNames,
  publicKeys: Readonly<Record<NatsRole, string>>,
): string {
  const permissions = rolePermissions(names);
  const users = natsRoles.map((role) => {
    const indent = "        ";
    return [
      `      # ${role}: inbox ${inboxPrefixOf(role)}`,
      `      {`,
      `${indent}nkey: ${publicKeys[role]}`,
      `${indent}permissions: ${permissionsBlock(permissions[role], indent)}`,
      `      }`,
    ].join("\n");
  });
  return [
    "# Generated by `ctx nats auth-config` (services/ctx/src/nats-auth). Public keys only: each",
    "# role's seed stays with its process. Every client must log in: there is no no_auth_user.",
    `# Names: events ${names.eventStream} (${names.eventSubjectPrefix}), parked ${names.parkedStream}`,
    `# (${names.parkedSubjectPrefix}), snapshots ${names.snapshotStream} (${names.snapshotSubjectPrefix}),`,
    `# leases ${names.leaseBuckets.neo4j} ${names.leaseBuckets.valkey}, snapshotter ${names.snapshotterConsumer}.`,
    "accounts {",
    "  CONTEXT {",
    "    jetstream: enabled",
    "    users: [",
    users.join(",\n"),
    "    ]",
    "  }",
    "}",
    "",
  ].join("\n");
}
