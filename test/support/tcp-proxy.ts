import * as net from "node:net";

/**
 * A TCP proxy on 127.0.0.1 (port 0) in front of a server, for tests of what a client sees when the
 * network misbehaves:
 *
 * - `hold()` keeps everything the server sends from reaching the client (the server is not
 *   blocked: the proxy reads it), `release()` delivers it and forwards again; what the client sends
 *   always goes through, so a client can still cancel (calls that end while an answer is on its way);
 * - `down()` cuts every open connection and refuses new ones (closed as soon as they are accepted)
 *   until `up()`; the server keeps running (dropped connections);
 * - `retarget(port)` sends new connections to another port (a server started again).
 */
export interface TcpProxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Connections open through the proxy. */
  connections(): number;
  /** Connections accepted since the start (refused ones included). */
  accepted(): number;
  hold(): void;
  release(): void;
  down(): void;
  up(): void;
  retarget(port: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(to: { host: string; port: number }): Promise<TcpProxy> {
  let target = to;
  let holding = false;
  let isDown = false;
  let accepted = 0;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; held: Buffer[] }>();
  const server = net.createServer((client) => {
    accepted++;
    if (isDown) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target);
    const pair = { client, upstream, held: [] as Buffer[] };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (holding) pair.held.push(chunk);
      else client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  const cutAll = () => {
    for (const pair of pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    pairs.clear();
  };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections: () => pairs.size,
    accepted: () => accepted,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const pair of pairs) {
        for (const chunk of pair.held.splice(0)) pair.client.write(chunk);
      }
    },
    down() {
      isDown = true;
      cutAll();
    },
    up() {
      isDown = false;
    },
    retarget(port) {
      target = { ...target, port };
    },
    async close() {
      cutAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
