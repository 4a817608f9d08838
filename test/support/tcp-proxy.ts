import * as net from "node:net";

/**
 * A TCP proxy on 127.0.0.1 (port 0) in front of a server, for tests of calls that must end while
 * the server's answer is on its way: `hold()` keeps everything the server sends from reaching the
 * client (the server is not blocked: the proxy reads it), `release()` delivers it and forwards
 * again. What the client sends always goes through, so a client can still cancel.
 */
export interface TcpProxy {
  readonly port: number;
  /** Connections open through the proxy. */
  connections(): number;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let holding = false;
  const pairs = new Set<{ client: net.Socket; held: Buffer[] }>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    const pair = { client, held: [] as Buffer[] };
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
  return {
    port,
    connections: () => pairs.size,
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const pair of pairs) {
        for (const chunk of pair.held.splice(0)) pair.client.write(chunk);
      }
    },
    async close() {
      for (const pair of pairs) pair.client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
