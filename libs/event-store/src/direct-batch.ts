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
