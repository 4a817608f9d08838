import {
  type CompletionResult,
  type DirectBatchOptions,
  type DirectLastFor,
  type DirectMsgRequest,
  JetStreamApiError,
  type JetStreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import { errors as natsErrors } from "@nats-io/transport-node";

/** What a batched direct get delivered, numbered by the server (nats.js `StoredMsg`). */
export interface BatchMessage {
  readonly seq: number;
  /** Sequence of the message before it in the same batch; 0 for the first. */
  readonly lastSequence: number;
  /** Matching messages left after it when the request came; -1 when the server did not say. */
  readonly pending: number;
}

/** How much of a batch can be used, and whether the story may go on after it. */
export interface BatchExtent {
  /** The batch's first messages that came with none missing between them. */
  readonly usable: number;
  /** False only when the server said nothing matched after the last usable message. */
  readonly mayGoOn: boolean;
}

/**
 * Checks a batch against the server's own numbering instead of trusting its length. A message
 * lost on the way (a connection cut mid-batch) breaks the chain of previous sequences: only the
 * messages before the break are used, and the read goes on after them. A batch shorter than asked
 * for ends the story only when its last message says nothing matched after it; one the server
 * cut short (bytes) or that ended early on the client still had messages pending, so the read
 * goes on there too.
 */
export function batchExtent(messages: readonly BatchMessage[], size: number): BatchExtent {
  let usable = 0;
  let previous = 0;
  for (const m of messages) {
    if (m.lastSequence !== previous) break;
    previous = m.seq;
    usable += 1;
  }
  if (usable < messages.length || usable >= size) return { usable, mayGoOn: true };
  const last = messages[usable - 1];
  return { usable, mayGoOn: last !== undefined && last.pending !== 0 };
}

/**
 * One batched direct get (a range with `batch`, or `multi_last`), collected: the messages the
 * server sends until it ends the batch; none for its "no results". It goes through nats.js's
 * callback mode, which unsubscribes the reply subject when the batch ends: the iterator mode
 * keeps it subscribed, on the client and on the server, until the request's 5 s timeout, so every
 * read left a subscription (and what it holds) behind for 5 s. A batch whose end does not come
 * within `stallMs` (the connection dropped mid-batch) is cut there: the messages so far are
 * returned, and `batchExtent` says how many of them to use. A batch with no message at all by then
 * is no answer, not an empty one: it fails with nats.js's TimeoutError (an outage to the callers),
 * because "no messages" means "nothing stored there" and would end a read silently. A 404 answer
 * ("no results", or "no message found" after the start sequence) is no messages.
 *
 * @throws the server's or nats.js's other errors (a status, a timeout)
 */
export function collectDirectBatch(
  jsm: JetStreamManager,
  stream: string,
  request: DirectBatchOptions | DirectLastFor,
  stallMs: number,
): Promise<StoredMsg[]> {
  return new Promise((resolve, reject) => {
    const messages: StoredMsg[] = [];
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(stall);
      if (err && !isNotFound(err)) reject(err);
      else resolve(messages);
    };
    const stall = setTimeout(
      () =>
        settle(
          messages.length > 0
            ? undefined
            : new natsErrors.TimeoutError({
                cause: new Error(`no answer to a batched direct get within ${stallMs} ms`),
              }),
        ),
      stallMs,
    );
    const callback = (done: CompletionResult | null, msg: StoredMsg) => {
      if (done) settle(done.err);
      else if (!settled) messages.push(msg);
    };
    const started =
      "multi_last" in request
        ? jsm.direct.getLastMessagesFor(stream, { ...request, callback })
        : jsm.direct.getBatch(stream, { ...request, callback });
    started.catch((e: unknown) => settle(e instanceof Error ? e : new Error(String(e))));
  });
}

/**
 * One direct get of a single message (by sequence, or the last on a subject); null when the
 * stream holds none there (JetStream's 404).
 *
 * @throws the server's or nats.js's other errors
 */
export async function directGet(
  jsm: JetStreamManager,
  stream: string,
  query: DirectMsgRequest,
): Promise<StoredMsg | null> {
  try {
    return await jsm.direct.getMessage(stream, query);
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

/** JetStream's 404 answers (nothing stored there), as a status or as an API error. */
function isNotFound(e: unknown): boolean {
  if (e instanceof JetStreamApiError) return e.status === 404;
  return (
    e instanceof Error &&
    e.name === "JetStreamStatusError" &&
    (e as { code?: unknown }).code === 404
  );
}
