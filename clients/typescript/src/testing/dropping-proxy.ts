import * as net from "node:net";

/**
 * A TCP proxy on 127.0.0.1 (port 0) in front of a service, for tests of a client across dropped
 * connections: `down()` cuts every open connection and refuses new ones (closed as soon as they
 * are accepted) until `up()`. The service itself keeps running; `retarget` sends new connections
 * to another port (a service started again).
 */
export interface DroppingProxy {
  readonly port: number;
  readonly url: string;
  /** Connections accepted since the start (refused ones included). */
  accepted(): number;
  down(): void;
  up(): void;
  retarget(port: number): void;
  close(): Promise<void>;
}

export async function startDroppingProxy(to: {
  host: string;
  port: number;
}): Promise<DroppingProxy> {
  let target = to;
  let isDown = false;
  let accepted = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    accepted++;
    if (isDown) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target);
    open.add(client).add(upstream);
    const end = () => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    accepted: () => accepted,
    down() {
      isDown = true;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    up() {
      isDown = false;
    },
    retarget(port) {
      target = { ...target, port };
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
