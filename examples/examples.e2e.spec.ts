import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { newStory, type QueryStack, startQueryStack } from "@ctx/query-service/testing";
import { eventually, testAuth } from "@ctx/test-support";
import { type Browser, chromium } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildClient } from "../clients/typescript/scripts/build.ts";

// The examples, run as a user runs them, against @ctx/client as built into dist/ (built here) and
// the real command and query services. The browser page is built with Vite (which resolves its bare
// import) and opened in headless Chromium (Debian's, driven by playwright-core) from an origin of
// its own: the browser sends the CORS preflight and enforces the answer, as it does for users.

const examples = fileURLToPath(new URL(".", import.meta.url));
let dist: string;
let s: QueryStack;
let env: Record<string, string>;
let sdk: typeof import("@ctx/client");
let client: import("@ctx/client").ContextClient;

beforeAll(async () => {
  dist = buildClient();
  sdk = await import("@ctx/client");
  s = await startQueryStack();
  const query = await s.startQuery();
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

describe("the browser page, built by Vite and run in Chromium", () => {
  let site: { origin: string; close(): Promise<void> };
  let browser: Browser;
  let allowingQuery: string;
  let refusingQuery: string;

  beforeAll(async () => {
    // The page as a user ships it: Vite resolves the bare import and bundles @ctx/client (dist).
    const out = mkdtempSync(join(tmpdir(), "ctx-page-"));
    await build({
      root: join(examples, "browser"),
      configFile: false,
      logLevel: "error",
      build: { outDir: out, emptyOutDir: true },
    });
    site = await serve(out);
    // Cross-origin: the page's origin is not the services'. One allows it, the other allows none.
    allowingQuery = (await s.startQuery({ RPC_CORS_ORIGINS: site.origin })).baseUrl;
    refusingQuery = (await s.startQuery()).baseUrl;
    browser = await chromium.launch({
      executablePath: chromiumPath(),
      // Without the background networking, Chromium tries no Google hosts on a closed network.
      args: [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await site?.close();
  });

  /** Opens the page, fills its form and shows the story; returns what the page shows. */
  async function show(queryUrl: string, storyId: string, protocol: "connect" | "grpc-web") {
    const page = await browser.newPage();
    const failed: string[] = [];
    page.on("pageerror", (e) => failed.push(e.message));
    try {
      await page.goto(`${site.origin}/index.html`);
      await page.fill("input[name=queryUrl]", queryUrl);
      await page.fill("input[name=token]", testAuth().token);
      await page.fill("input[name=storyId]", storyId);
      await page.selectOption("select[name=protocol]", protocol);
      await page.click("button[type=submit]");
      // Shown once the element has content: the story, or the error.
      await page.waitForFunction('document.getElementById("story").textContent !== ""', null, {
        timeout: 20_000,
      });
      expect(failed).toEqual([]);
      return {
        heading: await page.locator("#story h2").allTextContents(),
        items: await page.locator("#story li").allTextContents(),
        text: (await page.locator("#story").textContent()) ?? "",
      };
    } finally {
      await page.close();
    }
  }

  it.each(["connect", "grpc-web"] as const)(
    "shows a story read with %s from a query service that allows the page's origin",
    async (protocol) => {
      const storyId = newStory();
      await client.commands.createContext({ storyId, title: "In a page" });
      await client.commands.addSubtask({ storyId, subtaskId: "ui", title: "Page" });
      const shown = await show(allowingQuery, storyId, protocol);
      expect(shown.heading).toEqual(["In a page (version 2)"]);
      expect(shown.items).toEqual(["subtask ui: Page (TODO)"]);
    },
  );

  it("shows an error, and no story, when the query service does not allow the page's origin", async () => {
    const storyId = newStory();
    await client.commands.createContext({ storyId, title: "Not for this page" });
    // The service answers the same call from Node, where nothing enforces CORS ...
    const direct = sdk.createContextClient({ queryUrl: refusingQuery, token: testAuth().token });
    expect((await direct.queries.getContext({ storyId })).version).toBe(1);
    // ... and in the page, the browser's preflight is refused, so the call never goes out.
    const shown = await show(refusingQuery, storyId, "connect");
    // The browser refused the answer (CORS): the client sees a network failure, not the story.
    expect(shown.heading).toEqual([]);
    expect(shown.text).toBe(
      "ContextServiceError: the service could not be reached: Failed to fetch",
    );
    expect(shown.text).not.toContain("Not for this page");
  });
});

/** Serves a folder's files on 127.0.0.1 (a free port): the page's own origin. */
async function serve(root: string): Promise<{ origin: string; close(): Promise<void> }> {
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript" };
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    const file = join(root, path);
    if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Debian's Chromium, as scripts/chromium.sh installs it (make test does). */
function chromiumPath(): string {
  const linked = join(examples, "..", ".tools", "bin", "chromium");
  const path = existsSync(linked) ? linked : "/usr/bin/chromium";
  if (!existsSync(path)) throw new Error("no Chromium: run scripts/chromium.sh (make test does)");
  return path;
}
