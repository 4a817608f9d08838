import { batchExtent, collectDirectBatch } from "@ctx/event-store/direct-get";
import {
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StoredMsg,
} from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { ParkedListingError } from "./errors.ts";

/** Where events a projection could not apply are kept, with why, until replayed or discarded. */
export interface ParkingNames {
  readonly stream: string;
  readonly subjectPrefix: string;
}

export const defaultParkingNames: ParkingNames = {
  stream: "CONTEXT_PARKED",
  subjectPrefix: "context.parked",
};

/** One parked event: the original message bytes and why the projection refused them. */
export interface ParkedEvent {
  /** Sequence in the parked stream (the handle for replay and discard). */
  readonly parkedSequence: number;
  readonly projection: string;
  readonly storyId: string;
  /** Story version, when the event could be decoded that far (0 otherwise). */
  readonly version: number;
  /** Sequence of the event in the event stream. */
  readonly originalSequence: number;
  readonly eventType: string;
  readonly reason: string;
  readonly parkedAt: Date;
  readonly data: Uint8Array;
}

export interface ParkRequest {
  readonly projection: string;
  readonly storyId: string;
  readonly version: number;
  readonly originalSequence: number;
  readonly eventType: string;
  readonly reason: string;
  readonly data: Uint8Array;
}

const H = {
  projection: "Ctx-Projection",
  story: "Ctx-Story",
  version: "Ctx-Version",
  sequence: "Ctx-Original-Sequence",
  type: "Ctx-Event-Type",
  reason: "Ctx-Reason",
} as const;

/** Creates the parked stream if it does not exist (idempotent). */
export async function provisionParking(
  jsm: JetStreamManager,
  names: ParkingNames = defaultParkingNames,
  replicas = 1,
): Promise<void> {
  const exists = await jsm.streams.info(names.stream).then(
    () => true,
    () => false,
  );
  if (exists) return;
  await jsm.streams
    .add({
      name: names.stream,
      description:
        "Events a projection could not apply, with the reason; replay or discard with ctx parked",
      subjects: [`${names.subjectPrefix}.>`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      num_replicas: replicas,
      allow_direct: true,
    })
    .catch(async (e: unknown) => {
      // Another replica created it first.
      if (
        !(await jsm.streams.info(names.stream).then(
          () => true,
          () => false,
        ))
      )
        throw e;
    });
}

/** The subject of a story's parked events of one projection. */
export function parkedSubject(names: ParkingNames, projection: string, storyId: string): string {
  return `${names.subjectPrefix}.${projection}.${storyId}`;
}

/** Parks one event. The id makes a second park of the same event (a redelivery) a no-op. */
export async function park(
  js: JetStreamClient,
  names: ParkingNames,
  request: ParkRequest,
): Promise<void> {
  const h = headers();
  h.set(H.projection, request.projection);
  h.set(H.story, request.storyId);
  h.set(H.version, String(request.version));
  h.set(H.sequence, String(request.originalSequence));
  h.set(H.type, request.eventType);
  h.set(H.reason, request.reason.slice(0, 4000).replace(/[\r\n]+/g, " "));
  await js.publish(parkedSubject(names, request.projection, request.storyId || "_"), request.data, {
    headers: h,
    msgID: `${request.projection}:${request.originalSequence}`,
  });
}

export function toParkedEvent(msg: StoredMsg): ParkedEvent {
  const get = (name: string) => msg.header.get(name) ?? "";
  return {
    parkedSequence: msg.seq,
    projection: get(H.projection),
    storyId: get(H.story),
    version: Number(get(H.version)) || 0,
    originalSequence: Number(get(H.sequence)) || 0,
    eventType: get(H.type),
    reason: get(H.reason),
    parkedAt: msg.time,
    data: msg.data,
  };
}

/** Every parked event (optionally of one projection), oldest first. */
export async function listParked(
  jsm: JetStreamManager,
  names: ParkingNames = defaultParkingNames,
  projection?: string,
): Promise<ParkedEvent[]> {
  const info = await jsm.streams.info(names.stream).catch(() => undefined);
  if (!info || info.state.messages === 0) return [];
  const filter = projection ? `${names.subjectPrefix}.${projection}.>` : `${names.subjectPrefix}.>`;
  const parked: ParkedEvent[] = [];
  const stallMs = jsm.getOptions().timeout ?? DEFAULT_TIMEOUT_MS;
  let seq = info.state.first_seq;
  let cuts = 0;
  for (;;) {
    // No messages (a 404): nothing more after seq. Other errors (a timeout, no answer) propagate:
    // a list cut short would look complete.
    const batch = await collectDirectBatch(
      jsm,
      names.stream,
      { seq, batch: LIST_BATCH, next_by_subj: filter },
      stallMs,
    );
    // The server's numbering, not the batch's length, says whether the list goes on.
    const extent = batchExtent(batch, LIST_BATCH);
    if (extent.usable < batch.length && ++cuts > MAX_CUT_BATCHES) {
      throw new ParkedListingError(
        `listing parked events: ${cuts} batches in a row lost messages on the way`,
      );
    }
    for (let i = 0; i < extent.usable; i++) {
      const m = batch[i] as StoredMsg;
      parked.push(toParkedEvent(m));
      seq = m.seq + 1;
    }
    if (!extent.mayGoOn) return parked;
  }
}

/** Parked events a listing request asks for at once. */
const LIST_BATCH = 256;
/** Batches in a row that may lose messages on the way before a listing gives up. */
const MAX_CUT_BATCHES = 3;
/** nats.js's default request timeout, for a manager created without one. */
const DEFAULT_TIMEOUT_MS = 5_000;

/** Removes one parked event (after a successful replay, or when an operator discards it). */
export async function removeParked(
  jsm: JetStreamManager,
  names: ParkingNames,
  parkedSequence: number,
): Promise<boolean> {
  return jsm.streams.deleteMessage(names.stream, parkedSequence, false);
}
