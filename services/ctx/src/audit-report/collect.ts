import { ContextEventType } from "@ctx/domain";
import {
  checkpointNames,
  decodeStoredEvent,
  readCheckpoints,
  type StoredMessage,
} from "@ctx/event-store";
import { listParked } from "@ctx/projector";
import type { Output } from "../cli/output.ts";
import { type AuditVerification, verifyStream } from "../commands/audit.ts";
import type { CtxEnv } from "../ctx-env.ts";
import { type OperatorAction, readOperations } from "../operations-log.ts";

/** A count of something (an event type, an actor, a day). */
export interface Count {
  readonly key: string;
  readonly count: number;
}

/** Everything `ctx audit report` says about a period, as data (`--json` prints it). */
export interface AuditReport {
  readonly stream: string;
  /** The period: stored from `from` (included) to `to` (excluded), ISO 8601. */
  readonly from: string;
  readonly to: string;
  readonly generatedAt: string;
  /** The events stored in the period. */
  readonly events: {
    readonly total: number;
    readonly byType: readonly Count[];
    /** By the principal the command service stamped on each event ("(none)" before #21). */
    readonly byActor: readonly Count[];
    /** Per day (UTC), every day of the period, or per month for periods over 92 days. */
    readonly byTime: readonly Count[];
    readonly timeUnit: "day" | "month";
  };
  /** The whole stream verified now (chains and checkpoints), not only the period. */
  readonly verification: AuditVerification;
  /** Checkpoints signed in the period. */
  readonly checkpoints: readonly {
    readonly signedAt: string;
    readonly lastSequence: number;
    readonly messages: number;
    readonly keyId: string;
  }[];
  /** Events the projectors parked in the period (their quarantine), by model, and the first 100. */
  readonly parked: {
    readonly total: number;
    readonly byProjection: readonly Count[];
    readonly entries: readonly {
      readonly parkedAt: string;
      readonly projection: string;
      readonly storyId: string;
      readonly sequence: number;
      readonly eventType: string;
      readonly reason: string;
    }[];
  };
  /** Operator repairs in the period: the EventsSetAside events (ctx stories repair). */
  readonly repairs: readonly {
    readonly at: string;
    readonly storyId: string;
    readonly version: number;
    readonly sequence: number;
    readonly operator: string;
    readonly reason: string;
    /** Stream sequences of the messages this repair set aside. */
    readonly setAside: readonly number[];
  }[];
  /** Rebuilds (and later other operator actions) in the period, from the operations log. */
  readonly operations: readonly (
    | OperatorAction
    | { readonly unreadable: string; readonly at: string }
  )[];
}

const PARKED_LISTED = 100;
const MONTHS_FROM_DAYS = 92;

/**
 * Gathers the report of a period in one pass over the event stream (which also verifies every
 * chain and checkpoint), plus the parked stream, the checkpoint stream and the operations log.
 */
export async function collectAuditReport(
  env: CtxEnv,
  period: { readonly from: Date; readonly to: Date },
  keys: Parameters<typeof verifyStream>[1],
  output: Output,
): Promise<AuditReport> {
  const { from, to } = period;
  const inPeriod = (t: Date) => t >= from && t < to;
  const byType = new Map<string, number>();
  const byActor = new Map<string, number>();
  const timeUnit =
    (to.getTime() - from.getTime()) / 86_400_000 > MONTHS_FROM_DAYS ? "month" : "day";
  const bucket = (t: Date) => t.toISOString().slice(0, timeUnit === "day" ? 10 : 7);
  const byTime = new Map<string, number>();
  for (let t = new Date(from); t < to; ) {
    byTime.set(bucket(t), 0);
    t =
      timeUnit === "day"
        ? new Date(t.getTime() + 86_400_000)
        : new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 1));
  }
  const repairs: AuditReport["repairs"][number][] = [];
  let total = 0;
  const visit = (m: StoredMessage) => {
    if (!inPeriod(m.time)) return;
    total += 1;
    const type = m.subject.slice(m.subject.lastIndexOf(".") + 1);
    let actor = "(unreadable)";
    try {
      // Either envelope version, checked as every reader checks it (without the previous event).
      const { envelope: event } = decodeStoredEvent(m.data, m.seq, m.subject);
      actor = event.principal === "" ? "(none)" : event.principal;
      if (type === ContextEventType.EventsSetAside) {
        if (event.payload.case === "eventsSetAside") {
          const { reason, operator, setAside } = event.payload.value;
          repairs.push({
            at: m.time.toISOString(),
            storyId: event.storyId,
            version: event.version,
            sequence: m.seq,
            operator,
            reason,
            setAside: setAside.map((e) => Number(e.sequence)),
          });
        }
      }
    } catch {
      // Counted as unreadable; the verification lists it.
    }
    byType.set(type, (byType.get(type) ?? 0) + 1);
    byActor.set(actor, (byActor.get(actor) ?? 0) + 1);
    const at = bucket(m.time);
    byTime.set(at, (byTime.get(at) ?? 0) + 1);
  };
  const verification = await verifyStream(env, keys, output, visit);

  const parked = (await listParked(env.jsm, env.parking)).filter((p) => inPeriod(p.parkedAt));
  const byProjection = new Map<string, number>();
  for (const p of parked) byProjection.set(p.projection, (byProjection.get(p.projection) ?? 0) + 1);

  const checkpoints = (await readCheckpoints(env.nc, env.jsm, checkpointNames(env.names)))
    .flatMap((s) => (s.checkpoint === undefined ? [] : [s.checkpoint]))
    .map((c) => ({
      signedAt: new Date(Number(c.signedAt?.seconds ?? 0n) * 1000).toISOString(),
      lastSequence: Number(c.lastSequence),
      messages: Number(c.messages),
      keyId: c.keyId,
    }))
    .filter((c) => inPeriod(new Date(c.signedAt)));

  return {
    stream: env.names.stream,
    from: from.toISOString(),
    to: to.toISOString(),
    generatedAt: new Date().toISOString(),
    events: {
      total,
      byType: sorted(byType),
      byActor: sorted(byActor),
      byTime: [...byTime].map(([key, count]) => ({ key, count })),
      timeUnit,
    },
    verification,
    checkpoints,
    parked: {
      total: parked.length,
      byProjection: sorted(byProjection),
      entries: parked.slice(0, PARKED_LISTED).map((p) => ({
        parkedAt: p.parkedAt.toISOString(),
        projection: p.projection,
        storyId: p.storyId,
        sequence: p.originalSequence,
        eventType: p.eventType,
        reason: p.reason,
      })),
    },
    repairs,
    operations: await readOperations(env.jsm, env.names, from, to),
  };
}

/** Largest first, then by key. */
function sorted(counts: ReadonlyMap<string, number>): Count[] {
  return [...counts]
    .map(([key, count]) => ({ key, count }))
    .sort((a, b) => b.count - a.count || a.key.localeCompare(b.key));
}
