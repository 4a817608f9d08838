import { createHash } from "node:crypto";
import type { Logger } from "@ctx/config";
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
}

export interface PartitionLeases {
  start(): Promise<void>;
  /** Gives every lease back (a graceful stop hands partitions over at once, not after the TTL). */
  stop(): Promise<void>;
  /** Partitions this replica holds, with when each lease stops being valid unless renewed. */
  owned(): ReadonlyMap<number, number>;
  /** True while this replica's lease of the partition is valid: checked before every write. */
  holds(partition: number): boolean;
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

/**
 * Splits partitions among the live replicas of a group with leases in a NATS KV bucket whose entries
 * expire after the TTL. Every heartbeat, a replica refreshes `members.{id}`, computes from the live
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
  const me = options.replicaId;
  const held = new Map<number, { revision: number; validUntil: number }>();
  let kv: KV | undefined;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let stopped = false;

  const leaseKey = (p: number) => `leases.${p}`;
  const memberKey = `members.${me.replace(/[^A-Za-z0-9_-]/g, "_")}`;

  async function liveMembers(bucket: KV): Promise<string[]> {
    const members: string[] = [];
    for await (const key of await bucket.keys("members.*"))
      members.push(key.slice("members.".length));
    return members.sort();
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

  async function tick(): Promise<void> {
    const bucket = kv as KV;
    const started = Date.now();
    await bucket.put(memberKey, JSON.stringify({ since: started }));
    const members = await liveMembers(bucket);
    const me_ = memberKey.slice("members.".length);
    if (!members.includes(me_)) members.push(me_);
    // Every partition at once: done one after another, a slow round trip per lease (a busy server,
    // a busy event loop) adds up, and a heartbeat taking longer than the TTL loses leases it meant
    // to renew.
    const partitions = Array.from({ length: options.partitions }, (_, p) => p);
    await Promise.all(partitions.map((p) => step(bucket, desiredOwner(members, p) === me_, p)));

    async function step(bucket: KV, should: boolean, p: number): Promise<void> {
      if (stopped) return;
      const lease = held.get(p);
      if (lease && !should) {
        await release(bucket, p, "rebalance: another replica should own it");
      } else if (lease) {
        try {
          const revision = await bucket.update(leaseKey(p), me, lease.revision);
          held.set(p, { revision, validUntil: started + ttlMs });
        } catch (e) {
          options.logger.warn({ partition: p, err: e }, "lease lost");
          await release(bucket, p, "lease lost");
        }
      } else if (should) {
        try {
          const revision = await bucket.create(leaseKey(p), me);
          held.set(p, { revision, validUntil: started + ttlMs });
          options.logger.info({ partition: p }, "acquired partition");
          options.onAcquired(p);
        } catch {
          // Still held by another replica: it gives it back at its next heartbeat, or its lease expires.
        }
      }
    }
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      ticking = tick()
        .catch((e: unknown) => options.logger.warn({ err: e }, "lease heartbeat failed"))
        .finally(schedule);
    }, heartbeatMs);
  }

  return {
    async start() {
      kv = await new Kvm(nc).create(leaseBucket(options.group), { ttl: ttlMs, history: 1 });
      stopped = false;
      ticking = tick().catch((e: unknown) =>
        options.logger.warn({ err: e }, "lease heartbeat failed"),
      );
      await ticking;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await ticking;
      const bucket = kv;
      if (!bucket) return;
      for (const p of [...held.keys()]) await release(bucket, p, "stopping");
      await bucket.delete(memberKey).catch(() => undefined);
    },
    owned() {
      return new Map([...held].map(([p, l]) => [p, l.validUntil]));
    },
    holds(partition) {
      const lease = held.get(partition);
      return lease !== undefined && lease.validUntil > Date.now();
    },
  };
}
