import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { newStory, type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import { eventually, testAuth } from "@ctx/test-support";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildClient } from "../clients/typescript/scripts/build.ts";

// The examples, run as a user runs them, against @ctx/client as built into dist/ (built here) and
// the real command and query services. The browser page's module is loaded in Node with the web
// transport (fetch) against a query service that allows the page's origin; what only a browser
// does (the DOM, enforcing CORS, resolving the bare import) is not covered.

const examples = fileURLToPath(new URL(".", import.meta.url));
const pageOrigin = "http://localhost:5173";
let dist: string;
let s: QueryStack;
let env: Record<string, string>;
let sdk: typeof import("@ctx/client");
let client: import("@ctx/client").ContextClient;

beforeAll(async () => {
  dist = buildClient();
  sdk = await import("@ctx/client");
  s = await startQueryStack();
  const query = await s.startQuery({ RPC_CORS_ORIGINS: pageOrigin });
  const command = await s.startCommand();
  env = {
    CTX_COMMAND_URL: command.baseUrl,
    CTX_QUERY_URL: query.baseUrl,
    CTX_TOKEN: testAuth().token,
  };
  client = sdk.createContextClient({
    commandUrl: command.baseUrl,
    queryUrl: query.baseUrl,
    token: testAuth().token,
  });
  // The build (tsc) comes first; on a loaded machine it alone can take a minute.
}, 240_000);

afterAll(async () => {
  await s?.stop();
});

// The page's module is plain JS (a browser runs it as it is): its shape, as the test uses it.
const pageModule = "./browser/story-view.js";
interface StoryView {
  loadStory(options: {
    queryUrl: string;
    token: string;
    storyId: string;
    fetch?: typeof fetch;
  }): Promise<{ title: string; version: number; lines: string[] }>;
}

/** Runs an example with node (as it is: type stripping), output kept as it comes. */
function run(script: string, args: readonly string[]) {
  const child: ChildProcess = spawn(process.execPath, [join(examples, script), ...args], {
    cwd: examples,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.on("close", resolve));
  return {
    lines: () => stdout.split("\n").filter((line) => line !== ""),
    stderr: () => stderr,
    exit,
    kill: () => child.kill(),
  };
}

it("the built package imports nothing but its declared dependencies", () => {
  const manifest = JSON.parse(readFileSync(join(dist, "..", "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  const declared = Object.keys(manifest.dependencies);
  const imported = new Set<string>();
  for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
    if (!entry.name.endsWith(".js")) continue;
    const text = readFileSync(join(entry.parentPath, entry.name), "utf8");
    for (const [, specifier] of text.matchAll(/(?:from|import\()\s*"([^"]+)"/g)) {
      if (specifier !== undefined && !specifier.startsWith(".")) imported.add(specifier);
    }
  }
  const packages = [...imported].map((s) =>
    s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : (s.split("/")[0] ?? s),
  );
  expect(packages.length).toBeGreaterThan(0);
  for (const name of packages) expect(declared).toContain(name);
});

it("create-and-read.ts creates a story and reads it at two times", async () => {
  const storyId = newStory();
  const example = run("create-and-read.ts", [storyId]);
  expect(await example.exit, example.stderr()).toBe(0);
  const lines = example.lines();
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(
    new RegExp(`^${storyId} at \\S+Z: version 1, 0 decision\\(s\\), 0 subtask\\(s\\)$`),
  );
  expect(lines[1]).toMatch(/: version 4, 1 decision\(s\), 1 subtask\(s\)$/);
});

it("watch-story.ts prints each version from --from as it lands, up to --count", async () => {
  const storyId = newStory();
  await client.commands.createContext({ storyId, title: "watched" });
  await client.commands.addSubtask({ storyId, subtaskId: "a", title: "A" });
  const example = run("watch-story.ts", [storyId, "--from", "1", "--count", "4"]);
  try {
    await eventually(() => expect(example.lines()).toHaveLength(2), { timeout: 30_000 });
    await client.commands.addSubtask({ storyId, subtaskId: "b", title: "B" });
    await client.commands.updateSubtask({
      storyId,
      subtaskId: "a",
      status: sdk.SubtaskStatus.IN_PROGRESS,
    });
    expect(await example.exit, example.stderr()).toBe(0);
  } finally {
    example.kill();
  }
  expect(example.lines()).toEqual([
    "version 1: watched, no subtasks",
    "version 2: watched, a TODO",
    "version 3: watched, a TODO, b TODO",
    "version 4: watched, a IN_PROGRESS, b TODO",
  ]);
});

it("the page's module reads a story with the web transport from an allowed origin", async () => {
  const storyId = newStory();
  await client.commands.createContext({ storyId, title: "In a page" });
  await client.commands.addSubtask({ storyId, subtaskId: "ui", title: "Page" });
  const view = (await import(pageModule)) as StoryView;

  // What a browser sends first for a cross-origin call with an authorization header.
  const preflight = await fetch(`${env.CTX_QUERY_URL}/context.v1.ContextQueryService/GetContext`, {
    method: "OPTIONS",
    headers: {
      origin: pageOrigin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,connect-protocol-version",
    },
  });
  expect(preflight.ok).toBe(true);
  expect(preflight.headers.get("access-control-allow-origin")).toBe(pageOrigin);

  // The call itself, with the Origin header a browser adds; the answer must allow the page.
  const allowed: (string | null)[] = [];
  const story = await view.loadStory({
    queryUrl: env.CTX_QUERY_URL ?? "",
    token: testAuth().token,
    storyId,
    fetch: async (input: string | URL | Request, init?: RequestInit) => {
      const headers = new Headers(init?.headers);
      headers.set("origin", pageOrigin);
      const response = await fetch(input, { ...init, headers });
      allowed.push(response.headers.get("access-control-allow-origin"));
      return response;
    },
  });
  expect(story).toEqual({
    title: "In a page",
    version: 2,
    lines: ["subtask ui: Page (TODO)"],
  });
  expect(allowed).toEqual([pageOrigin]);

  // The page's inline module imports what the module exports.
  const html = readFileSync(join(examples, "browser", "index.html"), "utf8");
  const imports = /import \{ ([^}]+) \} from "\.\/story-view\.js"/.exec(html)?.[1];
  for (const name of (imports ?? "").split(",").map((n) => n.trim())) {
    expect(typeof (view as unknown as Record<string, unknown>)[name]).toBe("function");
  }
});
