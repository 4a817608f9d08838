import * as net from "node:net";
import { testAuth } from "@ctx/test-support";

/*
 * HTTP/2 spoken by hand over a TCP socket, for clients that misbehave on purpose: half a preface,
 * a header block that never ends, a body that never completes, pings never answered, streams over
 * the server's limit. Only what those tests need.
 */

export const FrameType = {
  data: 0x0,
  headers: 0x1,
  rstStream: 0x3,
  settings: 0x4,
  ping: 0x6,
  goaway: 0x7,
  windowUpdate: 0x8,
  continuation: 0x9,
} as const;

export const Flag = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;

export const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = Buffer.alloc(0),
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.byteLength, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** A header block of literal fields without indexing (new names): HPACK without tables. */
export function headerBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name, "latin1");
    const v = Buffer.from(value, "latin1");
    parts.push(Buffer.from([0x00]), hpackLength(n.byteLength), n, hpackLength(v.byteLength), v);
  }
  return Buffer.concat(parts);
}

/** A string length as HPACK writes it: an integer with a 7-bit prefix, no Huffman coding. */
function hpackLength(length: number): Buffer {
  if (length < 127) return Buffer.from([length]);
  const bytes = [127];
  let rest = length - 127;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** The headers of a gRPC call to `path` on 127.0.0.1, with the test issuer's token. */
export function grpcHeaders(path: string): Record<string, string> {
  return {
    ":method": "POST",
    ":scheme": "http",
    ":path": path,
    ":authority": "127.0.0.1",
    "content-type": "application/grpc+proto",
    te: "trailers",
    authorization: testAuth().authorization,
  };
}

/** A connection speaking HTTP/2 by hand: what it sends is up to the test, nothing is automatic. */
export interface RawConnection {
  readonly socket: net.Socket;
  /** Frames received so far. */
  readonly frames: Frame[];
  /** Whether the server closed the connection (or it failed). */
  readonly closed: boolean;
  /** Resolves when the connection is closed. */
  readonly whenClosed: Promise<void>;
  send(bytes: Uint8Array): void;
  /** The client preface and an empty SETTINGS frame: a complete handshake. */
  handshake(): void;
  destroy(): void;
}

export function connectRaw(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const frames: Frame[] = [];
    let buffer = Buffer.alloc(0);
    let closed = false;
    let markClosed: () => void = () => undefined;
    const whenClosed = new Promise<void>((r) => {
      markClosed = r;
    });
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      while (buffer.byteLength >= 9) {
        const length = buffer.readUIntBE(0, 3);
        if (buffer.byteLength < 9 + length) break;
        frames.push({
          type: buffer[3] as number,
          flags: buffer[4] as number,
          streamId: buffer.readUInt32BE(5) & 0x7fffffff,
          payload: buffer.subarray(9, 9 + length),
        });
        buffer = buffer.subarray(9 + length);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      closed = true;
      markClosed();
    });
    socket.once("connect", () => {
      socket.off("error", reject);
      const send = (bytes: Uint8Array) => {
        if (!socket.destroyed) socket.write(bytes);
      };
      resolve({
        socket,
        frames,
        get closed() {
          return closed;
        },
        whenClosed,
        send,
        handshake: () => send(Buffer.concat([preface, frame(FrameType.settings, 0, 0)])),
        destroy: () => socket.destroy(),
      });
    });
    socket.once("error", reject);
  });
}
