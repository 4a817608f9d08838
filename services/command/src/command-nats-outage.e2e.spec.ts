import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { storyId } from "@ctx/domain";
import { eventually, uniqueName } from "@ctx/test-support";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CommandHarness,
  call,
  type Message,
  resultOf,
  startCommandHarness,
  statusOf,
} from "./testing/command-harness.ts";

// The command service against a NATS server of this spec's own, which the spec stops and starts
// again: calls fail with UNAVAILABLE and health says NOT_SERVING while it is down, and the service
// recovers by itself when it is back.

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, "../../..");
const natsScript = join(repoRoot, "deploy/local/nats.sh");

let natsEnv: Record<string, string> | undefined;
let h: CommandHarness;

async function nats(action: "start" | "stop"): Promise<void> {
  // Without STACK_DIR the script would act on the developer's own stack (.stack/local).
  if (natsEnv?.STACK_DIR === undefined) throw new Error("the spec's NATS has no STACK_DIR yet");
  await run("bash", [natsScript, action], {
    env: { ...process.env, ...natsEnv },
    timeout: 120_000,
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

beforeAll(async () => {
  const port = await freePort();
  const monitorPort = await freePort();
  // Under .stack/test with an owner.pid, so a killed run's server is reaped by the next test run.
  const stacks = join(repoRoot, ".stack/test");
  mkdirSync(stacks, { recursive: true });
  const dir = mkdtempSync(join(stacks, "nats-outage-"));
  writeFileSync(join(dir, "owner.pid"), String(process.pid));
  natsEnv = { STACK_DIR: dir, NATS_PORT: String(port), NATS_MONITOR_PORT: String(monitorPort) };
  await nats("start");
  h = await startCommandHarness({
    natsUrl: `nats://127.0.0.1:${port}`,
    // nats.sh wrote this server's users into the spec's folder.
    natsEnv: { NATS_NKEY_SEED_FILE: join(dir, "secrets/nats/admin.nk") },
  });
});

afterAll(async () => {
  if (natsEnv === undefined) return;
  try {
    await nats("start"); // no-op when running; the service drains its connection on stop
    await h?.stop();
  } finally {
    await nats("stop");
    rmSync(natsEnv.STACK_DIR as string, { recursive: true, force: true });
  }
});

const health = async (service: string) => {
  const reply = await call(h.health, "Check", { service }, { deadline: Date.now() + 2_000 });
  return reply.ok ? reply.response.status : `error ${reply.error.code}`;
};
const ready = async () => (await fetch(`http://127.0.0.1:${h.app.opsPort}/readyz`)).status;

describe("a NATS outage", () => {
  it("turns into UNAVAILABLE and NOT_SERVING, and the service recovers when NATS is back", async () => {
    const story = uniqueName("story");
    resultOf(await call(h.client, "CreateContext", { story_id: story, title: "T" }));
    expect(await health("")).toBe("SERVING");

    await nats("stop");
    await eventually(async () => {
      expect(await health("")).toBe("NOT_SERVING");
      expect(await health("context.v1.ContextCommandService")).toBe("NOT_SERVING");
    });
    expect(await ready()).toBe(503);

    // A story the service has not seen must be read first, and the read fails after one store timeout
    // (5 s). A command on a story it holds in memory fails at the append instead, after 3 re-sends of
    // the publish (15 s): the same error and code, too slow for this spec.
    const fresh = uniqueName("story");
    const during: Message = { story_id: fresh, command_id: "during-outage", title: "T" };
    const refused = statusOf(await call(h.client, "CreateContext", during));
    expect(refused.code, refused.message).toBe(status.UNAVAILABLE);
    expect(refused.message).toMatch(/JetStream is unavailable.*retry later/);

    await nats("start");
    await eventually(async () => expect(await health("")).toBe("SERVING"), { timeout: 20_000 });
    expect(await ready()).toBe(200);
    // The client retries what it got UNAVAILABLE for, with the same command_id: applied once.
    const retried = await eventually(
      async () =>
        resultOf(await call(h.client, "CreateContext", during, { deadline: Date.now() + 5_000 })),
      { timeout: 20_000, interval: 200 },
    );
    expect(retried.version).toBe(1);
    // The story created before the outage takes commands again.
    const added = resultOf(
      await call(h.client, "AddSubtask", { story_id: story, subtask_id: "s", title: "S" }),
    );
    expect(added.version).toBe(2);

    // The test's own connection reconnects on its own schedule.
    const stored = await eventually(() => h.store.read(storyId(fresh)), { timeout: 20_000 });
    expect(stored.map((e) => [e.eventType, e.envelope.commandId])).toEqual([
      ["ContextCreated", "during-outage"],
    ]);
    expect((await h.store.read(storyId(story))).map((e) => e.eventType)).toEqual([
      "ContextCreated",
      "SubtaskAdded",
    ]);
  });
});
