import { createServer, type Server, type Socket } from "node:net";
import { storyId, streamVersion } from "@ctx/domain";
import { isStoreUnavailableError } from "@ctx/projector";
import { sampleHistory } from "@ctx/projector/testing";
import { uniqueName } from "@ctx/test-support";
import neo4j, { type Driver } from "neo4j-driver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createNeo4jProjection } from "./neo4j-projection.ts";

// A server that accepts connections and never answers: what a frozen Neo4j looks like to the driver
// (a long GC pause, a stopped or throttled VM; the kernel still completes the TCP handshake). The
// pool gives up with "Connection acquisition timed out", an error without a code: it must count as
// an outage, not as a batch the model refuses (which the runtime would park, event by event).
describe("Neo4j projection against a server that does not answer", () => {
  let server: Server;
  const sockets = new Set<Socket>();
  let driver: Driver;

  beforeAll(async () => {
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    driver = neo4j.driver(`bolt://127.0.0.1:${port}`, neo4j.auth.basic("neo4j", ""), {
      connectionTimeout: 5_000,
      connectionAcquisitionTimeout: 500,
      maxTransactionRetryTime: 0,
    });
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await driver.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it("rejects with StoreUnavailableError once the connection acquisition times out", async () => {
    const projection = createNeo4jProjection(driver, { namespace: uniqueName("mute") });
    const story = storyId(uniqueName("mute"));
    const apply = projection.apply({
      generation: 1,
      partition: 0,
      checkpoint: 1,
      stories: [
        { storyId: story, expectedVersion: streamVersion(0), events: sampleHistory(story) },
      ],
    });
    await expect(apply).rejects.toSatisfy(isStoreUnavailableError);
    await expect(projection.positions(1, [story])).rejects.toSatisfy(isStoreUnavailableError);
    await expect(projection.init()).rejects.toSatisfy(isStoreUnavailableError);
  }, 15_000);
});
