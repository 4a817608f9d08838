import { stack, uniqueName, valkeyLogin } from "@ctx/test-support";
import type { Valkey } from "iovalkey";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createValkeyClient } from "./valkey-client.ts";
import { loadScripts, runScripts, valkeyScript } from "./valkey-script.ts";

describe("runScripts", () => {
  let valkey: Valkey;
  beforeAll(() => {
    valkey = createValkeyClient(valkeyLogin(stack()));
  });
  afterAll(async () => {
    await valkey.quit();
  });

  it("falls back to EVAL for scripts the server does not know, and answers in call order", async () => {
    // Unique sources, so no other test has loaded them: what a restarted server looks like.
    const known = valkeyScript("known", `return {'known', ARGV[1], '${uniqueName("k")}'}`);
    const unknown = valkeyScript("unknown", `return {'unknown', KEYS[1], '${uniqueName("u")}'}`);
    await loadScripts(valkey, [known]);

    const replies = await runScripts(valkey, [
      { script: unknown, keys: ["k1"], args: [] },
      { script: known, keys: [], args: ["a1"] },
      { script: unknown, keys: ["k2"], args: [] },
    ]);
    expect(replies.map((r) => (r as Buffer[]).slice(0, 2).map(String))).toEqual([
      ["unknown", "k1"],
      ["known", "a1"],
      ["unknown", "k2"],
    ]);
    // The EVAL cached it: the next EVALSHA finds it.
    expect(await valkey.script("EXISTS", unknown.sha)).toEqual([1]);
  });

  it("answers a single call (sent without a pipeline) with the same fallback to EVAL", async () => {
    const unknown = valkeyScript("single", `return {'single', KEYS[1], '${uniqueName("s")}'}`);
    const [reply] = await runScripts(valkey, [{ script: unknown, keys: ["k1"], args: [] }]);
    expect((reply as Buffer[]).slice(0, 2).map(String)).toEqual(["single", "k1"]);
    expect(await valkey.script("EXISTS", unknown.sha)).toEqual([1]);
    // Known now: answered by EVALSHA.
    const [again] = await runScripts(valkey, [{ script: unknown, keys: ["k2"], args: [] }]);
    expect(again as Buffer[]).toEqual([
      Buffer.from("single"),
      Buffer.from("k2"),
      expect.any(Buffer),
    ]);
  });

  it("throws the error of a failing call", async () => {
    const failing = valkeyScript(
      "failing",
      `return redis.error_reply('BROKEN ${uniqueName("f")}')`,
    );
    await expect(runScripts(valkey, [{ script: failing, keys: [], args: [] }])).rejects.toThrow(
      /BROKEN/,
    );
  });
});
