import type { MsgRequest, StoredMsg } from "@nats-io/jetstream";
import { batchExtent, collectDirectBatch } from "./direct-batch.ts";
import { EventStoreUnavailableError } from "./errors.ts";
import type { StoreCore } from "./store-core.ts";

/** Messages a read asks for at most in one batched direct get. */
export const READ_BATCH = 512;
// Batches in a row that lost messages on the way before a read gives up (as unavailable).
const MAX_CUT_BATCHES = 3;

/**
 * Reads the stored messages on `filter` from stream sequence `first` on, batch after batch, and
 * hands each to `visit` until it returns (or resolves) false. Batches start at `size` and grow.
 * Resolves whether the read saw the end of what is stored on `filter`.
 */
export async function scan(
  core: StoreCore,
  what: string,
  filter: string,
  first: number,
  size: number,
  visit: (msg: StoredMsg) => boolean | Promise<boolean>,
  fromLeader = false,
): Promise<boolean> {
  if (fromLeader) return scanLeader(core, filter, first, visit);
  const jsm = await core.manager();
  let nextSequence = first;
  let cuts = 0;
  for (;;) {
    const request = { seq: nextSequence, batch: size, next_by_subj: filter };
    // No messages: nothing (more) is stored on the filter after `seq`.
    const batch = await core.guard(() =>
      collectDirectBatch(jsm, core.names.stream, request, core.timeout),
    );
    const extent = batchExtent(batch, size);
    if (extent.usable < batch.length && ++cuts > MAX_CUT_BATCHES) {
      throw new EventStoreUnavailableError(
        `reading ${what}: ${cuts} batches in a row lost messages on the way`,
      );
    }
    for (let i = 0; i < extent.usable; i++) {
      const msg = batch[i] as StoredMsg;
      nextSequence = msg.seq + 1;
      const visited = visit(msg);
      if (!(visited === true || (visited !== false && (await visited)))) {
        return i === extent.usable - 1 && !extent.mayGoOn;
      }
    }
    if (!extent.mayGoOn) return true;
    // The filter goes on past a sized request: grow towards full batches.
    size = Math.min(READ_BATCH, size * 4);
  }
}

/**
 * `scan` through the stream's leader: `STREAM.MSG.GET` with `next_by_subj`, which only the leader
 * answers, one message per request (it takes no batch). Resolves true when nothing more is stored
 * on `filter`, false when `visit` stopped the read.
 */
async function scanLeader(
  core: StoreCore,
  filter: string,
  first: number,
  visit: (msg: StoredMsg) => boolean | Promise<boolean>,
): Promise<boolean> {
  const jsm = await core.manager();
  for (let next = first; ; ) {
    // nats.js types the request without next_by_subj, which the server takes with seq.
    const query = { seq: next, next_by_subj: filter } as unknown as MsgRequest;
    const msg = await core.guard(() => jsm.streams.getMessage(core.names.stream, query));
    if (msg === null) return true;
    next = msg.seq + 1;
    const visited = visit(msg);
    if (!(visited === true || (visited !== false && (await visited)))) return false;
  }
}
