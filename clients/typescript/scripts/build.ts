// Builds @ctx/client into dist/: tsc's JS and declarations, and the generated types beside them
// (JS + declarations already). `pnpm run build` runs it; so does the examples' spec.
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

/** Builds the package; returns the path of dist/. */
export function buildClient(): string {
  const dist = join(packageDir, "dist");
  rmSync(dist, { recursive: true, force: true });
  const typescript = createRequire(import.meta.url).resolve("typescript/package.json");
  const tsc = join(dirname(typescript), "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", join(packageDir, "tsconfig.build.json")], {
    stdio: "inherit",
  });
  cpSync(join(packageDir, "src", "gen"), join(dist, "gen"), { recursive: true });
  return dist;
}

if (import.meta.main) buildClient();
