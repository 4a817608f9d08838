import { createHash } from "node:crypto";
import type { Logger } from "@ctx/config";
import { collectDirectBatch } from "@ctx/event-store/direct-get";
import { type JetStreamManager, jetstreamManager, type StoredMsg } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";

export interface PartitionLeasesOptions {
  /** Names the KV bucket: one lease table per projection. */
  readonly group: string;
  /** This replica's stable identity (the StatefulSet pod name, HOSTNAME locally). */
  readonly replicaId: string;
  readonly partitions: number;
  /** How often members heartbeat and leases are renewed (default 1 s). */
  readonly heartbeatMs?: number;
  /** A member or lease not renewed for this long is gone (default 5 s): the failover time. */
  readonly ttlMs?: number;
  readonly logger: Logger;
  /** Called when this replica gains a partition; start consuming it. */
  readonly onAcquired: (partition: number) => void;
  /**
   * Called when this replica must give a partition up (another replica should own it, or the lease
   * was lost); resolve once nothing more will be written for it.
   */
  readonly onReleased: (partition: number) => Promise<void>;
  /** Told about failed heartbeats and lost leases (metrics). */
  readonly observer?: LeaseObserver;
  /**
   * Create the bucket when it is missing (default true). False: open it as provisioned (`ctx
   * provision`), for a NATS user that may not create streams.
   */
  readonly create?: boolean;
}

export interface LeaseObserver {
  heartbeatFailed?(error: unknown): void;
  leaseLost?(partition: number): void;
}

/** What a replica knows of its leases and of its group's, for readiness and metrics. */
export interface LeaseHealth {
  /** When this replica's last heartbeat went through (epoch ms; 0: none yet). */
  readonly lastHeartbeatAt: number;
  /**
   * How long a partition may go without a valid lease before it counts as unowned: a dead
   * replica's lease expires after the TTL, and the next heartbeat of the new owner takes it.
   */
  readonly failoverWindowMs: number;
  /**
   * Partitions this replica should own (rendezvous hashing over the live members) that it has not
   * held validly for longer than the failover window.
   */
  readonly missing: readonly number[];
  /**
   * Partitions of the group that no live member held for longer than the failover window, as of
   * this replica's last heartbeat.
   */
  readonly unowned: readonly number[];
  /** A heartbeat went through within the failover window, and nothing is missing. */
  readonly healthy: boolean;
}

export interface PartitionLeases {
  start(): Promise<void>;
  /** Gives every lease back (a graceful stop hands partitions over at once, not after the TTL). */
  stop(): Promise<void>;
  /** Partitions this replica holds, with when each lease stops being valid unless renewed. */
  owned(): ReadonlyMap<number, number>;
  /** True while this replica's lease of the partition is valid: checked before every write. */
  holds(partition: number): boolean;
  /** Whether this replica and its group hold what they should (computed now, not at the heartbeat). */
  health(): LeaseHealth;
}

/** A stable, well-mixed 32-bit hash, the same on every replica. */
function score(text: string): number {
  return createHash("sha256").update(text).digest().readUInt32BE(0);
}

/** Rendezvous (highest random weight) hashing: moves only the partitions a change of members must. */
export function desiredOwner(members: readonly string[], partition: number): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const member of members) {
    const s = score(`${member}#${partition}`);
    if (s > bestScore || (s === bestScore && best !== undefined && member < best)) {
      best = member;
      bestScore = s;
    }
  }
  return best;
}

/** The KV bucket holding a group's members and leases. */
export function leaseBucket(group: string): string {
  return `projector_leases_${group.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/** A group's lease table: the live members, and who holds each partition's lease (with its revision). */
export interface LeaseTable {
  readonly members: readonly string[];
  readonly leases: ReadonlyMap<number, { readonly owner: string; readonly revision: number }>;
}

const KV_OPERATION = "KV-Operation";

/**
 * Reads a group's lease table with one batched direct get (the last message of every member and
 * lease key), which creates no consumer. Listing keys with `kv.keys()` did: each listing left an
 * ordered push consumer on the bucket that the server keeps for 5 minutes, about 300 per replica
 * at one heartbeat a second, until the bucket hit the server's consumer limit and every
 * heartbeat failed (issue #20).
 */
export async function readLeaseTable(
  jsm: JetStreamManager,
  group: string,
  timeoutMs = 5_000,
): Promise<LeaseTable> {
  const bucket = leaseBucket(group);
  const prefix = `$KV.${bucket}.`;
  const messages = await collectDirectBatch(
    jsm,
    `KV_${bucket}`,
    { multi_last: [`${prefix}members.*`, `${prefix}leases.*`] },
    timeoutMs,
  );
  const members: string[] = [];
  const leases = new Map<number, { owner: string; revision: number }>();
  for (const m of messages) {
    if (!isLive(m)) continue;
    const key = m.subject.slice(prefix.length);
    if (key.startsWith("members.")) members.push(key.slice("members.".length));
    else if (key.startsWith("leases.")) {
      const partition = Number(key.slice("leases.".length));
      if (Number.isSafeInteger(partition)) {
        leases.set(partition, { owner: new TextDecoder().decode(m.data), revision: m.seq });
      }
    }
  }
  return { members: members.sort(), leases };
}

/** A key's last message is a value, not a delete or purge marker. */
function isLive(m: StoredMsg): boolean {
  const op = m.header.get(KV_OPERATION);
  return op !== "DEL" && op !== "PURGE";
}

/**
 * Splits partitions among the live replicas of a group with leases in a NATS KV bucket whose entries
 * expire after the TTL. Every heartbeat, a replica refreshes `members.{id}`, reads the lease table
 * (one direct get: no consumer, so none is left behind however long it runs), computes from the live
 * members who should own each partition (rendezvous hashing), renews the leases it should keep with a
 * compare-and-set on their revision, gives back the ones it should not, and creates the free ones it
 * should own. A replica that dies stops renewing: its leases expire and their partitions move to
 * live replicas within about one TTL. A joining replica takes over its share as soon as the owners
 * notice it, at their next heartbeat. A partition is never held by two replicas at once: creation
 * and renewal are compare-and-set operations on the lease's revision.
 */
export function createPartitionLeases(
  nc: NatsConnection,
  options: PartitionLeasesOptions,
): PartitionLeases {
  const heartbeatMs = options.heartbeatMs ?? 1_000;
  const ttlMs = options.ttlMs ?? 5_000;
  const failoverWindowMs = ttlMs + 2 * heartbeatMs;
  const me = options.replicaId;
  const group = options.group;
  const held = new Map<number, { revision: number; validUntil: number }>();
  // Until when each partition's lease of this replica was last valid (kept after a release).
  const validUntil = new Map<number, number>();
  // Partitions this replica should own, since when (as of its last heartbeat).
  const desiredSince = new Map<number, number>();
  // Partitions no live member held at a heartbeat, since when.
  const unownedSince = new Map<number, number>();
  let lastHeartbeatAt = 0;
  let kv: KV | undefined;
  let jsm: JetStreamManager | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let stopped = false;

  const leaseKey = (p: number) => `leases.${p}`;
  const memberKey = `members.${me.replace(/[^A-Za-z0-9_-]/g, "_")}`;

  function hold(p: number, revision: number, until: number): void {
    held.set(p, { revision, validUntil: until });
    validUntil.set(p, until);
  }

  async function release(bucket: KV, partition: number, reason: string): Promise<void> {
    const lease = held.get(partition);
    held.delete(partition);
    options.logger.info({ partition, reason }, "releasing partition");
    await options.onReleased(partition);
    if (lease) {
      await bucket
        .delete(leaseKey(partition), { previousSeq: lease.revision })
        .catch(() => undefined);
    }
  }

  // Partitions being given back: their workers finish the batch in hand first, which can take
  // seconds (a model under load, writes waiting their turn). The heartbeat must not wait for that:
  // a tick that waited for a release renewed no other lease meanwhile, and when a release took
  // longer than the TTL every other lease of the replica lapsed (the soak run saw a Neo4j replica
  // lose most of its leases while handing partitions to replicas that joined).
  const releasing = new Map<number, Promise<void>>();

  function releaseSoon(bucket: KV, partition: number, reason: string): void {
    if (releasing.has(partition)) return;
    const done = release(bucket, partition, reason)
      .catch((e: unknown) => options.logger.warn({ partition, err: e }, "release failed"))
      .finally(() => releasing.delete(partition));
    releasing.set(partition, done);
  }

  async function tick(): Promise<void> {
    const bucket = kv as KV;
    const started = Date.now();
    await bucket.put(memberKey, JSON.stringify({ since: started }));
    const table = await readLeaseTable(jsm as JetStreamManager, group);
    const members = [...table.members];
    const me_ = memberKey.slice("members.".length);
    if (!members.includes(me_)) members.push(me_);
    // Every partition at once: done one after another, a slow round trip per lease (a busy server,
    // a busy event loop) adds up, and a heartbeat taking longer than the TTL loses leases it meant
    // to renew.
    const partitions = Array.from({ length: options.partitions }, (_, p) => p);
    const should = partitions.map((p) => desiredOwner(members, p) === me_);
    for (const p of partitions) {
      if (!should[p]) desiredSince.delete(p);
      else if (!desiredSince.has(p)) desiredSince.set(p, started);
    }
    await Promise.all(partitions.map((p) => step(bucket, should[p] === true, p)));
    for (const p of partitions) {
      const holder = table.leases.get(p)?.owner;
      const owned = held.has(p) || (holder !== undefined && members.includes(holder));
      if (owned) unownedSince.delete(p);
      else if (!unownedSince.has(p)) unownedSince.set(p, started);
    }
    lastHeartbeatAt = started;

    async function step(bucket: KV, should: boolean, p: number): Promise<void> {
      // A partition being given back is left alone until its worker stopped (then the lease key
      // is deleted, or it expires): no renewal, and no new worker beside the stopping one.
      if (stopped || releasing.has(p)) return;
      const lease = held.get(p);
      if (lease && !should) {
        releaseSoon(bucket, p, "rebalance: another replica should own it");
      } else if (lease) {
        try {
          const revision = await bucket.update(leaseKey(p), me, lease.revision);
          hold(p, revision, started + ttlMs);
        } catch (e) {
          options.logger.warn({ partition: p, err: e }, "lease lost");
          options.observer?.leaseLost?.(p);
          releaseSoon(bucket, p, "lease lost");
        }
      } else if (should) {
        try {
          const revision = await bucket.create(leaseKey(p), me);
          hold(p, revision, started + ttlMs);
          options.logger.info({ partition: p }, "acquired partition");
          options.onAcquired(p);
        } catch {
          // Still held by another replica: it gives it back at its next heartbeat, or its lease expires.
        }
      }
    }
  }

  function heartbeatFailed(e: unknown): void {
    options.logger.warn({ err: e }, "lease heartbeat failed");
    options.observer?.heartbeatFailed?.(e);
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      ticking = tick().catch(heartbeatFailed).finally(schedule);
    }, heartbeatMs);
  }

  function holds(partition: number): boolean {
    const lease = held.get(partition);
    return lease !== undefined && lease.validUntil > Date.now();
  }

  return {
    async start() {
      jsm = await jetstreamManager(nc);
      const stream = `KV_${leaseBucket(group)}`;
      if (options.create === false) {
        kv = await new Kvm(nc).open(leaseBucket(group));
        if (!(await jsm.streams.info(stream)).config.allow_direct) {
          throw new Error(`lease bucket ${stream} does not allow direct gets; run ctx provision`);
        }
      } else {
        kv = await new Kvm(nc).create(leaseBucket(group), { ttl: ttlMs, history: 1 });
        // The table is read by direct get: a bucket made without it (by hand, an old client) gets it.
        const info = await jsm.streams.info(stream);
        if (!info.config.allow_direct) {
          await jsm.streams.update(stream, { ...info.config, allow_direct: true });
        }
      }
      stopped = false;
      ticking = tick().catch(heartbeatFailed);
      await ticking;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await ticking;
      await Promise.all(releasing.values());
      const bucket = kv;
      if (!bucket) return;
      for (const p of [...held.keys()]) await release(bucket, p, "stopping");
      await bucket.delete(memberKey).catch(() => undefined);
    },
    owned() {
      return new Map([...held].map(([p, l]) => [p, l.validUntil]));
    },
    holds,
    health() {
      const now = Date.now();
      const missing: number[] = [];
      for (const [p, since] of desiredSince) {
        if (holds(p)) continue;
        const unheldSince = Math.max(since, validUntil.get(p) ?? 0);
        if (now - unheldSince > failoverWindowMs) missing.push(p);
      }
      const unowned = [...unownedSince]
        .filter(([, since]) => now - since > failoverWindowMs)
        .map(([p]) => p);
      const heartbeatFresh = lastHeartbeatAt > 0 && now - lastHeartbeatAt <= failoverWindowMs;
      return {
        lastHeartbeatAt,
        failoverWindowMs,
        missing: missing.sort((a, b) => a - b),
        unowned: unowned.sort((a, b) => a - b),
        healthy: heartbeatFresh && missing.length === 0,
      };
    },
  };
}
