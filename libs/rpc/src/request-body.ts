import * as http2 from "node:http2";
import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { malformedRequest, requestTooLarge } from "./errors.ts";

/** Bytes of the envelope (flags and length) before each message of gRPC, gRPC-Web and Connect streams. */
export const envelopeBytes = 5;

/** The call a request body belongs to, as its reader talks to it. */
export interface BodyEvents {
  /** Reading starts; `interrupt` fails it at once (the request stopped arriving, the call expired). */
  reading(interrupt: (e: ConnectError) => void): void;
  /** The body ended: the request has arrived in full. */
  ended(): void;
  /** The body is over the limit: the request is refused (counted once). */
  tooLarge(): void;
}

/**
 * The body of a request as Connect's handlers read it (an async iterable of chunks), straight from
 * the HTTP/2 stream (or the HTTP/1.1 request), bounded: when `maxBytes` is given (requests of one message: unary and server
 * streams), a body whose `content-length` says more is refused before a byte is read, and one that
 * brings more is refused as soon as it does (RESOURCE_EXHAUSTED); a 1,000 MB body costs the server
 * a few chunks. `interrupt` fails a pending read at once (the request stopped arriving, or the call
 * expired). Returning early neither destroys the stream (the call still answers on it) nor reads
 * on: HTTP/2 flow control stops the client, and the stream is reset when the answer is complete
 * (over HTTP/1.1, TCP's flow control, and the connection closes after the answer).
 */
export class RequestBody implements AsyncIterableIterator<Uint8Array> {
  readonly #stream: Readable;
  readonly #maxBytes: number | undefined;
  readonly #limit: number;
  readonly #events: BodyEvents;
  #bytes = 0;
  #ended = false;
  #error: ConnectError | undefined;
  #pending:
    | { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (e: unknown) => void }
    | undefined;

  /**
   * @param maxBytes the most bytes the body may hold (undefined: no bound on the whole body; Connect
   *   still bounds each message)
   * @param limit the message limit to name in the error
   */
  constructor(
    stream: Readable,
    contentLength: string | undefined,
    maxBytes: number | undefined,
    limit: number,
    events: BodyEvents,
  ) {
    this.#stream = stream;
    this.#maxBytes = maxBytes;
    this.#limit = limit;
    this.#events = events;
    if (maxBytes !== undefined && contentLength !== undefined && Number(contentLength) > maxBytes) {
      this.#fail(requestTooLarge(limit));
      events.tooLarge();
      return;
    }
    events.reading((e) => this.interrupt(e));
    stream.on("readable", this.#onReadable);
    stream.once("end", this.#onEnd);
    stream.once("close", this.#onClose);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#pending) return Promise.reject(new Error("a request body is read by one reader"));
    const chunk = this.#ended ? null : (this.#stream.read() as Buffer | null);
    if (chunk !== null) {
      try {
        return Promise.resolve(this.#take(chunk));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.#detach();
    this.#pending?.resolve({ done: true, value: undefined });
    this.#pending = undefined;
    return Promise.resolve({ done: true, value: undefined });
  }

  /** Fails the read in progress (and every later one) with `error`. */
  interrupt(error: ConnectError): void {
    if (this.#ended || this.#error) return;
    this.#fail(error);
  }

  #take(chunk: Buffer): IteratorResult<Uint8Array> {
    this.#bytes += chunk.byteLength;
    if (this.#maxBytes !== undefined && this.#bytes > this.#maxBytes) {
      const error = requestTooLarge(this.#limit);
      this.#fail(error);
      this.#events.tooLarge();
      throw error;
    }
    return { done: false, value: chunk };
  }

  readonly #onReadable = () => {
    const pending = this.#pending;
    if (pending === undefined) return;
    const chunk = this.#stream.read() as Buffer | null;
    if (chunk === null) return;
    this.#pending = undefined;
    try {
      pending.resolve(this.#take(chunk));
    } catch (e) {
      pending.reject(e);
    }
  };

  readonly #onEnd = () => {
    this.#ended = true;
    this.#detach();
    this.#events.ended();
    this.#pending?.resolve({ done: true, value: undefined });
    this.#pending = undefined;
  };

  readonly #onClose = () => {
    if (!this.#ended) this.#fail(new ConnectError("the client closed the call", Code.Canceled));
  };

  #fail(error: ConnectError): void {
    this.#error = error;
    this.#detach();
    this.#pending?.reject(error);
    this.#pending = undefined;
  }

  #detach(): void {
    this.#stream.off("readable", this.#onReadable);
    this.#stream.off("end", this.#onEnd);
    this.#stream.off("close", this.#onClose);
  }
}

/**
 * The body of a unary gRPC request (one enveloped message, uncompressed), read whole, for the fast
 * path. Bounded as Connect bounds its envelopes, and earlier: a `content-length` over the limit is
 * refused before reading, the envelope's length prefix over the limit as soon as its 5 bytes are
 * in, and a body that brings more than its envelope announced when it does. What a client can get
 * the server to hold is one message of the limit.
 *
 * The call can interrupt the read (see BodyEvents); the promise settles once, whichever comes
 * first.
 */
export function readUnaryBody(
  stream: http2.ServerHttp2Stream,
  contentLength: string | undefined,
  maxMessageBytes: number,
  events: BodyEvents,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const maxBytes = maxMessageBytes + envelopeBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const tooLarge = (announced?: number) => {
      events.tooLarge();
      done(requestTooLarge(maxMessageBytes, announced));
    };
    const onData = (chunk: Buffer) => {
      const before = size;
      size += chunk.byteLength;
      if (size > maxBytes) {
        tooLarge();
        return;
      }
      chunks.push(chunk);
      // The length prefix: refuse a message the limit cannot hold before it arrives.
      if (before < envelopeBytes && size >= envelopeBytes) {
        const announced = envelopeLength(chunks);
        if (announced > maxMessageBytes) tooLarge(announced);
      }
    };
    const onEnd = () => {
      events.ended();
      done();
    };
    const onClose = () => {
      if (!settled) done(new ConnectError("the client closed the call", Code.Canceled));
    };
    const done = (e?: ConnectError) => {
      if (settled) return;
      settled = true;
      if (e) {
        stream.off("data", onData);
        stream.off("end", onEnd);
        stream.off("close", onClose);
        // Read no further: flow control holds the client back, and the stream is reset once the
        // answer is sent.
        stream.pause();
        reject(e);
      } else {
        // The body has ended: no data follows, and the close listener finds the call settled.
        // Not removing them saves three listener searches per call.
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      }
    };
    if (contentLength !== undefined && Number(contentLength) > maxBytes) {
      tooLarge();
      return;
    }
    events.reading(done);
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("close", onClose);
  });
}

/** The message length in an envelope's prefix, from the first chunks of a body (≥ 5 bytes). */
function envelopeLength(chunks: readonly Buffer[]): number {
  const first = chunks[0] as Buffer;
  const head = first.byteLength >= envelopeBytes ? first : Buffer.concat(chunks as Buffer[]);
  return head.readUInt32BE(1);
}

/** The one uncompressed message of a unary gRPC request body. */
export function unwrapUnary(body: Uint8Array, method: string): Uint8Array {
  if (body.byteLength < envelopeBytes) {
    throw malformedRequest(
      body.byteLength === 0
        ? `no message for unary method ${method}`
        : "premature end of stream: the body ends inside the envelope's prefix",
    );
  }
  const flags = body[0] as number;
  if ((flags & 0b01) !== 0) {
    throw malformedRequest(
      "the message is compressed, but the request names no compression (grpc-encoding)",
    );
  }
  const length = new DataView(body.buffer, body.byteOffset + 1, 4).getUint32(0);
  if (envelopeBytes + length > body.byteLength) {
    throw malformedRequest(
      `premature end of stream: the envelope announces ${length} bytes, the body holds ${body.byteLength - envelopeBytes}`,
    );
  }
  if (envelopeBytes + length < body.byteLength) {
    throw malformedRequest(`more than one message for unary method ${method}`);
  }
  return body.subarray(envelopeBytes, envelopeBytes + length);
}

/**
 * Ends a stream whose answer is complete but whose request was not read to its end (refused,
 * expired): a reset with NO_ERROR tells the client to stop sending while the answer it got stands
 * (RFC 9113, 8.1). Otherwise the stream stays half open, held by flow control. (Node does this by
 * itself only for answers without trailers to requests it never read from.)
 *
 * Not at once: a reset submitted while the answer's last frame (the trailers) still waits in
 * nghttp2's queue drops that frame, and the client loses the status. The stream's `localClose`
 * turns 1 once nghttp2 has sent the frame that ends our side; the reset follows it. A stream
 * whose end cannot be sent for a while (a client that reads nothing) is reset anyway.
 *
 * A client that has sent its whole request (END_STREAM received) gets no reset: what it sent is
 * dropped, and the stream closes as any other. Resets are what a client counts against a server:
 * Node's HTTP/2 client closes a connection, failing every call on it, after 100 of them
 * (`maxSessionRejectedStreams`), which a burst of shed calls would reach.
 */
export function closeUnread(stream: http2.ServerHttp2Stream): void {
  if (stream.destroyed || stream.readableEnded) return;
  if (remoteDone(stream)) return;
  setImmediate(resetWhenSent, stream, 0);
}

/** Whether the client has ended its side; if so, what it sent and nobody read is dropped. */
function remoteDone(stream: http2.ServerHttp2Stream): boolean {
  if (stream.state.remoteClose !== 1) return false;
  stream.resume();
  return true;
}

/** Attempts of resetWhenSent, 5 ms apart after the first: about a second. */
const resetAttempts = 200;

function resetWhenSent(stream: http2.ServerHttp2Stream, attempt: number): void {
  if (stream.destroyed || stream.closed || remoteDone(stream)) return;
  if (stream.state.localClose === 1 || attempt >= resetAttempts) {
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
    return;
  }
  setTimeout(resetWhenSent, 5, stream, attempt + 1).unref();
}
