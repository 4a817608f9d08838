import { hostname, userInfo } from "node:os";
import { type EventStreamNames, ensureRecordStream, streamInfoIfAny } from "@ctx/event-store";
import { collectDirectBatch } from "@ctx/event-store/direct-get";
import { type DirectBatchOptions, type JetStreamManager, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";

/**
 * What an operator did to the system through ctx that the event stream does not record by itself
 * (a story's repair does: it is an EventsSetAside event). Kept as JSON in its own stream, so the
 * audit report can say which rebuilds ran in a period, who ran them and how they ended.
 */
export const operatorActionSchema = z.object({
  action: z.enum(["projection-rebuild"]),
  /** When it ended (ISO 8601). */
  at: z.iso.datetime(),
  /** Who: --operator when given, else the OS user and host ctx ran on. */
  operator: z.string().max(200),
  outcome: z.enum(["done", "interrupted", "failed"]),
  /** What it did, in a few words (a model, a story, counts). */
  detail: z.string().max(2000),
});
export type OperatorAction = z.infer<typeof operatorActionSchema>;

/** Where the operations log of an event stream is kept: `<stream>_OPERATIONS`. */
export function operationsNames(events: EventStreamNames): { stream: string; subject: string } {
  return { stream: `${events.stream}_OPERATIONS`, subject: `${events.subjectPrefix}_operations` };
}

/** The operator's name as ctx knows it. */
export function operatorName(given?: string): string {
  if (given !== undefined && given.trim() !== "") return given.trim();
  let user = process.env.USER ?? "";
  try {
    user ||= userInfo().username;
  } catch {
    user ||= "unknown";
  }
  return `${user}@${hostname()}`;
}

/**
 * Records an action: creates the log stream the first time (see ensureRecordStream; the event
 * stream's replica count), then stores one JSON message.
 */
export async function recordOperation(
  env: {
    readonly nc: NatsConnection;
    readonly jsm: JetStreamManager;
    readonly names: EventStreamNames;
  },
  action: OperatorAction,
): Promise<void> {
  const names = operationsNames(env.names);
  const events = await env.jsm.streams.info(env.names.stream);
  await ensureRecordStream(
    env.jsm,
    names,
    "What operators did through ctx (rebuilds): for the audit report",
    events.config.num_replicas,
  );
  await jetstream(env.nc).publish(
    names.subject,
    JSON.stringify(operatorActionSchema.parse(action)),
  );
}

/**
 * The actions recorded between two times (by when they were stored), oldest first; a message that
 * is not a valid action is reported as such rather than dropped.
 */
export async function readOperations(
  jsm: JetStreamManager,
  events: EventStreamNames,
  from: Date,
  to: Date,
): Promise<(OperatorAction | { readonly unreadable: string; readonly at: string })[]> {
  const names = operationsNames(events);
  const info = await streamInfoIfAny(jsm, names.stream);
  if (info === undefined || info.state.messages === 0) return [];
  const out: (OperatorAction | { unreadable: string; at: string })[] = [];
  const decoder = new TextDecoder();
  let request: DirectBatchOptions = { start_time: from, batch: 256, next_by_subj: names.subject };
  for (;;) {
    const batch = await collectDirectBatch(jsm, names.stream, request, 5_000);
    for (const msg of batch) {
      if (msg.time >= to) return out;
      if (msg.time < from) continue;
      const parsed = operatorActionSchema.safeParse(
        (() => {
          try {
            return JSON.parse(decoder.decode(msg.data));
          } catch {
            return undefined;
          }
        })(),
      );
      out.push(
        parsed.success
          ? parsed.data
          : {
              unreadable: `operations log message ${msg.seq} is not an operator action`,
              at: msg.time.toISOString(),
            },
      );
    }
    const last = batch[batch.length - 1];
    if (last === undefined || batch.length < 256 || last.seq >= info.state.last_seq) return out;
    request = { seq: last.seq + 1, batch: 256, next_by_subj: names.subject };
  }
}
