import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createContextClient } from "./client.ts";

// The client over the web transport with a scripted fetch (no servers): what it sends, and what
// it makes of answers and failed connections. The e2e spec runs it against the real services.

interface Sent {
  readonly url: string;
  readonly authorization: string | null;
  readonly body: Record<string, unknown>;
}

function scriptedFetch(answers: readonly (() => Response)[]) {
  const sent: Sent[] = [];
  const fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    sent.push({
      url: String(input),
      authorization: headers.get("authorization"),
      body: JSON.parse(new TextDecoder().decode(init?.body as Uint8Array)) as Record<
        string,
        unknown
      >,
    });
    const answer = answers[sent.length - 1];
    if (answer === undefined) throw new Error("no more answers");
    return answer();
  };
  return { fetch, sent };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const dropped = () => {
  throw new TypeError("fetch failed", { cause: new Error("other side closed") });
};
const retry = { initialDelayMs: 1, maxDelayMs: 1 };

describe("createContextClient", () => {
  it("asks getToken before every call", async () => {
    const { fetch, sent } = scriptedFetch([() => json({ version: 1 }), () => json({ version: 2 })]);
    let n = 0;
    const client = createContextClient({
      queryUrl: "http://query.test",
      transport: "web",
      fetch,
      getToken: () => `t${++n}`,
    });
    await client.queries.getContext({ storyId: "s" });
    await client.queries.getContext({ storyId: "s" });
    expect(sent.map((s) => s.authorization)).toEqual(["Bearer t1", "Bearer t2"]);
    expect(sent[0]?.url).toBe("http://query.test/context.v1.ContextQueryService/GetContext");
  });

  it("sends one command id with every attempt of a command", async () => {
    const { fetch, sent } = scriptedFetch([
      dropped,
      () => json({ code: "unavailable", message: "shutting down" }, 503),
      () => json({ result: { version: 1, deduplicated: true } }),
    ]);
    const client = createContextClient({
      commandUrl: "http://c.test",
      transport: "web",
      fetch,
      retry,
    });
    const result = await client.commands.createContext({ storyId: "s", title: "t" });
    expect(result).toMatchObject({ version: 1, deduplicated: true });
    const ids = sent.map((s) => s.body.commandId);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  });

  it("keeps a command id the request brings, and makes a new one per command", async () => {
    const ok = () => json({ result: { version: 1 } });
    const { fetch, sent } = scriptedFetch([ok, ok, ok]);
    const client = createContextClient({ commandUrl: "http://c.test", transport: "web", fetch });
    await client.commands.archiveContext({ storyId: "s", commandId: "mine-1" });
    await client.commands.archiveContext({ storyId: "s" });
    await client.commands.archiveContext({ storyId: "s" });
    const ids = sent.map((s) => s.body.commandId);
    expect(ids[0]).toBe("mine-1");
    expect(ids[1]).not.toBe(ids[2]);
  });

  it("does not retry an answer of the service that another try does not change", async () => {
    const { fetch, sent } = scriptedFetch([
      () => json({ code: "failed_precondition", message: "archived" }, 400),
    ]);
    const client = createContextClient({
      commandUrl: "http://c.test",
      transport: "web",
      fetch,
      retry,
    });
    await expect(client.commands.archiveContext({ storyId: "s" })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      message: "archived",
    });
    expect(sent).toHaveLength(1);
  });

  it("refuses settings that cannot work when it is made, a missing URL on first use", async () => {
    expect(() =>
      createContextClient({ baseUrl: "http://x.test", transport: "web", protocol: "grpc" }),
    ).toThrow(TypeError);
    expect(() =>
      createContextClient({
        baseUrl: "http://x.test",
        transport: "node",
        protocol: "grpc",
        httpVersion: "1.1",
      }),
    ).toThrow(TypeError);
    const client = createContextClient({ queryUrl: "http://q.test", transport: "web" });
    await expect(client.commands.archiveContext({ storyId: "s" })).rejects.toThrow(/commandUrl/);
  });
});
