import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";

// The SDK carries its own generated types (so the built package needs no workspace package):
// they must be what buf.gen.yaml makes of proto/ today.
const root = fileURLToPath(new URL("../../..", import.meta.url));
const committed = fileURLToPath(new URL("./gen", import.meta.url));
const out = mkdtempSync(join(tmpdir(), "ctx-client-gen-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function files(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    found.set(relative(dir, path), readFileSync(path, "utf8"));
  }
  return found;
}

it("src/gen is what `buf generate --template clients/typescript/buf.gen.yaml` makes", () => {
  // buf from the workspace (@bufbuild/buf), as make generate runs it.
  const buf = join(root, "node_modules", ".bin", "buf");
  execFileSync(buf, ["generate", "--template", "clients/typescript/buf.gen.yaml", "-o", out], {
    cwd: root,
    stdio: "pipe",
  });
  const fresh = files(join(out, "clients/typescript/src/gen"));
  const current = files(committed);
  expect([...current.keys()].sort()).toEqual([...fresh.keys()].sort());
  for (const [path, text] of fresh) {
    expect(current.get(path), `${path} is stale: regenerate it (see buf.gen.yaml)`).toBe(text);
  }
}, 60_000);
