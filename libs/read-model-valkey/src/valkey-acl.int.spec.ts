import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { fold, storyId, streamVersion } from "@ctx/domain";
import { expectedContext, sampleHistory } from "@ctx/projector/testing";
import { SubtaskStatus } from "@ctx/proto";
import {
  createTestPki,
  type StoreLogin,
  startValkeyServer,
  uniqueName,
  type ValkeyServer,
} from "@ctx/test-support";
import type { Valkey } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createValkeyClient,
  createValkeyContextReader,
  createValkeyProjection,
  type ValkeyConnection,
} from "./index.ts";
import { writeStoryScript } from "./read-model-scripts.ts";

// The users deploy/local/valkey.sh makes, on a server of its own that speaks TLS only, with the
// read model under the default namespace `ctx`: who can do what, proven with the real commands.

let server: ValkeyServer;
let ca: string;
const clients: Valkey[] = [];

function client(login: Partial<StoreLogin>, more: Partial<ValkeyConnection> = {}): Valkey {
  const valkey = createValkeyClient(
    { url: server.url, user: login.user, password: login.password, tls: { ca }, ...more },
    { maxRetriesPerRequest: 0, retryStrategy: () => null },
  );
  valkey.on("error", () => {
    // Refused logins and handshakes: what some of these tests are about.
  });
  clients.push(valkey);
  return valkey;
}

const story = storyId(uniqueName("acl"));
const history = sampleHistory(story);

beforeAll(async () => {
  server = await startValkeyServer({ tls: true });
  ca = readFileSync(server.caFile, "utf8");
  // The projector user writes the read model, as the projector service does.
  const projection = createValkeyProjection(client(server.users.projector));
  await projection.init();
  await projection.apply({
    generation: 1,
    partition: 0,
    checkpoint: history.length,
    stories: [{ storyId: story, expectedVersion: streamVersion(0), events: history }],
  });
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server?.remove();
});

describe("Valkey logins", () => {
  it("refuses anonymous clients: the default user is off", async () => {
    await expect(client({}).get("ctx:active-generation")).rejects.toThrow(/NOAUTH|WRONGPASS/);
  });

  it("keeps the read model across a restart: the append-only file replays its transactions", async () => {
    // Valkey replays the file as the default user, which is off; it used to drop every MULTI/EXEC.
    const read = () => createValkeyContextReader(client(server.users.query)).getContext(story);
    expect((await read())?.context).toEqual(expectedContext(story, history));
    await server.restart();
    expect((await read())?.context).toEqual(expectedContext(story, history));
  });

  it("refuses a wrong password", async () => {
    const wrong = client({ user: "query", password: "not-the-password" });
    await expect(wrong.get("ctx:active-generation")).rejects.toThrow(/WRONGPASS|NOAUTH/);
  });

  it("speaks TLS only, and only with a certificate signed by the CA it is given", async () => {
    const plain = createValkeyClient(server.url.replace("rediss:", "redis:"), {
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1_000,
    });
    plain.on("error", () => undefined);
    clients.push(plain);
    await expect(plain.ping()).rejects.toThrow();
    const untrusting = client(server.users.admin, { tls: {} });
    await expect(untrusting.ping()).rejects.toThrow();
    expect(await client(server.users.admin).ping()).toBe("PONG");
  });

  it("takes a client certificate signed by the server's CA", async () => {
    const pki = await createTestPki(dirname(server.caFile));
    const cert = await pki.client("acl-test");
    const withCert = client(server.users.query, { tls: { ca, cert: cert.cert, key: cert.key } });
    expect(await withCert.ping()).toBe("PONG");
  });
});

describe("the query user", () => {
  let query: Valkey;
  beforeAll(() => {
    query = client(server.users.query);
  });

  it("does every read the query service does, also after the server forgot the scripts", async () => {
    const reader = createValkeyContextReader(query);
    const expectReads = async () => {
      expect((await reader.getContext(story))?.context).toEqual(expectedContext(story, history));
      expect(await reader.subtasksByStatus(story, SubtaskStatus.TODO)).not.toEqual([]);
      const since = await reader.storiesUpdatedSince(new Date(0), 10);
      expect(since.map((u) => u.storyId)).toContain(story);
    };
    await expectReads();
    // NOSCRIPT: the reader sends the script itself (EVAL_RO), which the query user may.
    expect(await client(server.users.admin).script("FLUSH")).toBe("OK");
    await expectReads();
  });

  it("cannot write, delete, flush, load scripts or run a writing one", async () => {
    const refused = /NOPERM|ACL failure|Write commands are not allowed/;
    await expect(query.set("ctx:active-generation", "2")).rejects.toThrow(refused);
    await expect(query.del("ctx:active-generation")).rejects.toThrow(refused);
    await expect(query.hset("ctx:g1:story:x", "version", "9")).rejects.toThrow(refused);
    await expect(query.flushall()).rejects.toThrow(refused);
    await expect(query.flushdb()).rejects.toThrow(refused);
    await expect(query.script("LOAD", "return 1")).rejects.toThrow(refused);
    await expect(query.script("FLUSH")).rejects.toThrow(refused);
    await expect(query.config("SET", "appendonly", "no")).rejects.toThrow(refused);
    const write = "return redis.call('SET', KEYS[1], 'x')";
    await expect(query.eval(write, 1, "ctx:x")).rejects.toThrow(refused);
    await expect(query.call("EVAL_RO", write, 1, "ctx:x")).rejects.toThrow(refused);
    // The projection's own write script, loaded by the projector, run by the query user.
    await expect(
      query.call("EVALSHA", writeStoryScript.sha, 2, "ctx:g1:story:x", "ctx:g1:stories:by-update"),
    ).rejects.toThrow(refused);
    await expect(
      query.call("EVALSHA_RO", writeStoryScript.sha, 2, "ctx:g1:story:x", "ctx:g1:by"),
    ).rejects.toThrow(/NOPERM|ACL failure|Write commands are not allowed|NOSCRIPT/);
  });

  it("reads nothing outside the read model's keys", async () => {
    await client(server.users.admin).set("other:secret", "x");
    await expect(query.get("other:secret")).rejects.toThrow(/NOPERM/);
    await expect(
      query.call("EVAL_RO", "return redis.call('GET', 'other:secret')", 0),
    ).rejects.toThrow(/NOPERM|ACL failure/);
  });
});

describe("the projector and ctx users", () => {
  it("rebuild and drop generations, switch the active one (what ctx does)", async () => {
    for (const login of [server.users.ctx, server.users.projector]) {
      const projection = createValkeyProjection(client(login));
      await projection.replaceStory(7, fold(story, history));
      expect(await projection.generations()).toContain(7);
      await projection.markStale(7, story, "test");
      await projection.activateGeneration(7);
      expect(await projection.activeGeneration()).toBe(7);
      await projection.activateGeneration(1);
      await projection.dropGeneration(7);
      expect(await projection.generations()).not.toContain(7);
    }
  });

  it("cannot flush, reconfigure, read the ACL or touch keys outside the read model", async () => {
    for (const login of [server.users.ctx, server.users.projector]) {
      const writer = client(login);
      await expect(writer.flushall()).rejects.toThrow(/NOPERM/);
      await expect(writer.flushdb()).rejects.toThrow(/NOPERM/);
      await expect(writer.keys("*")).rejects.toThrow(/NOPERM/);
      await expect(writer.config("SET", "appendonly", "no")).rejects.toThrow(/NOPERM/);
      await expect(writer.call("ACL", "LIST")).rejects.toThrow(/NOPERM/);
      await expect(writer.script("FLUSH")).rejects.toThrow(/NOPERM/);
      await expect(writer.set("other:x", "1")).rejects.toThrow(/NOPERM/);
      await expect(writer.get("other:secret")).rejects.toThrow(/NOPERM/);
      await expect(writer.eval("return redis.call('DEL', 'other:secret')", 0)).rejects.toThrow(
        /NOPERM|ACL failure/,
      );
    }
  });
});
